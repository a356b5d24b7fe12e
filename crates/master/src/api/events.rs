//! `GET /executions/{id}/events`: Server-Sent Events. The stored history first (the latest
//! event of every run, in time order, and the completion if finished), then live events until
//! the completion.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use baton_core::message::Completion;
use futures_util::Stream;
use tokio::sync::{broadcast, mpsc};

use super::AppState;
use super::error::ApiError;
use crate::backend::LiveEvent;
use crate::history::model::runs_in_time_order;
use crate::metrics_names as m;

fn sse_event(event: &LiveEvent) -> Option<Event> {
    let (name, data) = match event {
        LiveEvent::Status(s) => ("status", serde_json::to_string(s)),
        LiveEvent::Completion(c) => ("completion", serde_json::to_string(c)),
    };
    data.ok().map(|d| Event::default().event(name).data(d))
}

/// Counts open streams while alive.
struct Open;
impl Open {
    fn new() -> Self {
        metrics::gauge!(m::SSE_CLIENTS).increment(1.0);
        Open
    }
}
impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(m::SSE_CLIENTS).decrement(1.0);
    }
}

pub async fn stream(
    State(master): AppState,
    Path(execution_id): Path<String>,
) -> Result<Response, ApiError> {
    // Subscribe before reading the history, so nothing falls between the two.
    let mut live = master.fanout.subscribe();
    let record = master
        .history
        .get(&execution_id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution", &execution_id))?;
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let _open = Open::new();
        for run in runs_in_time_order(&record.runs) {
            if let Some(e) = sse_event(&LiveEvent::Status(run))
                && tx.send(e).await.is_err()
            {
                return;
            }
        }
        if record.summary.status != "running" {
            let completion = Completion {
                workflow_id: record.summary.workflow_id.clone(),
                execution_id: record.summary.execution_id.clone(),
                status: match record.summary.status.as_str() {
                    "failed" => baton_core::message::ExecutionStatus::Failed,
                    "halted" => baton_core::message::ExecutionStatus::Halted,
                    _ => baton_core::message::ExecutionStatus::Completed,
                },
                final_context: record.final_context.clone().unwrap_or_default(),
                completed_at: record.summary.completed_at.clone().unwrap_or_default(),
                total_duration_ms: record.summary.duration_ms.unwrap_or(0),
                failure_reason: record.summary.failure_reason.clone(),
            };
            if let Some(e) = sse_event(&LiveEvent::Completion(completion)) {
                let _ = tx.send(e).await;
            }
            return;
        }
        loop {
            let event = tokio::select! {
                () = tx.closed() => return,
                e = live.recv() => e,
            };
            match event {
                Ok(e) if e.execution_id() == execution_id => {
                    let last = matches!(e, LiveEvent::Completion(_));
                    if let Some(sse) = sse_event(&e)
                        && tx.send(sse).await.is_err()
                    {
                        return;
                    }
                    if last {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "an event stream fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(receiver_stream(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn receiver_stream(rx: mpsc::Receiver<Event>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}
