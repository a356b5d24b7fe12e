//! Request guards around every route (RFC 0008): security headers, the request timeout (408),
//! the body limit (413), axum's plain-text rejections rewritten into the API's JSON error
//! format, and ids in paths restricted to a safe alphabet.

use std::time::Duration;

use axum::extract::{RawPathParams, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::problem;

/// The dashboard loads its script, style sheet and data from the master only; inline style
/// attributes are drawn by the script (`style="…"`), no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Path parameters that name stored things; each must be a [`safe_id`].
const ID_PARAMS: [&str; 4] = [
    "workflow_id",
    "execution_id",
    "schedule_id",
    "credential_id",
];

/// `[A-Za-z0-9_.:-]{1,128}`, and not `.` or `..` (they mean something in a path).
pub fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// 400 naming the first id parameter outside the safe alphabet.
pub async fn check_ids(params: RawPathParams, request: Request, next: Next) -> Response {
    for (name, value) in &params {
        if ID_PARAMS.contains(&name) && !safe_id(value) {
            return ApiError {
                problems: Some(vec![problem(
                    name,
                    "1 to 128 characters among letters, digits, `_`, `.`, `:` and `-`, not `.` or `..`",
                )]),
                ..ApiError::bad_request(format!("`{name}` is not a valid id"))
            }
            .into_response();
        }
    }
    next.run(request).await
}

/// Adds the security headers to every response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Reading the body and running the handler within `timeout`, else 408. A response stream
/// (the event stream) is not bounded: its handler returns as soon as the stream is set up.
pub async fn request_timeout(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request took longer than {} ms (BATON_MASTER_REQUEST_TIMEOUT_MS)",
                    timeout.as_millis()
                ),
            )
            .into_response();
            // The unread rest of the body cannot be skipped: the connection is not reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// axum's own rejections (body too large, wrong method, bad path or query encoding…) are
/// plain text; the API answers every error as `{"error": {"code", "message"}}`.
pub async fn json_errors(max_body_bytes: usize, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_input",
        _ => return response,
    };
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "the request body is larger than {max_body_bytes} bytes (BATON_MASTER_MAX_BODY_BYTES)"
        )
    } else {
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_string();
        if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("request refused")
                .to_string()
        } else {
            text
        }
    };
    let rebuilt = ApiError::new(status, code, message).into_response();
    let (new_parts, new_body) = rebuilt.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        new_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("application/json")),
    );
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The unread rest of the body cannot be skipped: the connection is not reused.
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Response::from_parts(parts, new_body)
}

#[cfg(test)]
mod tests {
    use super::safe_id;

    #[test]
    fn ids_are_letters_digits_and_a_few_marks_but_not_dot_segments() {
        for good in [
            "greeter",
            "a.b",
            "x:y",
            "A_1-2",
            ".hidden",
            "..x",
            &"a".repeat(128),
        ] {
            assert!(safe_id(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            "a%2Fb",
            "a\0b",
            "<script>",
            &"a".repeat(129),
        ] {
            assert!(!safe_id(bad), "{bad:?}");
        }
    }
}
