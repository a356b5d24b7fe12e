//! `/credentials`: secrets go into the vault (encrypted at rest); responses never carry them.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
    if !problems.is_empty() {
        return Err(ApiError::invalid(
            "invalid_input",
            format!("the credential has {} problem(s)", problems.len()),
            problems,
        ));
    }
    let meta = vault(&master)?.put(&name, &type_name, &data).await?;
    Ok((StatusCode::CREATED, Json(json!(meta))).into_response())
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
