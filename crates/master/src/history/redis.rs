//! The history in Redis, under its own key prefix (RFC 0006 lists the keys; `redis_keys.rs`
//! says where they are on a single node and on a cluster). Event writes are single Lua
//! scripts, so replicas writing events of the same execution never race.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use baton_core::message::{Completion, StatusEvent};
use baton_engine::{Clock, SystemClock};
use baton_redis::RedisConnection;
use serde_json::Value;

use super::model::index_member;
use super::model::{ExecutionRecord, NewExecution, RunEvent, Schedule, Scheduled};
use super::redis_index::{self as index, err};
use super::redis_keys::Layout;
use super::redis_schedules as schedules;
use super::{History, HistoryError, IdempotentStart, ListQuery, Page, WebhookRecord};

/// Creates the record of an execution first seen through its events, records a run's event if
/// it outranks the stored one, refreshes the TTLs. Returns 1 when the record was created.
const APPLY_STATUS: &str = r#"
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'workflow_id', ARGV[5], 'status', 'running', 'trigger', 'cli',
             'started_at', ARGV[6], 'input', 'null')
  redis.call('ZADD', KEYS[4], 0, ARGV[7])
  redis.call('ZADD', KEYS[5], 0, ARGV[7])
  created = 1
end
local r = redis.call('HGET', KEYS[2], ARGV[1])
if (not r) or tonumber(r) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
end
-- The indexes (4, 5) live as long as their newest member's record.
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return created
"#;

/// Sets the final fields of an execution (creating its record if it was never seen).
const APPLY_COMPLETION: &str = r#"
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'workflow_id', ARGV[7], 'trigger', 'cli', 'started_at', ARGV[8],
             'input', 'null')
  redis.call('ZADD', KEYS[4], 0, ARGV[9])
  redis.call('ZADD', KEYS[5], 0, ARGV[9])
  created = 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'completed_at', ARGV[2], 'duration_ms', ARGV[3],
           'final_context', ARGV[5])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'failure_reason', ARGV[4])
end
-- The indexes (4, 5) live as long as their newest member's record.
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
return created
"#;

/// Redis history. Cheap to clone.
#[derive(Clone)]
pub struct RedisHistory {
    conn: RedisConnection,
    layout: Layout,
    max_executions: u64,
    retention_secs: u64,
    apply_status: redis::Script,
    apply_completion: redis::Script,
    /// What the retention counts from.
    clock: Arc<dyn Clock>,
}

impl RedisHistory {
    /// The history under `prefix`. On a single node every key is `<prefix><rest>`, as before
    /// clusters; on a cluster the executions and their indexes are spread over `buckets`
    /// hash-tagged buckets (`BATON_REDIS_BUCKETS`; RFC 0009, "Buckets (no hot slot)").
    pub fn new(
        conn: RedisConnection,
        prefix: &str,
        max_executions: u64,
        retention_secs: u64,
        buckets: u32,
    ) -> Self {
        let layout = match conn {
            RedisConnection::Single(_) => Layout::Unsharded {
                prefix: prefix.to_string(),
            },
            RedisConnection::Cluster(_) => Layout::buckets(prefix, buckets),
        };
        Self {
            conn,
            layout,
            max_executions,
            retention_secs,
            apply_status: redis::Script::new(APPLY_STATUS),
            apply_completion: redis::Script::new(APPLY_COMPLETION),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses the cluster's bucketed layout whatever the connection (tests on a single node).
    pub fn with_buckets(mut self, buckets: u32) -> Self {
        self.layout = Layout::buckets(self.layout.prefix(), buckets);
        self
    }

    /// Reads the time from `clock` (default [`SystemClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A key of the master's unsharded state (idempotency, webhooks, ticks).
    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.layout.shared())
    }

    fn schedule_keys(&self) -> schedules::Keys {
        schedules::Keys::new(&self.layout.shared())
    }

    /// Trims the bucket of a newly recorded execution (the only bucket that grew).
    async fn trim(&self, execution_id: &str) -> Result<(), HistoryError> {
        let cutoff = self.clock.now_utc().timestamp_millis()
            - i64::try_from(self.retention_secs * 1000).unwrap_or(i64::MAX);
        let b = self.layout.bucket_of(execution_id);
        let kept = self.layout.kept_per_bucket(self.max_executions);
        index::trim(&self.conn, &self.layout, b, cutoff, kept).await
    }
}

#[async_trait]
impl History for RedisHistory {
    async fn create(&self, new: &NewExecution) -> Result<(), HistoryError> {
        let s = &new.summary;
        let keys = self.layout.execution_keys(&s.execution_id, &s.workflow_id);
        let member = index_member(&s.started_at, &s.execution_id);
        let def_key = self.layout.definition(&new.definition_hash);
        let mut def = redis::pipe();
        def.cmd("SET")
            .arg(&def_key)
            .arg(new.definition.to_string())
            .arg("EX")
            .arg(self.retention_secs)
            .ignore();
        let mut fields: Vec<(&str, String)> = vec![
            ("workflow_id", s.workflow_id.clone()),
            ("status", s.status.clone()),
            ("trigger", s.trigger.clone()),
            ("started_at", s.started_at.clone()),
            ("input", new.input.to_string()),
            ("def", new.definition_hash.clone()),
        ];
        if let Some(v) = s.version {
            fields.push(("version", v.to_string()));
        }
        if let Some(r) = &new.replay_of {
            fields.push(("replay_of", r.clone()));
        }
        // One pipeline per slot: the definition rides with the record when they share one
        // (always on a single node), else it is a command of its own.
        let same_slot =
            self.layout.bucket_of(&new.definition_hash) == self.layout.bucket_of(&s.execution_id);
        let mut pipe = if same_slot {
            def.clone()
        } else {
            redis::pipe()
        };
        pipe.cmd("HSET").arg(&keys[0]).arg(fields).ignore();
        pipe.cmd("EXPIRE")
            .arg(&keys[0])
            .arg(self.retention_secs)
            .ignore();
        // The indexes (3, 4) live as long as their newest member's record.
        for index in &keys[3..] {
            pipe.cmd("ZADD").arg(index).arg(0).arg(&member).ignore();
            pipe.cmd("EXPIRE")
                .arg(index)
                .arg(self.retention_secs)
                .ignore();
        }
        let mut conn = self.conn.clone();
        if same_slot {
            let _: () = pipe.query_async(&mut conn).await.map_err(err)?;
        } else {
            let mut conn2 = self.conn.clone();
            let (_, _): ((), ()) =
                futures_util::try_join!(pipe.query_async(&mut conn), def.query_async(&mut conn2))
                    .map_err(err)?;
        }
        self.trim(&s.execution_id).await
    }

    async fn apply_status(&self, event: &StatusEvent) -> Result<(), HistoryError> {
        let mut conn = self.conn.clone();
        let run = RunEvent::of(event);
        let keys = self
            .layout
            .execution_keys(&event.execution_id, &event.workflow_id);
        let json = serde_json::to_string(event).map_err(|e| HistoryError(e.to_string()))?;
        let created: i64 = self
            .apply_status
            .key(&keys[..])
            .arg(&run.key)
            .arg(run.rank)
            .arg(json)
            .arg(self.retention_secs)
            .arg(&event.workflow_id)
            .arg(&event.executed_at)
            .arg(index_member(&event.executed_at, &event.execution_id))
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        if created == 1 {
            self.trim(&event.execution_id).await?;
        }
        Ok(())
    }

    async fn apply_completion(&self, c: &Completion) -> Result<(), HistoryError> {
        let mut conn = self.conn.clone();
        let keys = self.layout.execution_keys(&c.execution_id, &c.workflow_id);
        let completed_ms = chrono::DateTime::parse_from_rfc3339(&c.completed_at)
            .map(|d| d.timestamp_millis())
            .unwrap_or_else(|_| self.clock.now_utc().timestamp_millis());
        let started = super::model::now_rfc3339_at(
            completed_ms - i64::try_from(c.total_duration_ms).unwrap_or(0),
        );
        let context = Value::Object(c.final_context.clone()).to_string();
        let created: i64 = self
            .apply_completion
            .key(&keys[..])
            .arg(c.status.as_str())
            .arg(&c.completed_at)
            .arg(c.total_duration_ms)
            .arg(c.failure_reason.as_deref().unwrap_or(""))
            .arg(context)
            .arg(self.retention_secs)
            .arg(&c.workflow_id)
            .arg(&started)
            .arg(index_member(&started, &c.execution_id))
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        if created == 1 {
            self.trim(&c.execution_id).await?;
        }
        Ok(())
    }

    async fn get(&self, execution_id: &str) -> Result<Option<ExecutionRecord>, HistoryError> {
        let mut conn = self.conn.clone();
        let keys = self.layout.record(execution_id);
        let (h, ev): (HashMap<String, String>, HashMap<String, String>) = redis::pipe()
            .cmd("HGETALL")
            .arg(&keys[0])
            .cmd("HGETALL")
            .arg(&keys[2])
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        if h.is_empty() {
            return Ok(None);
        }
        let runs = ev
            .values()
            .filter_map(|v| serde_json::from_str::<StatusEvent>(v).ok())
            .collect();
        let parse = |k: &str| h.get(k).and_then(|v| serde_json::from_str::<Value>(v).ok());
        Ok(Some(ExecutionRecord {
            summary: index::summary_of(execution_id, &h),
            input: parse("input").unwrap_or(Value::Null),
            final_context: parse("final_context").and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            }),
            definition_hash: h.get("def").cloned(),
            replay_of: h.get("replay_of").cloned(),
            runs,
        }))
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, HistoryError> {
        index::list(&self.conn, &self.layout, q).await
    }

    async fn definition(&self, hash: &str) -> Result<Option<Value>, HistoryError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.layout.definition(hash))
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn claim_idempotency(
        &self,
        workflow_id: &str,
        key: &str,
        claim: &IdempotentStart,
    ) -> Result<Option<IdempotentStart>, HistoryError> {
        let mut conn = self.conn.clone();
        let k = self.key(&format!("idem:{workflow_id}:{key}"));
        let value = serde_json::json!({
            "execution_id": claim.execution_id,
            "version": claim.version,
            "body_hash": claim.body_hash,
        })
        .to_string();
        let set: Option<String> = redis::cmd("SET")
            .arg(&k)
            .arg(&value)
            .arg("NX")
            .arg("EX")
            .arg(86_400)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        if set.is_some() {
            return Ok(None);
        }
        let raw: Option<String> = redis::cmd("GET")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        let v: Value = raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or(Value::Null);
        Ok(Some(IdempotentStart {
            execution_id: v["execution_id"].as_str().unwrap_or_default().to_string(),
            version: v["version"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            body_hash: v["body_hash"].as_str().unwrap_or_default().to_string(),
        }))
    }

    async fn webhook(&self, workflow_id: &str) -> Result<Option<WebhookRecord>, HistoryError> {
        let mut conn = self.conn.clone();
        let k = self.key(&format!("hook:{workflow_id}"));
        let raw: Option<String> = redis::cmd("GET")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        match serde_json::from_str(&raw) {
            Ok(record) => Ok(Some(record)),
            Err(_) => {
                // An older master's clear-text secret: erased, the webhook is off until enabled.
                tracing::warn!(%workflow_id, "a clear-text webhook secret was erased; enable the webhook again");
                let _: i64 = redis::cmd("DEL")
                    .arg(&k)
                    .query_async(&mut conn)
                    .await
                    .map_err(err)?;
                Ok(None)
            }
        }
    }

    async fn set_webhook(
        &self,
        workflow_id: &str,
        webhook: Option<&WebhookRecord>,
    ) -> Result<(), HistoryError> {
        let mut conn = self.conn.clone();
        let k = self.key(&format!("hook:{workflow_id}"));
        match webhook {
            Some(w) => {
                let json = serde_json::to_string(w).map_err(|e| HistoryError(e.to_string()))?;
                redis::cmd("SET")
                    .arg(k)
                    .arg(json)
                    .query_async(&mut conn)
                    .await
            }
            None => redis::cmd("DEL").arg(k).query_async(&mut conn).await,
        }
        .map_err(err)
    }

    async fn claim_webhook_message(
        &self,
        workflow_id: &str,
        message_id: &str,
        ttl_secs: u64,
    ) -> Result<bool, HistoryError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(&format!("hookmsg:{workflow_id}:{message_id}")))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs.max(1))
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(set.is_some())
    }

    async fn release_webhook_message(
        &self,
        workflow_id: &str,
        message_id: &str,
    ) -> Result<(), HistoryError> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(self.key(&format!("hookmsg:{workflow_id}:{message_id}")))
            .query_async(&mut conn)
            .await
            .map_err(err)
    }

    async fn put_schedule(
        &self,
        schedule: &Schedule,
        next_ms: Option<i64>,
    ) -> Result<(), HistoryError> {
        schedules::put(self.conn.clone(), &self.schedule_keys(), schedule, next_ms).await
    }

    async fn schedules(&self) -> Result<Vec<Scheduled>, HistoryError> {
        schedules::all(self.conn.clone(), &self.schedule_keys()).await
    }

    async fn due_schedules(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Scheduled>, HistoryError> {
        schedules::due(self.conn.clone(), &self.schedule_keys(), now_ms, limit).await
    }

    async fn advance_schedule(
        &self,
        schedule_id: &str,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> Result<bool, HistoryError> {
        let keys = self.schedule_keys();
        schedules::advance(self.conn.clone(), &keys, schedule_id, from_ms, to_ms).await
    }

    async fn delete_schedule(&self, schedule_id: &str) -> Result<bool, HistoryError> {
        schedules::delete(self.conn.clone(), &self.schedule_keys(), schedule_id).await
    }

    async fn claim_tick(&self, schedule_id: &str, tick_unix: i64) -> Result<bool, HistoryError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(&format!("tick:{schedule_id}:{tick_unix}")))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(3_600)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(set.is_some())
    }

    async fn ping(&self) -> Result<(), HistoryError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(err)
    }
}
