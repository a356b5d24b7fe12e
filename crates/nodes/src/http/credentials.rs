//! Rune's credentials on an `http` request: basic, bearer, header and query credentials
//! turned into the request's headers or query.

use super::*;

pub(super) fn credential_error(message: String) -> NodeError {
    NodeError {
        message,
        code: ErrorCode::InvalidCredentials,
        retryable: false,
    }
}

/// A credential field as text (numbers and booleans allowed), `None` when absent or blank.
pub(super) fn credential_field(creds: &Map<String, Value>, field: &str) -> Option<String> {
    creds
        .get(field)
        .and_then(scalar_text)
        .filter(|s| !s.trim().is_empty())
}

pub(super) fn required_field(
    creds: &Map<String, Value>,
    kind: &str,
    field: &str,
) -> Result<String, NodeError> {
    credential_field(creds, field).ok_or_else(|| {
        credential_error(format!(
            "`{kind}` credentials need a non-empty `{field}` value"
        ))
    })
}

/// Adds the header a credential implies (§3.4 of the Rune reference), unless the request
/// already has that header. Never puts a secret into an error message.
pub(super) fn apply_credentials(
    headers: &mut HeaderMap,
    creds: Option<&Map<String, Value>>,
) -> Result<(), NodeError> {
    let Some(creds) = creds else { return Ok(()) };
    let kind = creds
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (name, value) = match kind.as_str() {
        "basic_auth" => {
            let username = required_field(creds, &kind, "username")?;
            let password = creds
                .get("password")
                .and_then(scalar_text)
                .unwrap_or_default();
            (
                AUTHORIZATION,
                format!("Basic {}", BASE64.encode(format!("{username}:{password}"))),
            )
        }
        "header" => {
            let field = required_field(creds, &kind, "field")?;
            let value = creds.get("value").and_then(scalar_text).unwrap_or_default();
            (credential_header_name(&kind, &field)?, value)
        }
        "token" => (
            AUTHORIZATION,
            format!("Bearer {}", required_field(creds, &kind, "token")?),
        ),
        "oauth2" => {
            let token = required_field(creds, &kind, "access_token")?;
            let token_type = match credential_field(creds, "token_type") {
                // OAuth servers often answer `bearer`; some APIs only accept the canonical case.
                Some(t) if t.trim().eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
                Some(t) => t.trim().to_string(),
                None => "Bearer".to_string(),
            };
            (AUTHORIZATION, format!("{token_type} {token}"))
        }
        "api_key" => {
            let value = required_field(creds, &kind, "value")?;
            match credential_field(creds, "key") {
                Some(key) => (credential_header_name(&kind, &key)?, value),
                None => (AUTHORIZATION, format!("Bearer {value}")),
            }
        }
        "" => {
            tracing::warn!("http node credentials have no `type`; they are ignored");
            return Ok(());
        }
        other => {
            tracing::warn!(
                credential_type = other,
                "credential type is not used by the http node; ignored"
            );
            return Ok(());
        }
    };
    if headers.contains_key(&name) {
        return Ok(());
    }
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        credential_error(format!(
            "`{kind}` credentials produce an invalid `{name}` header value"
        ))
    })?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

pub(super) fn credential_header_name(kind: &str, field: &str) -> Result<HeaderName, NodeError> {
    HeaderName::from_bytes(field.trim().as_bytes()).map_err(|_| {
        credential_error(format!(
            "`{kind}` credentials name an invalid header {field:?}"
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------
