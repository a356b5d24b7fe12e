//! Reading a response: the body under its size cap, headers and status as Rune shows them,
//! and the body as JSON when it is JSON.

use super::*;

/// Reads the body chunk by chunk, failing as soon as it exceeds `limit` bytes (or at once
/// when the announced length does).
pub(super) async fn read_body_capped(
    response: &mut reqwest::Response,
    target: &Target<'_>,
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, NodeError> {
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(too_large(target, limit));
    }
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, target, timeout))?
    {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large(target, limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `content-type` → `Content-Type` (Go's canonical MIME header key).
pub(super) fn canonical_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

pub(super) fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in headers {
        let key = canonical_header_name(name.as_str());
        if !out.contains_key(&key) {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            out.insert(key, Value::String(text));
        }
    }
    Value::Object(out)
}

/// `"200 OK"`, like Go's `Response.Status`.
pub(super) fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Parsed JSON when the body is JSON, else the text (lossy UTF-8), `""` when empty.
pub(super) fn body_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::String(String::new());
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
