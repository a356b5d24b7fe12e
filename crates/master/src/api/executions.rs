//! `/executions` and `/workflows/{id}/executions`: start (idempotent with a key), list, show,
//! cancel, signal, replay.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::{AppState, object_body, problem};
use crate::app::StartSpec;
use crate::history::model::node_views;
use crate::history::{IdempotentStart, ListQuery};
use baton_core::value::kind_name;

const STATUSES: [&str; 4] = ["running", "completed", "failed", "halted"];

pub async fn start(
    State(master): AppState,
    Path(workflow_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = object_body(&body, true)?;
    let input = request.get("input").cloned().unwrap_or_else(|| json!({}));
    let version = match request.get("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`version` must be a positive integer, not {}",
                        kind_name(v)
                    ))
                })?,
        ),
    };
    if let Some(k) = request
        .keys()
        .find(|k| !matches!(k.as_str(), "input" | "version"))
    {
        return Err(ApiError::bad_request(format!(
            "unknown field `{k}` (expected `input` and optionally `version`)"
        )));
    }
    let found = match version {
        Some(v) => master.catalog.get(&workflow_id, v).await?,
        None => master.catalog.latest(&workflow_id).await?,
    };
    let Some((stored, definition)) = found else {
        return Err(match version {
            Some(v) if master.catalog.latest(&workflow_id).await?.is_some() => {
                ApiError::not_found("version", &format!("{workflow_id}@{v}"))
            }
            _ => ApiError::not_found("workflow", &workflow_id),
        });
    };
    let execution_id = uuid::Uuid::now_v7().to_string();
    if let Some(key) = headers.get("idempotency-key") {
        let key = key
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or_else(|| {
                ApiError::bad_request("`Idempotency-Key` must be 1 to 256 visible ASCII characters")
            })?;
        let body_hash = hex::encode(Sha256::digest(
            Value::Object(request.clone()).to_string().as_bytes(),
        ));
        let claim = IdempotentStart {
            execution_id: execution_id.clone(),
            version: stored.version,
            body_hash: body_hash.clone(),
        };
        if let Some(earlier) = master
            .history
            .claim_idempotency(&workflow_id, key, &claim)
            .await?
        {
            if earlier.body_hash != body_hash {
                return Err(ApiError::conflict(format!(
                    "Idempotency-Key `{key}` was used with a different request body"
                )));
            }
            return Ok((
                StatusCode::OK,
                Json(json!({
                    "execution_id": earlier.execution_id,
                    "workflow_id": workflow_id,
                    "version": earlier.version,
                })),
            )
                .into_response());
        }
    }
    let id = master
        .start(StartSpec {
            execution_id: Some(execution_id),
            workflow_id: workflow_id.clone(),
            version: Some(stored.version),
            definition_hash: stored.hash,
            definition,
            input,
            trigger: "api",
            from_node: None,
            seed: None,
            replay_of: None,
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"execution_id": id, "workflow_id": workflow_id, "version": stored.version})),
    )
        .into_response())
}

pub async fn list(
    State(master): AppState,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = match query.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`limit` must be an integer from 1 to 500, not `{l}`"
                ))
            })?,
    };
    let status = query.get("status").filter(|s| !s.is_empty()).cloned();
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "`status` must be one of running, completed, failed, halted, not `{s}`"
        )));
    }
    let cursor = query.get("cursor").filter(|c| !c.is_empty()).cloned();
    if let Some(c) = &cursor {
        let valid = c.split_once('|').is_some_and(|(t, id)| {
            t.len() == 13 && t.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty()
        });
        if !valid {
            return Err(ApiError::bad_request(
                "`cursor` is not a cursor this API returned (use `next_cursor` as is)",
            ));
        }
    }
    let page = master
        .history
        .list(&ListQuery {
            workflow: query.get("workflow").filter(|w| !w.is_empty()).cloned(),
            status,
            limit,
            cursor,
        })
        .await?;
    Ok(Json(json!({
        "executions": page.executions,
        "next_cursor": page.next_cursor,
    })))
}

pub async fn show(
    State(master): AppState,
    Path(execution_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = master
        .history
        .get(&execution_id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution", &execution_id))?;
    let definition = match &record.definition_hash {
        Some(h) => master.history.definition(h).await?,
        None => None,
    };
    let mut view = match serde_json::to_value(&record.summary) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    view.insert("input".into(), record.input.clone());
    view.insert(
        "final_context".into(),
        record
            .final_context
            .clone()
            .map(Value::Object)
            .unwrap_or(Value::Null),
    );
    view.insert(
        "replay_of".into(),
        record
            .replay_of
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    view.insert(
        "nodes".into(),
        Value::Object(node_views(&record, definition.as_ref())),
    );
    Ok(Json(Value::Object(view)))
}

/// The record of a running execution: 404 when unknown, 409 when finished.
async fn running(
    master: &crate::app::Master,
    execution_id: &str,
    action: &str,
) -> Result<crate::history::ExecutionRecord, ApiError> {
    let record = master
        .history
        .get(execution_id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution", execution_id))?;
    if record.summary.status != "running" {
        return Err(ApiError::conflict(format!(
            "cannot {action} execution `{execution_id}`: it already finished ({})",
            record.summary.status
        )));
    }
    Ok(record)
}

pub async fn cancel(
    State(master): AppState,
    Path(execution_id): Path<String>,
) -> Result<Response, ApiError> {
    running(&master, &execution_id, "cancel").await?;
    master.backend.cancel(&execution_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"execution_id": execution_id, "cancel_requested": true})),
    )
        .into_response())
}

pub async fn signal(
    State(master): AppState,
    Path((execution_id, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = object_body(&body, true)?;
    if let Some(k) = request.keys().find(|k| k.as_str() != "data") {
        return Err(ApiError::bad_request(format!(
            "unknown field `{k}` (the body is `{{\"data\": <any JSON>}}`)"
        )));
    }
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("the signal name is empty"));
    }
    running(&master, &execution_id, "signal").await?;
    let data = request.get("data").cloned().unwrap_or(Value::Null);
    master.backend.signal(&execution_id, &name, data).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"execution_id": execution_id, "name": name})),
    )
        .into_response())
}

pub async fn replay(
    State(master): AppState,
    Path(execution_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let Some(from) = query.get("from").filter(|f| !f.is_empty()).cloned() else {
        return Err(ApiError::bad_request(
            "`from` is required: the id of the node to replay from (`?from=NODE`)",
        ));
    };
    let record = master
        .history
        .get(&execution_id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution", &execution_id))?;
    if record.summary.status == "running" {
        return Err(ApiError::conflict(format!(
            "execution `{execution_id}` is still running; replay needs its stored outputs"
        )));
    }
    let definition = match &record.definition_hash {
        Some(h) => master.history.definition(h).await?,
        None => None,
    };
    let (Some(definition), Some(hash)) = (definition, record.definition_hash.clone()) else {
        return Err(ApiError::conflict(format!(
            "execution `{execution_id}` was not started by this master (or its definition expired): nothing to replay"
        )));
    };
    let compiled = master.validate(&definition)?;
    if compiled.node(&from).is_none() {
        let known: Vec<&str> = compiled.nodes.iter().map(|n| n.id.as_str()).collect();
        return Err(ApiError::invalid(
            "invalid_input",
            format!("`{from}` is not a node of the workflow"),
            vec![problem(
                "from",
                format!("unknown node `{from}`; nodes: {}", known.join(", ")),
            )],
        ));
    }
    let mut seed = record.final_context.clone().unwrap_or_default();
    seed.remove("$input");
    seed.remove("$trigger");
    let id = master
        .start(StartSpec {
            execution_id: None,
            workflow_id: record.summary.workflow_id.clone(),
            version: record.summary.version,
            definition_hash: hash,
            definition,
            input: record.input.clone(),
            trigger: "replay",
            from_node: Some(from),
            seed: Some(seed),
            replay_of: Some(execution_id.clone()),
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"execution_id": id, "replay_of": execution_id})),
    )
        .into_response())
}
