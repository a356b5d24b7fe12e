//! Webhooks: `POST /hooks/{workflow_id}` starts the workflow's latest version with the JSON
//! body as input — only once its webhook is enabled (`PUT /workflows/{id}/webhook`), with a
//! Standard Webhooks signature (`crate::webhook`) or the API's bearer token. Disabled and
//! unknown ids answer the same 404; a non-JSON body answers 415 (no cross-origin form posts).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, json_body, object_body, problem};
use crate::app::Master;
use crate::history::model::rfc3339_millis;
use crate::webhook::{self, REMEMBER_SECS, Signed, SigningSecret, WebhookAuth, WebhookRecord};
use baton_core::value::kind_name;

/// The one answer for a webhook that is not enabled, whether or not the workflow exists.
fn no_webhook() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no webhook is enabled at this address",
    )
}

/// `application/json` or `application/<x>+json`, parameters (charset) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The caller carries one of the API's tokens (`Authorization: Bearer`).
fn bearer_ok(master: &Master, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = header_text(headers, header::AUTHORIZATION.as_str())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(t) if master.token_ok(t) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("invalid token")),
        None if master.tokens.is_none() => Ok(()),
        None => Err(ApiError::unauthorized(
            "this webhook needs `Authorization: Bearer <token>` (one of BATON_API_TOKENS)",
        )),
    }
}

/// Checks the signature; returns the message id.
fn signature_ok<'h>(
    master: &Master,
    workflow_id: &str,
    hook: &WebhookRecord,
    headers: &'h HeaderMap,
    body: &[u8],
) -> Result<&'h str, ApiError> {
    let sealed = hook.sealed_secret.as_deref().unwrap_or("");
    let secret = master
        .sealing_key
        .as_ref()
        .ok_or(baton_vault::OpenError::Unreadable)
        .and_then(|key| webhook::open(key, workflow_id, sealed))
        .map_err(|e| {
            tracing::error!(%workflow_id, error = %e, "a webhook's secret does not open");
            ApiError::internal(
                "this webhook's secret cannot be read by the master (its credentials key \
                 changed); it must be enabled again",
            )
        })?;
    let signed = Signed {
        id: header_text(headers, "webhook-id"),
        timestamp: header_text(headers, "webhook-timestamp"),
        signature: header_text(headers, "webhook-signature"),
    };
    let now = master.clock.now_utc().timestamp();
    webhook::verify(&secret, signed, body, now).map_err(|r| ApiError::unauthorized(r.to_string()))
}

pub async fn hook(
    State(master): AppState,
    Path(workflow_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !is_json(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a webhook's body is JSON: send `Content-Type: application/json`",
        ));
    }
    let Some(hook) = master.history.webhook(&workflow_id).await? else {
        return Err(no_webhook());
    };
    let message_id = match hook.auth {
        WebhookAuth::Bearer => {
            bearer_ok(&master, &headers)?;
            None
        }
        WebhookAuth::Signature => {
            Some(signature_ok(&master, &workflow_id, &hook, &headers, &body)?)
        }
    };
    let input = json_body(&body, Some(json!({})))?;
    if let Some(id) = message_id
        && !master
            .history
            .claim_webhook_message(&workflow_id, id, REMEMBER_SECS)
            .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook_replayed",
            format!("message `{id}` was already delivered (a webhook-id is accepted once)"),
        ));
    }
    let started = master
        .start_stored(&workflow_id, None, input, "webhook")
        .await;
    let (id, version) = match started {
        Ok(s) => s,
        Err(e) => {
            if let Some(message) = message_id {
                // Not started: the sender's retry of this message must be accepted.
                master
                    .history
                    .release_webhook_message(&workflow_id, message)
                    .await?;
            }
            return Err(if e.status == StatusCode::NOT_FOUND {
                no_webhook()
            } else {
                e
            });
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"execution_id": id, "workflow_id": workflow_id, "version": version})),
    )
        .into_response())
}

async fn ensure_workflow(master: &Master, workflow_id: &str) -> Result<(), ApiError> {
    match master.catalog.latest(workflow_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("workflow", workflow_id)),
    }
}

fn view(workflow_id: &str, hook: &WebhookRecord) -> Value {
    json!({
        "workflow_id": workflow_id,
        "auth": hook.auth.as_str(),
        "enabled_at": hook.enabled_at,
        "url": format!("/hooks/{workflow_id}"),
    })
}

/// What `PUT` asks for: the auth, and the secret to use (`None`: generate one).
fn parse_enable(body: &[u8]) -> Result<(WebhookAuth, Option<SigningSecret>), ApiError> {
    let request = object_body(body, true)?;
    let mut problems = Vec::new();
    let auth = match request.get("auth") {
        None | Some(Value::Null) => WebhookAuth::Signature,
        Some(Value::String(a)) if a == "signature" => WebhookAuth::Signature,
        Some(Value::String(a)) if a == "bearer" => WebhookAuth::Bearer,
        Some(other) => {
            problems.push(problem(
                "$.auth",
                format!("expected \"signature\" or \"bearer\", found {other}"),
            ));
            WebhookAuth::Signature
        }
    };
    let secret = match request.get("secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(_)) if auth == WebhookAuth::Bearer => {
            problems.push(problem(
                "$.secret",
                "a bearer webhook has no secret (callers send an API token)",
            ));
            None
        }
        Some(Value::String(s)) => match SigningSecret::parse(s) {
            Ok(secret) => Some(secret),
            Err(e) => {
                problems.push(problem("$.secret", e));
                None
            }
        },
        Some(other) => {
            problems.push(problem(
                "$.secret",
                format!(
                    "expected a `whsec_<base64>` string, found {}",
                    kind_name(other)
                ),
            ));
            None
        }
    };
    if let Some(k) = request
        .keys()
        .find(|k| !matches!(k.as_str(), "auth" | "secret"))
    {
        problems.push(problem(
            &format!("$.{k}"),
            "unknown field (expected auth, secret)",
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(
            "invalid_input",
            format!("the webhook has {} problem(s)", problems.len()),
            problems,
        ));
    }
    Ok((auth, secret))
}

/// `PUT /workflows/{id}/webhook`: enables (or re-keys) the webhook. A generated secret is in
/// this answer only.
pub async fn enable(
    State(master): AppState,
    Path(workflow_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (auth, given) = parse_enable(&body)?;
    ensure_workflow(&master, &workflow_id).await?;
    let mut generated = None;
    let sealed_secret = match auth {
        WebhookAuth::Bearer => None,
        WebhookAuth::Signature => {
            let key = master.sealing_key.as_ref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_vault",
                    "a signed webhook's secret is sealed with the vault key: set \
                     BATON_CREDENTIALS_KEY on the master, or use {\"auth\": \"bearer\"}",
                )
            })?;
            let secret = given.unwrap_or_else(|| {
                let s = SigningSecret::generate();
                generated = Some(s.to_text());
                s
            });
            Some(webhook::seal(key, &workflow_id, &secret))
        }
    };
    let hook = WebhookRecord {
        auth,
        sealed_secret,
        enabled_at: rfc3339_millis(master.clock.now_utc()),
    };
    master
        .history
        .set_webhook(&workflow_id, Some(&hook))
        .await?;
    let mut answer = view(&workflow_id, &hook);
    if let Some(secret) = generated {
        answer["secret"] = Value::String(secret.to_string());
    }
    Ok(Json(answer))
}

/// `GET /workflows/{id}/webhook`: whether and how it is enabled (never the secret).
pub async fn show(
    State(master): AppState,
    Path(workflow_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    ensure_workflow(&master, &workflow_id).await?;
    match master.history.webhook(&workflow_id).await? {
        Some(hook) => Ok(Json(view(&workflow_id, &hook))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the webhook of `{workflow_id}` is disabled"),
        )),
    }
}

/// `DELETE /workflows/{id}/webhook`: disables it (its secret is erased).
pub async fn disable(
    State(master): AppState,
    Path(workflow_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ensure_workflow(&master, &workflow_id).await?;
    master.history.set_webhook(&workflow_id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_content_types_are_webhook_bodies() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/cloudevents+json"));
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/jsonp",
        ] {
            assert!(!with(refused), "{refused}");
        }
        assert!(!is_json(&HeaderMap::new()), "no content type");
    }
}
