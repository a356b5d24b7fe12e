//! The history in Redis, under its own key prefix (RFC 0006 lists the keys). Event writes are
//! single Lua scripts, so replicas writing events of the same execution never race.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use baton_core::message::{Completion, StatusEvent};
use baton_engine::{Clock, SystemClock};
use baton_redis::RedisConnection;
use serde_json::Value;

use super::model::index_member;
use super::model::{ExecutionRecord, NewExecution, RunEvent, Schedule, Scheduled, Summary};
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
    prefix: String,
    max_executions: u64,
    retention_secs: u64,
    apply_status: redis::Script,
    apply_completion: redis::Script,
    /// What the retention counts from.
    clock: Arc<dyn Clock>,
}

fn err(e: redis::RedisError) -> HistoryError {
    HistoryError(e.to_string())
}

/// Executions scanned at most for one list page (status filters skip records).
const MAX_SCANNED: usize = 5_000;

impl RedisHistory {
    pub fn new(
        conn: RedisConnection,
        prefix: &str,
        max_executions: u64,
        retention_secs: u64,
    ) -> Self {
        // On a cluster the history's scripts and pipelines touch a record and the indexes
        // together: one hash tag keeps them on one slot (RFC 0009, "Redis Cluster").
        let prefix = match conn {
            RedisConnection::Single(_) => prefix.to_string(),
            RedisConnection::Cluster(_) => format!("{{{prefix}}}"),
        };
        Self {
            conn,
            prefix,
            max_executions,
            retention_secs,
            apply_status: redis::Script::new(APPLY_STATUS),
            apply_completion: redis::Script::new(APPLY_COMPLETION),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` (default [`SystemClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn schedule_keys(&self) -> schedules::Keys {
        schedules::Keys::new(&self.prefix)
    }

    fn rec(&self, id: &str) -> [String; 3] {
        [
            self.key(&format!("x:{id}")),
            self.key(&format!("x:{id}:rank")),
            self.key(&format!("x:{id}:ev")),
        ]
    }

    fn index(&self, workflow: Option<&str>) -> String {
        match workflow {
            Some(w) => self.key(&format!("idx:{w}")),
            None => self.key("idx"),
        }
    }

    /// Drops the oldest records over the limit and index entries older than the retention.
    async fn trim(&self) -> Result<(), HistoryError> {
        let mut conn = self.conn.clone();
        let idx = self.index(None);
        let cutoff = self.clock.now_utc().timestamp_millis()
            - i64::try_from(self.retention_secs * 1000).unwrap_or(i64::MAX);
        let _: i64 = redis::cmd("ZREMRANGEBYLEX")
            .arg(&idx)
            .arg("-")
            .arg(format!("({cutoff:013}|"))
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        let count: u64 = redis::cmd("ZCARD")
            .arg(&idx)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        if count <= self.max_executions {
            return Ok(());
        }
        let excess = count - self.max_executions;
        let oldest: Vec<String> = redis::cmd("ZRANGE")
            .arg(&idx)
            .arg(0)
            .arg(excess - 1)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        for member in oldest {
            let id = member.split_once('|').map(|(_, id)| id).unwrap_or(&member);
            let keys = self.rec(id);
            let workflow: Option<String> = redis::cmd("HGET")
                .arg(&keys[0])
                .arg("workflow_id")
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(&keys[..]).ignore();
            pipe.cmd("ZREM").arg(&idx).arg(&member).ignore();
            if let Some(w) = workflow {
                pipe.cmd("ZREM")
                    .arg(self.index(Some(&w)))
                    .arg(&member)
                    .ignore();
            }
            let _: () = pipe.query_async(&mut conn).await.map_err(err)?;
        }
        Ok(())
    }

    fn summary_of(id: &str, h: &HashMap<String, String>) -> Summary {
        let s = |k: &str| h.get(k).cloned();
        Summary {
            execution_id: id.to_string(),
            workflow_id: s("workflow_id").unwrap_or_default(),
            version: s("version").and_then(|v| v.parse().ok()),
            status: s("status").unwrap_or_else(|| "running".into()),
            trigger: s("trigger").unwrap_or_else(|| "cli".into()),
            started_at: s("started_at").unwrap_or_default(),
            completed_at: s("completed_at"),
            duration_ms: s("duration_ms").and_then(|v| v.parse().ok()),
            failure_reason: s("failure_reason"),
        }
    }
}

#[async_trait]
impl History for RedisHistory {
    async fn create(&self, new: &NewExecution) -> Result<(), HistoryError> {
        let mut conn = self.conn.clone();
        let s = &new.summary;
        let keys = self.rec(&s.execution_id);
        let member = index_member(&s.started_at, &s.execution_id);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.key(&format!("def:{}", new.definition_hash)))
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
        pipe.cmd("HSET").arg(&keys[0]).arg(fields).ignore();
        pipe.cmd("EXPIRE")
            .arg(&keys[0])
            .arg(self.retention_secs)
            .ignore();
        pipe.cmd("ZADD")
            .arg(self.index(None))
            .arg(0)
            .arg(&member)
            .ignore();
        pipe.cmd("ZADD")
            .arg(self.index(Some(&s.workflow_id)))
            .arg(0)
            .arg(&member)
            .ignore();
        // The indexes live as long as their newest member's record.
        for index in [self.index(None), self.index(Some(&s.workflow_id))] {
            pipe.cmd("EXPIRE")
                .arg(index)
                .arg(self.retention_secs)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.map_err(err)?;
        self.trim().await
    }

    async fn apply_status(&self, event: &StatusEvent) -> Result<(), HistoryError> {
        let mut conn = self.conn.clone();
        let run = RunEvent::of(event);
        let keys = self.rec(&event.execution_id);
        let json = serde_json::to_string(event).map_err(|e| HistoryError(e.to_string()))?;
        let created: i64 = self
            .apply_status
            .key(&keys[..])
            .key(self.index(None))
            .key(self.index(Some(&event.workflow_id)))
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
            self.trim().await?;
        }
        Ok(())
    }

    async fn apply_completion(&self, c: &Completion) -> Result<(), HistoryError> {
        let mut conn = self.conn.clone();
        let keys = self.rec(&c.execution_id);
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
            .key(self.index(None))
            .key(self.index(Some(&c.workflow_id)))
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
            self.trim().await?;
        }
        Ok(())
    }

    async fn get(&self, execution_id: &str) -> Result<Option<ExecutionRecord>, HistoryError> {
        let mut conn = self.conn.clone();
        let keys = self.rec(execution_id);
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
            summary: Self::summary_of(execution_id, &h),
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
        let mut conn = self.conn.clone();
        let idx = self.index(q.workflow.as_deref());
        let mut max = match &q.cursor {
            Some(c) => format!("({c}"),
            None => "+".to_string(),
        };
        let mut out = Vec::new();
        let mut scanned = 0;
        let batch = (q.limit * 2).clamp(16, 500);
        let mut last_member = None;
        loop {
            let members: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
                .arg(&idx)
                .arg(&max)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            if members.is_empty() {
                return Ok(Page {
                    executions: out,
                    next_cursor: None,
                });
            }
            let mut pipe = redis::pipe();
            for m in &members {
                let id = m.split_once('|').map(|(_, id)| id).unwrap_or(m);
                pipe.cmd("HGETALL").arg(self.key(&format!("x:{id}")));
            }
            let records: Vec<HashMap<String, String>> =
                pipe.query_async(&mut conn).await.map_err(err)?;
            for (m, h) in members.iter().zip(records) {
                scanned += 1;
                last_member = Some(m.clone());
                if h.is_empty() {
                    // Expired record: drop its index entry.
                    let _: Result<i64, _> = redis::cmd("ZREM")
                        .arg(&idx)
                        .arg(m)
                        .query_async(&mut conn)
                        .await;
                    continue;
                }
                let id = m.split_once('|').map(|(_, id)| id).unwrap_or(m);
                let s = Self::summary_of(id, &h);
                if q.status.as_deref().is_some_and(|want| want != s.status) {
                    continue;
                }
                out.push(s);
                if out.len() == q.limit {
                    return Ok(Page {
                        executions: out,
                        next_cursor: Some(m.clone()),
                    });
                }
            }
            if members.len() < batch || scanned >= MAX_SCANNED {
                // Scanned enough for one page: let the client continue from here.
                let more = members.len() == batch;
                return Ok(Page {
                    executions: out,
                    next_cursor: if more { last_member } else { None },
                });
            }
            max = format!("({}", members.last().map(String::as_str).unwrap_or(""));
        }
    }

    async fn definition(&self, hash: &str) -> Result<Option<Value>, HistoryError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.key(&format!("def:{hash}")))
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
