//! `/credentials`: secrets go into the vault (encrypted at rest); responses never carry them.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use baton_engine::CredentialScope;
use baton_engine::ports::CredentialVault;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, object_body, problem};
use baton_core::value::kind_name;

fn vault(master: &crate::app::Master) -> Result<&dyn CredentialVault, ApiError> {
    master.vault.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_vault",
            "no credential vault is configured on this master",
        )
    })
}

pub async fn create(State(master): AppState, body: Bytes) -> Result<Response, ApiError> {
    let request = object_body(&body, false)?;
    let mut problems = Vec::new();
    let text = |field: &str, problems: &mut Vec<Value>| match request.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        other => {
            problems.push(problem(
                &format!("$.{field}"),
                format!(
                    "required: a non-empty string, found {}",
                    other.map(kind_name).unwrap_or("nothing")
                ),
            ));
            String::new()
        }
    };
    let name = text("name", &mut problems);
    let type_name = text("type", &mut problems);
    let data = match request.get("data") {
        Some(Value::Object(m)) => m.clone(),
        other => {
            problems.push(problem(
                "$.data",
                format!(
                    "required: an object of secret fields, found {}",
                    other.map(kind_name).unwrap_or("nothing")
                ),
            ));
            Default::default()
        }
    };
    let scope = scope_of(&request, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::invalid(
            "invalid_input",
            format!("the credential has {} problem(s)", problems.len()),
            problems,
        ));
    }
    let meta = vault(&master)?
        .put(&name, &type_name, &data, &scope)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(meta))).into_response())
}

/// `hosts` (required: where the credential may be sent; `["*"]` for anywhere) and
/// `workflows` (optional: the workflow ids that may use it).
fn scope_of(
    request: &serde_json::Map<String, Value>,
    problems: &mut Vec<Value>,
) -> CredentialScope {
    let strings = |field: &str, problems: &mut Vec<Value>| -> Option<Vec<String>> {
        match request.get(field)? {
            Value::Array(items) if items.iter().all(Value::is_string) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            other => {
                problems.push(problem(
                    &format!("$.{field}"),
                    format!("expected an array of strings, found {}", kind_name(other)),
                ));
                None
            }
        }
    };
    let hosts = match request.get("hosts") {
        None => {
            problems.push(problem(
                "$.hosts",
                "required: the hosts the credential may be sent to (`api.example.com`, \
                 `*.example.com`), or [\"*\"] for any host"
                    .to_string(),
            ));
            Vec::new()
        }
        Some(_) => strings("hosts", problems).unwrap_or_default(),
    };
    let workflows = strings("workflows", problems);
    let scope = CredentialScope { hosts, workflows };
    if let Err(e) = scope.validate() {
        problems.push(problem("$.hosts", e));
    }
    scope
}

pub async fn list(State(master): AppState) -> Result<Json<Value>, ApiError> {
    let all = vault(&master)?.list().await?;
    Ok(Json(json!({ "credentials": all })))
}

pub async fn remove(
    State(master): AppState,
    Path(credential_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !vault(&master)?.delete(&credential_id).await? {
        return Err(ApiError::not_found("credential", &credential_id));
    }
    Ok(StatusCode::NO_CONTENT)
}
