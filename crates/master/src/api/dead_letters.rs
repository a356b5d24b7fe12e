//! `GET /dead-letters`: the head of the workers' dead-letter queue, read without taking a
//! message (filters `reason`, `execution`; `limit` bounds what is read), for operators and the
//! dashboard's dead-lettered executions. Replay and purge stay with `baton dlq` (README,
//! "Operations → Dead letters").

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use baton_amqp::{DELIVERY_COUNT_HEADER, DeadLetter, DeadLetterFilter};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

/// The most messages one request reads.
const MAX_LIMIT: usize = 1000;

pub async fn list(
    State(master): AppState,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = match query.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`limit` must be an integer from 1 to {MAX_LIMIT}, not `{l}`"
                ))
            })?,
    };
    let given = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
    let filter = DeadLetterFilter {
        ids: Vec::new(),
        reason: given("reason"),
        execution: given("execution"),
    };
    let letters = master.backend.dead_letters(limit).await?;
    let rows: Vec<Value> = letters
        .iter()
        .filter(|l| filter.matches(l))
        .map(view)
        .collect();
    Ok(Json(json!({
        "dead_letters": rows,
        "read": letters.len(),
        "limit": limit,
    })))
}

/// What the API shows of a dead letter (the body stays with `baton dlq show`).
fn view(letter: &DeadLetter) -> Value {
    json!({
        "id": letter.id,
        "execution_id": letter.body_field("execution_id"),
        "workflow_id": letter.body_field("workflow_id"),
        "node_id": letter.body_field("node_id").or_else(|| letter.body_field("current_node")),
        "reason": letter.reason(),
        "dead_lettered_at": letter.dead_lettered_at(),
        "delivery_count": letter.headers.get(DELIVERY_COUNT_HEADER),
        "bytes": letter.body.len(),
    })
}
