//! The history in memory (`baton dev`), optionally saved to a JSON file so a restart loses
//! nothing: [`MemoryHistory::save`] writes it atomically (temporary file + rename), readable by
//! its owner only (mode 0600, also enforced on an existing file at load).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use baton_core::ErrorCode;
use baton_core::message::{Completion, ErrorInfo, ExecutionStatus, NodeStatus, StatusEvent};
use baton_engine::{Clock, SystemClock};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{
    ExecutionRecord, NewExecution, RunEvent, Schedule, Scheduled, Summary, index_member,
    member_millis, now_rfc3339_at,
};
use super::{History, HistoryError, IdempotentStart, ListQuery, Page, WebhookRecord};

mod private_file;

use private_file::{restrict_mode, write_private};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    summary: Summary,
    input: Value,
    final_context: Option<Map<String, Value>>,
    definition_hash: Option<String>,
    replay_of: Option<String>,
    /// Run key → (rank, latest event).
    runs: BTreeMap<String, (u64, StatusEvent)>,
    member: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    records: HashMap<String, Stored>,
    definitions: HashMap<String, Value>,
    /// `workflow|key` → (execution id, version, body hash).
    idempotency: HashMap<String, (String, u32, String)>,
    /// Enabled webhooks (secrets sealed).
    #[serde(default)]
    webhooks: HashMap<String, WebhookRecord>,
    /// Clear-text webhook secrets of older state files: read to be erased, never written.
    #[serde(default, skip_serializing)]
    hooks: HashMap<String, String>,
    schedules: BTreeMap<String, Schedule>,
    /// Schedule id → cursor (unix ms of its first unhandled tick).
    #[serde(default)]
    cursors: BTreeMap<String, i64>,
    /// (cursor, schedule id): the schedules by next tick.
    #[serde(skip)]
    due: BTreeSet<(i64, String)>,
    /// Workflow definitions of the catalog, per workflow in version order (see `dev`).
    #[serde(default)]
    catalog: BTreeMap<String, Vec<Value>>,
    #[serde(skip)]
    index: BTreeSet<String>,
    #[serde(skip)]
    ticks: BTreeSet<(String, i64)>,
    /// `workflow|message id` → when it may be forgotten (ms, the history's clock).
    #[serde(skip)]
    webhook_messages: HashMap<String, i64>,
}

/// Memory history. See the module documentation.
pub struct MemoryHistory {
    state: Mutex<State>,
    file: Option<PathBuf>,
    dirty: AtomicBool,
    /// Schedule records read so far (see [`Self::schedule_reads`]).
    schedule_reads: AtomicU64,
    max_executions: u64,
    retention_secs: u64,
    /// What the retention counts from.
    clock: Arc<dyn Clock>,
}

impl MemoryHistory {
    /// A history kept in memory only.
    pub fn new(max_executions: u64, retention_secs: u64) -> Self {
        Self {
            state: Mutex::new(State::default()),
            file: None,
            dirty: AtomicBool::new(false),
            schedule_reads: AtomicU64::new(0),
            max_executions,
            retention_secs,
            clock: Arc::new(SystemClock),
        }
    }

    /// A history loaded from `file` if it exists, saved back to it by [`Self::save`].
    pub fn open(
        file: &Path,
        max_executions: u64,
        retention_secs: u64,
    ) -> Result<Self, HistoryError> {
        let mut state: State = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                HistoryError(format!("{} is not a Baton state file: {e}", file.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(HistoryError(format!("cannot read {}: {e}", file.display()))),
        };
        state.index = state.records.values().map(|r| r.member.clone()).collect();
        state.due = state
            .cursors
            .iter()
            .map(|(id, ms)| (*ms, id.clone()))
            .collect();
        restrict_mode(file)
            .map_err(|e| HistoryError(format!("cannot make {} private: {e}", file.display())))?;
        let cleartext = !state.hooks.is_empty();
        if cleartext {
            // Rewritten at the next save without them: those webhooks are off until enabled.
            tracing::warn!(
                workflows = ?state.hooks.keys().collect::<Vec<_>>(),
                "clear-text webhook secrets in the state file were erased; enable the webhooks again"
            );
            state.hooks.clear();
        }
        Ok(Self {
            state: Mutex::new(state),
            file: Some(file.to_path_buf()),
            dirty: AtomicBool::new(cleartext),
            schedule_reads: AtomicU64::new(0),
            max_executions,
            retention_secs,
            clock: Arc::new(SystemClock),
        })
    }

    /// Fails every execution the loaded state shows running: a restart lost its in-memory
    /// state (context, tokens, timers and waits), so it can neither go on nor be cancelled.
    /// It becomes `failed` with `reason` and its nodes still running or waiting `failed` with
    /// code `CANCELLED`, so nothing stays `running` forever. Returns how many it failed.
    pub fn fail_interrupted(&self, reason: &str) -> usize {
        let now_ms = self.clock.now_utc().timestamp_millis();
        let now = now_rfc3339_at(now_ms);
        let mut s = self.lock();
        let mut failed = 0;
        for rec in s.records.values_mut() {
            if rec.summary.status != "running" {
                continue;
            }
            let started_ms = chrono::DateTime::parse_from_rfc3339(&rec.summary.started_at)
                .map(|d| d.timestamp_millis())
                .unwrap_or(now_ms);
            rec.summary.status = ExecutionStatus::Failed.as_str().to_string();
            rec.summary.completed_at = Some(now.clone());
            rec.summary.duration_ms = u64::try_from(now_ms - started_ms).ok();
            rec.summary.failure_reason = Some(reason.to_string());
            for (_, event) in rec.runs.values_mut() {
                if matches!(event.status, NodeStatus::Running | NodeStatus::Waiting) {
                    event.status = NodeStatus::Failed;
                    event.error = Some(ErrorInfo {
                        message: reason.to_string(),
                        code: ErrorCode::Cancelled.to_string(),
                        details: None,
                    });
                }
            }
            failed += 1;
        }
        if failed > 0 {
            self.changed();
        }
        failed
    }

    /// Reads the time from `clock` (default [`SystemClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many schedule records the schedule reads returned so far: what a scheduler pass
    /// costs.
    pub fn schedule_reads(&self) -> u64 {
        self.schedule_reads.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Workflow definitions saved with the state, per workflow in version order.
    pub fn saved_catalog(&self) -> BTreeMap<String, Vec<Value>> {
        self.lock().catalog.clone()
    }

    /// The enabled webhooks, by workflow id.
    pub fn webhooks(&self) -> Vec<(String, WebhookRecord)> {
        let s = self.lock();
        s.webhooks
            .iter()
            .map(|(id, w)| (id.clone(), w.clone()))
            .collect()
    }

    /// Replaces the catalog snapshot saved with the state.
    pub fn set_catalog(&self, catalog: BTreeMap<String, Vec<Value>>) {
        let mut s = self.lock();
        if s.catalog != catalog {
            s.catalog = catalog;
            self.changed();
        }
    }

    /// Writes the state to its file if it changed since the last save.
    pub fn save(&self) -> Result<(), HistoryError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&*self.lock()).map_err(|e| HistoryError(e.to_string()))?;
        let tmp = file.with_extension("tmp");
        let write = write_private(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, file));
        write.map_err(|e| {
            self.changed();
            HistoryError(format!("cannot write {}: {e}", file.display()))
        })
    }

    fn trim(&self, s: &mut State) {
        let cutoff = self.clock.now_utc().timestamp_millis()
            - i64::try_from(self.retention_secs * 1000).unwrap_or(i64::MAX);
        let max = usize::try_from(self.max_executions).unwrap_or(usize::MAX);
        let mut drop = Vec::new();
        for m in &s.index {
            if member_millis(m) < cutoff || s.index.len() - drop.len() > max {
                drop.push(m.clone());
            } else {
                break;
            }
        }
        for m in drop {
            s.index.remove(&m);
            if let Some((_, id)) = m.split_once('|') {
                s.records.remove(id);
            }
        }
    }

    fn ensure<'a>(
        &self,
        s: &'a mut State,
        execution_id: &str,
        workflow_id: &str,
        started_at: &str,
    ) -> &'a mut Stored {
        if !s.records.contains_key(execution_id) {
            let member = index_member(started_at, execution_id);
            s.index.insert(member.clone());
            s.records.insert(
                execution_id.to_string(),
                Stored {
                    summary: Summary {
                        execution_id: execution_id.to_string(),
                        workflow_id: workflow_id.to_string(),
                        version: None,
                        status: "running".into(),
                        trigger: "cli".into(),
                        started_at: started_at.to_string(),
                        completed_at: None,
                        duration_ms: None,
                        failure_reason: None,
                    },
                    input: Value::Null,
                    final_context: None,
                    definition_hash: None,
                    replay_of: None,
                    runs: BTreeMap::new(),
                    member,
                },
            );
            self.trim(s);
        }
        s.records
            .entry(execution_id.to_string())
            .or_insert_with(|| unreachable_record(execution_id))
    }
}

// `ensure` inserted the record just before; trimming cannot remove the newest one unless the
// limit is zero, which the settings reject. This keeps the function total anyway.
fn unreachable_record(execution_id: &str) -> Stored {
    Stored {
        summary: Summary {
            execution_id: execution_id.to_string(),
            workflow_id: String::new(),
            version: None,
            status: "running".into(),
            trigger: "cli".into(),
            started_at: String::new(),
            completed_at: None,
            duration_ms: None,
            failure_reason: None,
        },
        input: Value::Null,
        final_context: None,
        definition_hash: None,
        replay_of: None,
        runs: BTreeMap::new(),
        member: String::new(),
    }
}

#[async_trait]
impl History for MemoryHistory {
    async fn create(&self, new: &NewExecution) -> Result<(), HistoryError> {
        let mut s = self.lock();
        let id = new.summary.execution_id.clone();
        let member = index_member(&new.summary.started_at, &id);
        s.definitions
            .insert(new.definition_hash.clone(), new.definition.clone());
        s.index.insert(member.clone());
        s.records.insert(
            id,
            Stored {
                summary: new.summary.clone(),
                input: new.input.clone(),
                final_context: None,
                definition_hash: Some(new.definition_hash.clone()),
                replay_of: new.replay_of.clone(),
                runs: BTreeMap::new(),
                member,
            },
        );
        self.trim(&mut s);
        self.changed();
        Ok(())
    }

    async fn apply_status(&self, event: &StatusEvent) -> Result<(), HistoryError> {
        let run = RunEvent::of(event);
        let mut s = self.lock();
        let rec = self.ensure(
            &mut s,
            &event.execution_id,
            &event.workflow_id,
            &event.executed_at,
        );
        let newer = rec.runs.get(&run.key).is_none_or(|(r, _)| *r < run.rank);
        if newer {
            rec.runs.insert(run.key, (run.rank, run.event));
        }
        self.changed();
        Ok(())
    }

    async fn apply_completion(&self, c: &Completion) -> Result<(), HistoryError> {
        let completed_ms = chrono::DateTime::parse_from_rfc3339(&c.completed_at)
            .map(|d| d.timestamp_millis())
            .unwrap_or_else(|_| self.clock.now_utc().timestamp_millis());
        let started =
            now_rfc3339_at(completed_ms - i64::try_from(c.total_duration_ms).unwrap_or(0));
        let mut s = self.lock();
        let rec = self.ensure(&mut s, &c.execution_id, &c.workflow_id, &started);
        rec.summary.status = c.status.as_str().to_string();
        rec.summary.completed_at = Some(c.completed_at.clone());
        rec.summary.duration_ms = Some(c.total_duration_ms);
        rec.summary.failure_reason = c.failure_reason.clone();
        rec.final_context = Some(c.final_context.clone());
        self.changed();
        Ok(())
    }

    async fn get(&self, execution_id: &str) -> Result<Option<ExecutionRecord>, HistoryError> {
        let s = self.lock();
        Ok(s.records.get(execution_id).map(|r| ExecutionRecord {
            summary: r.summary.clone(),
            input: r.input.clone(),
            final_context: r.final_context.clone(),
            definition_hash: r.definition_hash.clone(),
            replay_of: r.replay_of.clone(),
            runs: r.runs.values().map(|(_, e)| e.clone()).collect(),
        }))
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, HistoryError> {
        let s = self.lock();
        let mut out = Vec::new();
        let upper = q.cursor.clone();
        for m in s.index.iter().rev() {
            if upper.as_ref().is_some_and(|c| m >= c) {
                continue;
            }
            let Some(r) = m.split_once('|').and_then(|(_, id)| s.records.get(id)) else {
                continue;
            };
            if q.workflow
                .as_ref()
                .is_some_and(|w| *w != r.summary.workflow_id)
                || q.status.as_ref().is_some_and(|st| *st != r.summary.status)
            {
                continue;
            }
            out.push(r.summary.clone());
            if out.len() == q.limit {
                return Ok(Page {
                    executions: out,
                    next_cursor: Some(m.clone()),
                });
            }
        }
        Ok(Page {
            executions: out,
            next_cursor: None,
        })
    }

    async fn definition(&self, hash: &str) -> Result<Option<Value>, HistoryError> {
        Ok(self.lock().definitions.get(hash).cloned())
    }

    async fn claim_idempotency(
        &self,
        workflow_id: &str,
        key: &str,
        claim: &IdempotentStart,
    ) -> Result<Option<IdempotentStart>, HistoryError> {
        let mut s = self.lock();
        let k = format!("{workflow_id}|{key}");
        if let Some((execution_id, version, body_hash)) = s.idempotency.get(&k) {
            return Ok(Some(IdempotentStart {
                execution_id: execution_id.clone(),
                version: *version,
                body_hash: body_hash.clone(),
            }));
        }
        s.idempotency.insert(
            k,
            (
                claim.execution_id.clone(),
                claim.version,
                claim.body_hash.clone(),
            ),
        );
        self.changed();
        Ok(None)
    }

    async fn webhook(&self, workflow_id: &str) -> Result<Option<WebhookRecord>, HistoryError> {
        Ok(self.lock().webhooks.get(workflow_id).cloned())
    }

    async fn set_webhook(
        &self,
        workflow_id: &str,
        webhook: Option<&WebhookRecord>,
    ) -> Result<(), HistoryError> {
        let mut s = self.lock();
        match webhook {
            Some(w) => s.webhooks.insert(workflow_id.to_string(), w.clone()),
            None => s.webhooks.remove(workflow_id),
        };
        self.changed();
        Ok(())
    }

    async fn claim_webhook_message(
        &self,
        workflow_id: &str,
        message_id: &str,
        ttl_secs: u64,
    ) -> Result<bool, HistoryError> {
        let now = self.clock.now_utc().timestamp_millis();
        let mut s = self.lock();
        s.webhook_messages.retain(|_, until| *until > now);
        let until = now.saturating_add(i64::try_from(ttl_secs.max(1) * 1000).unwrap_or(i64::MAX));
        match s
            .webhook_messages
            .entry(format!("{workflow_id}|{message_id}"))
        {
            std::collections::hash_map::Entry::Occupied(_) => Ok(false),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(until);
                Ok(true)
            }
        }
    }

    async fn release_webhook_message(
        &self,
        workflow_id: &str,
        message_id: &str,
    ) -> Result<(), HistoryError> {
        self.lock()
            .webhook_messages
            .remove(&format!("{workflow_id}|{message_id}"));
        Ok(())
    }

    async fn put_schedule(
        &self,
        schedule: &Schedule,
        next_ms: Option<i64>,
    ) -> Result<(), HistoryError> {
        let mut s = self.lock();
        let id = schedule.schedule_id.clone();
        if let Some(old) = s.cursors.remove(&id) {
            s.due.remove(&(old, id.clone()));
        }
        if let Some(ms) = next_ms {
            s.cursors.insert(id.clone(), ms);
            s.due.insert((ms, id.clone()));
        }
        s.schedules.insert(id, schedule.clone());
        self.changed();
        Ok(())
    }

    async fn schedules(&self) -> Result<Vec<Scheduled>, HistoryError> {
        let s = self.lock();
        let mut out: Vec<Scheduled> = s
            .schedules
            .values()
            .map(|schedule| Scheduled {
                schedule: schedule.clone(),
                next_ms: s.cursors.get(&schedule.schedule_id).copied(),
            })
            .collect();
        out.sort_by(|a, b| a.schedule.created_at.cmp(&b.schedule.created_at));
        self.schedule_reads
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(out)
    }

    async fn due_schedules(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Scheduled>, HistoryError> {
        let s = self.lock();
        let out: Vec<Scheduled> = s
            .due
            .iter()
            .take_while(|(ms, _)| *ms <= now_ms)
            .filter_map(|(ms, id)| {
                s.schedules.get(id).map(|schedule| Scheduled {
                    schedule: schedule.clone(),
                    next_ms: Some(*ms),
                })
            })
            .take(limit)
            .collect();
        self.schedule_reads
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(out)
    }

    async fn advance_schedule(
        &self,
        schedule_id: &str,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> Result<bool, HistoryError> {
        let mut s = self.lock();
        if s.cursors.get(schedule_id) != Some(&from_ms) {
            return Ok(false);
        }
        s.due.remove(&(from_ms, schedule_id.to_string()));
        match to_ms {
            Some(ms) => {
                s.cursors.insert(schedule_id.to_string(), ms);
                s.due.insert((ms, schedule_id.to_string()));
            }
            None => {
                s.cursors.remove(schedule_id);
            }
        }
        self.changed();
        Ok(true)
    }

    async fn delete_schedule(&self, schedule_id: &str) -> Result<bool, HistoryError> {
        let mut s = self.lock();
        let removed = s.schedules.remove(schedule_id).is_some();
        if let Some(ms) = s.cursors.remove(schedule_id) {
            s.due.remove(&(ms, schedule_id.to_string()));
        }
        self.changed();
        Ok(removed)
    }

    async fn claim_tick(&self, schedule_id: &str, tick_unix: i64) -> Result<bool, HistoryError> {
        let mut s = self.lock();
        // Claims older than an hour are never asked again: forget them.
        let horizon = tick_unix - 3_600;
        s.ticks.retain(|(_, t)| *t > horizon);
        Ok(s.ticks.insert((schedule_id.to_string(), tick_unix)))
    }

    async fn ping(&self) -> Result<(), HistoryError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
