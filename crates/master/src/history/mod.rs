//! The execution history the API and the dashboard read: records written when the master
//! starts an execution, then updated by the status and completion events (idempotently, in any
//! order), plus the master's small state (idempotency keys, enabled webhooks with their sealed
//! secrets and recent message ids, schedules, cron claims). Two implementations: Redis
//! (`redis.rs`, with its key layout in `redis_keys.rs` and its list indexes in
//! `redis_index.rs`) and memory (`memory.rs`).

pub mod memory;
pub mod model;
pub mod redis;
mod redis_index;
mod redis_keys;
mod redis_schedules;

use async_trait::async_trait;
use baton_core::message::{Completion, StatusEvent};
use serde_json::Value;

pub use crate::webhook::WebhookRecord;
pub use model::{ExecutionRecord, Missed, NewExecution, RunEvent, Schedule, Scheduled, Summary};

/// A failure of the history's storage.
#[derive(Debug, Clone, thiserror::Error)]
#[error("history store: {0}")]
pub struct HistoryError(pub String);

/// What an `Idempotency-Key` already maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentStart {
    pub execution_id: String,
    pub version: u32,
    pub body_hash: String,
}

/// One page of summaries, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    pub executions: Vec<Summary>,
    pub next_cursor: Option<String>,
}

/// List filters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub workflow: Option<String>,
    pub status: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

#[async_trait]
pub trait History: Send + Sync {
    /// Records a new execution (before its start message is published).
    async fn create(&self, new: &NewExecution) -> Result<(), HistoryError>;
    /// Applies a status event; returns it unchanged for the live fan-out.
    async fn apply_status(&self, event: &StatusEvent) -> Result<(), HistoryError>;
    async fn apply_completion(&self, completion: &Completion) -> Result<(), HistoryError>;
    /// The record with the latest event of every run, `None` when unknown or expired.
    async fn get(&self, execution_id: &str) -> Result<Option<ExecutionRecord>, HistoryError>;
    async fn list(&self, query: &ListQuery) -> Result<Page, HistoryError>;
    /// A definition an execution was started with, by content hash.
    async fn definition(&self, hash: &str) -> Result<Option<Value>, HistoryError>;

    /// Claims `key` for a start; returns the earlier claim when the key was used before.
    async fn claim_idempotency(
        &self,
        workflow_id: &str,
        key: &str,
        claim: &IdempotentStart,
    ) -> Result<Option<IdempotentStart>, HistoryError>;

    /// The workflow's enabled webhook; `None` when disabled (the default).
    async fn webhook(&self, workflow_id: &str) -> Result<Option<WebhookRecord>, HistoryError>;
    /// Enables (`Some`) or disables (`None`) a workflow's webhook.
    async fn set_webhook(
        &self,
        workflow_id: &str,
        webhook: Option<&WebhookRecord>,
    ) -> Result<(), HistoryError>;
    /// Remembers a delivered webhook message id for `ttl_secs`; `false` when it is already
    /// remembered (a replay). Only the first caller of any replica gets `true`.
    async fn claim_webhook_message(
        &self,
        workflow_id: &str,
        message_id: &str,
        ttl_secs: u64,
    ) -> Result<bool, HistoryError>;
    /// Forgets a claimed message id (its execution could not start: the sender may retry it).
    async fn release_webhook_message(
        &self,
        workflow_id: &str,
        message_id: &str,
    ) -> Result<(), HistoryError>;

    /// Stores a schedule with its cursor (its first tick, unix ms; `None`: it never fires),
    /// indexed by that tick.
    async fn put_schedule(
        &self,
        schedule: &Schedule,
        next_ms: Option<i64>,
    ) -> Result<(), HistoryError>;
    /// Every schedule with its cursor, oldest first.
    async fn schedules(&self) -> Result<Vec<Scheduled>, HistoryError>;
    /// At most `limit` schedules whose cursor is at or before `now_ms`, earliest first: reads
    /// only those (an index by cursor), not every schedule.
    async fn due_schedules(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Scheduled>, HistoryError>;
    /// Moves a schedule's cursor from `from_ms` to `to_ms` (`None`: unindexed, it never fires
    /// again) if it is still at `from_ms`; `false` when another pass (of any replica) moved it
    /// first or the schedule is gone. The pass that moves it owns the ticks in between.
    async fn advance_schedule(
        &self,
        schedule_id: &str,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> Result<bool, HistoryError>;
    /// `false` when it did not exist.
    async fn delete_schedule(&self, schedule_id: &str) -> Result<bool, HistoryError>;
    /// Claims one tick of a schedule; only the first caller (of any replica) gets `true`.
    async fn claim_tick(&self, schedule_id: &str, tick_unix: i64) -> Result<bool, HistoryError>;

    /// The store answers.
    async fn ping(&self) -> Result<(), HistoryError>;
}
