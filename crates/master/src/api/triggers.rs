//! Triggers: cron schedules (webhooks are `webhooks.rs`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, object_body, problem};
use crate::history::model::rfc3339_millis;
use crate::history::{Missed, Schedule, Scheduled};
use crate::{cron, scheduler};
use baton_core::value::kind_name;

async fn ensure_workflow(master: &crate::app::Master, workflow_id: &str) -> Result<(), ApiError> {
    match master.catalog.latest(workflow_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("workflow", workflow_id)),
    }
}

/// A schedule as the API shows it, with the next tick the scheduler will handle.
fn schedule_view(entry: &Scheduled) -> Value {
    let s = &entry.schedule;
    let next = entry
        .next_ms
        .and_then(cron::from_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    json!({
        "schedule_id": s.schedule_id,
        "workflow_id": s.workflow_id,
        "cron": s.cron,
        "timezone": s.timezone,
        "missed": s.missed.as_str(),
        "input": s.input,
        "created_at": s.created_at,
        "next_run_at": next,
    })
}

pub async fn add_schedule(
    State(master): AppState,
    Path(workflow_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = object_body(&body, false)?;
    let mut problems = Vec::new();
    let cron = match request.get("cron") {
        Some(Value::String(c)) => {
            if let Err(e) = cron::parse_cron(c) {
                problems.push(problem("$.cron", e));
            }
            c.clone()
        }
        other => {
            problems.push(problem(
                "$.cron",
                format!(
                    "required: a cron expression such as \"0 */5 * * * *\", found {}",
                    other.map(kind_name).unwrap_or("nothing")
                ),
            ));
            String::new()
        }
    };
    let timezone = match request.get("timezone") {
        None | Some(Value::Null) => "UTC".to_string(),
        Some(Value::String(t)) => {
            if t.parse::<chrono_tz::Tz>().is_err() {
                problems.push(problem(
                    "$.timezone",
                    format!("`{t}` is not an IANA time zone (e.g. Europe/Paris, UTC)"),
                ));
            }
            t.clone()
        }
        Some(other) => {
            problems.push(problem(
                "$.timezone",
                format!(
                    "expected an IANA time zone name, found {}",
                    kind_name(other)
                ),
            ));
            String::new()
        }
    };
    let missed = match request.get("missed") {
        None | Some(Value::Null) => Missed::default(),
        Some(v) => v.as_str().and_then(Missed::parse).unwrap_or_else(|| {
            let found = match v {
                Value::String(s) => format!("`{s}`"),
                other => kind_name(other).to_string(),
            };
            problems.push(problem(
                "$.missed",
                format!(
                    "expected one of {}, found {found}",
                    Missed::NAMES.join(", ")
                ),
            ));
            Missed::default()
        }),
    };
    for k in request
        .keys()
        .filter(|k| !matches!(k.as_str(), "cron" | "timezone" | "missed" | "input"))
    {
        problems.push(problem(
            &format!("$.{k}"),
            "unknown field (expected cron, timezone, missed, input)",
        ));
    }
    let now = master.clock.now_utc();
    let schedule = Schedule {
        schedule_id: uuid::Uuid::now_v7().to_string(),
        workflow_id,
        cron,
        timezone,
        input: request.get("input").cloned().unwrap_or_else(|| json!({})),
        created_at: rfc3339_millis(now),
        missed,
    };
    let mut first = None;
    if problems.is_empty() {
        // Only a valid expression in a known zone can be impossible. Proving it searches
        // years of calendar (a fraction of a second): off the async threads.
        let (cron_expr, timezone) = (schedule.cron.clone(), schedule.timezone.clone());
        let checked = tokio::task::spawn_blocking(move || {
            scheduler::first_tick_of(&cron_expr, &timezone, now)
        })
        .await
        .map_err(|e| ApiError::internal(format!("the cron check stopped: {e}")))?;
        match checked {
            Ok(t) => first = Some(cron::millis(t)),
            Err(e) => problems.push(problem("$.cron", e)),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(
            "invalid_input",
            format!("the schedule has {} problem(s)", problems.len()),
            problems,
        ));
    }
    ensure_workflow(&master, &schedule.workflow_id).await?;
    master.history.put_schedule(&schedule, first).await?;
    Ok((
        StatusCode::CREATED,
        Json(schedule_view(&Scheduled {
            schedule,
            next_ms: first,
        })),
    )
        .into_response())
}

pub async fn list_schedules(
    State(master): AppState,
    Path(workflow_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    ensure_workflow(&master, &workflow_id).await?;
    let list: Vec<Value> = master
        .history
        .schedules()
        .await?
        .iter()
        .filter(|s| s.schedule.workflow_id == workflow_id)
        .map(schedule_view)
        .collect();
    Ok(Json(json!({ "schedules": list })))
}

pub async fn remove_schedule(
    State(master): AppState,
    Path((workflow_id, schedule_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let belongs =
        master.history.schedules().await?.iter().any(|s| {
            s.schedule.schedule_id == schedule_id && s.schedule.workflow_id == workflow_id
        });
    if !belongs || !master.history.delete_schedule(&schedule_id).await? {
        return Err(ApiError::not_found(
            "schedule",
            &format!("{workflow_id}/{schedule_id}"),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
