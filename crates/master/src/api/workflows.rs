//! `/workflows`: store (validated, versioned by content), list, show, delete.

use baton_core::value::kind_name;
use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, json_body, problem};

/// The id a definition is stored under: its `"id"` (a string), else its `"name"` slugified.
pub fn workflow_id_of(definition: &Value) -> Result<String, ApiError> {
    if let Some(id) = definition.get("id").and_then(Value::as_str) {
        let valid = !id.is_empty()
            && id.len() <= 128
            && id != "."
            && id != ".."
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(ApiError::invalid(
                "invalid_workflow",
                "the workflow id is not usable in a URL",
                vec![problem(
                    "$.id",
                    "must be 1 to 128 characters among letters, digits, `-`, `_` and `.`, not `.` or `..`",
                )],
            ));
        }
        return Ok(id.to_string());
    }
    let name = definition.get("name").and_then(Value::as_str).unwrap_or("");
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').chars().take(128).collect::<String>();
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        return Err(ApiError::invalid(
            "invalid_workflow",
            "the workflow needs an id",
            vec![problem(
                "$",
                "give the definition an `id` (string) or a `name` with letters or digits",
            )],
        ));
    }
    Ok(slug)
}

pub async fn create(State(master): AppState, body: Bytes) -> Result<Response, ApiError> {
    let definition = json_body(&body, None)?;
    if !definition.is_object() {
        return Err(ApiError::invalid(
            "invalid_workflow",
            "a workflow definition is a JSON object",
            vec![problem(
                "$",
                format!("expected an object, found {}", kind_name(&definition)),
            )],
        ));
    }
    // Validation first, so an id problem and the graph's problems are reported together.
    let compiled = master.validate(&definition);
    let id = workflow_id_of(&definition);
    let (compiled, id) = match (compiled, id) {
        (Ok(c), Ok(id)) => (c, id),
        (Err(mut a), Err(b)) => {
            let mut problems = b.problems.unwrap_or_default();
            problems.extend(a.problems.take().unwrap_or_default());
            a.message = format!("the workflow has {} problem(s)", problems.len());
            a.problems = Some(problems);
            return Err(a);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    drop(compiled);
    let (version, added) = master.catalog.put(&id, &definition).await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "workflow_id": version.workflow_id,
            "version": version.version,
            "hash": version.hash,
            "created_at": version.created_at,
        })),
    )
        .into_response())
}

pub async fn list(State(master): AppState) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for v in master.catalog.list().await? {
        let name = master
            .catalog
            .latest(&v.workflow_id)
            .await?
            .and_then(|(_, d)| d.get("name").cloned())
            .unwrap_or(Value::Null);
        out.push(json!({
            "workflow_id": v.workflow_id,
            "name": name,
            "version": v.version,
            "hash": v.hash,
            "created_at": v.created_at,
        }));
    }
    Ok(Json(json!({ "workflows": out })))
}

pub async fn show(
    State(master): AppState,
    Path(workflow_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let found = match query.get("version") {
        Some(v) => {
            let n: u32 = v.parse().map_err(|_| {
                ApiError::bad_request(format!("`version` must be a positive integer, not `{v}`"))
            })?;
            match master.catalog.get(&workflow_id, n).await? {
                Some(f) => f,
                None if master.catalog.latest(&workflow_id).await?.is_some() => {
                    return Err(ApiError::not_found(
                        "version",
                        &format!("{workflow_id}@{n}"),
                    ));
                }
                None => return Err(ApiError::not_found("workflow", &workflow_id)),
            }
        }
        None => master
            .catalog
            .latest(&workflow_id)
            .await?
            .ok_or_else(|| ApiError::not_found("workflow", &workflow_id))?,
    };
    let (version, definition) = found;
    let versions: Vec<Value> = master
        .catalog
        .versions(&workflow_id)
        .await?
        .into_iter()
        .map(|v| json!({"version": v.version, "hash": v.hash, "created_at": v.created_at}))
        .collect();
    Ok(Json(json!({
        "workflow_id": workflow_id,
        "name": definition.get("name").cloned().unwrap_or(Value::Null),
        "latest": {
            "version": version.version,
            "hash": version.hash,
            "created_at": version.created_at,
            "definition": definition,
        },
        "versions": versions,
    })))
}

pub async fn remove(
    State(master): AppState,
    Path(workflow_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !master.catalog.delete(&workflow_id).await? {
        return Err(ApiError::not_found("workflow", &workflow_id));
    }
    // Its triggers go with it: a schedule must not fire a deleted workflow.
    for s in master.history.schedules().await? {
        if s.schedule.workflow_id == workflow_id {
            master
                .history
                .delete_schedule(&s.schedule.schedule_id)
                .await?;
        }
    }
    master.history.set_webhook(&workflow_id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_id_field_else_the_slugified_name() {
        assert_eq!(
            workflow_id_of(&json!({"id": "a_b.c", "name": "x"})).unwrap(),
            "a_b.c"
        );
        assert_eq!(
            workflow_id_of(&json!({"name": "  Order Routing (v2)!"})).unwrap(),
            "order-routing-v2"
        );
        assert!(workflow_id_of(&json!({"name": "!!"})).is_err());
        assert!(workflow_id_of(&json!({"id": "a/b"})).is_err());
    }
}
