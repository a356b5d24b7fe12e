//! Cron schedules in Redis, for [`super::redis::RedisHistory`]: the definitions in the hash
//! `<p>sched` (id → JSON) and their cursors in the sorted set `<p>sched:due` (id scored by the
//! unix ms of its first unhandled tick), so a scheduler pass reads only the due ones
//! (`ZRANGEBYSCORE -inf now LIMIT`). A cursor moves by compare-and-set (one Lua script), so of
//! several replicas handling the same due schedule exactly one owns its ticks.

use std::collections::HashMap;

use baton_redis::RedisConnection;

use super::HistoryError;
use super::model::{Schedule, Scheduled};

/// KEYS: due set, definitions hash. ARGV: id, expected cursor, new cursor ('' = unindex).
/// Returns 1 when the cursor was at the expected value (and moved), else 0.
const ADVANCE: &str = r#"
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not at or tonumber(at) ~= tonumber(ARGV[2]) then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
"#;

fn err(e: redis::RedisError) -> HistoryError {
    HistoryError(e.to_string())
}

/// The two keys of the schedules under a prefix.
pub(super) struct Keys {
    pub defs: String,
    pub due: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            defs: format!("{prefix}sched"),
            due: format!("{prefix}sched:due"),
        }
    }
}

pub(super) async fn put(
    mut conn: RedisConnection,
    keys: &Keys,
    schedule: &Schedule,
    next_ms: Option<i64>,
) -> Result<(), HistoryError> {
    let json = serde_json::to_string(schedule).map_err(|e| HistoryError(e.to_string()))?;
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("HSET")
        .arg(&keys.defs)
        .arg(&schedule.schedule_id)
        .arg(json)
        .ignore();
    match next_ms {
        Some(ms) => pipe
            .cmd("ZADD")
            .arg(&keys.due)
            .arg(ms)
            .arg(&schedule.schedule_id),
        None => pipe.cmd("ZREM").arg(&keys.due).arg(&schedule.schedule_id),
    }
    .ignore();
    pipe.query_async(&mut conn).await.map_err(err)
}

pub(super) async fn all(
    mut conn: RedisConnection,
    keys: &Keys,
) -> Result<Vec<Scheduled>, HistoryError> {
    let (defs, cursors): (HashMap<String, String>, Vec<(String, f64)>) = redis::pipe()
        .cmd("HGETALL")
        .arg(&keys.defs)
        .cmd("ZRANGE")
        .arg(&keys.due)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .map_err(err)?;
    let cursors: HashMap<String, i64> = cursors
        .into_iter()
        .map(|(id, ms)| (id, ms as i64))
        .collect();
    let mut out: Vec<Scheduled> = defs
        .values()
        .filter_map(|v| serde_json::from_str::<Schedule>(v).ok())
        .map(|schedule| Scheduled {
            next_ms: cursors.get(&schedule.schedule_id).copied(),
            schedule,
        })
        .collect();
    out.sort_by(|a, b| a.schedule.created_at.cmp(&b.schedule.created_at));
    Ok(out)
}

pub(super) async fn due(
    mut conn: RedisConnection,
    keys: &Keys,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<Scheduled>, HistoryError> {
    let ids: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
        .arg(&keys.due)
        .arg("-inf")
        .arg(now_ms)
        .arg("WITHSCORES")
        .arg("LIMIT")
        .arg(0)
        .arg(limit)
        .query_async(&mut conn)
        .await
        .map_err(err)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let defs: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(&keys.defs)
        .arg(ids.iter().map(|(id, _)| id).collect::<Vec<_>>())
        .query_async(&mut conn)
        .await
        .map_err(err)?;
    Ok(ids
        .into_iter()
        .zip(defs)
        .filter_map(|((_, ms), def)| {
            let schedule = serde_json::from_str::<Schedule>(&def?).ok()?;
            Some(Scheduled {
                schedule,
                next_ms: Some(ms as i64),
            })
        })
        .collect())
}

pub(super) async fn advance(
    mut conn: RedisConnection,
    keys: &Keys,
    schedule_id: &str,
    from_ms: i64,
    to_ms: Option<i64>,
) -> Result<bool, HistoryError> {
    let moved: i64 = redis::Script::new(ADVANCE)
        .key(&keys.due)
        .key(&keys.defs)
        .arg(schedule_id)
        .arg(from_ms)
        .arg(to_ms.map(|ms| ms.to_string()).unwrap_or_default())
        .invoke_async(&mut conn)
        .await
        .map_err(err)?;
    Ok(moved == 1)
}

pub(super) async fn delete(
    mut conn: RedisConnection,
    keys: &Keys,
    schedule_id: &str,
) -> Result<bool, HistoryError> {
    let (n, _): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("HDEL")
        .arg(&keys.defs)
        .arg(schedule_id)
        .cmd("ZREM")
        .arg(&keys.due)
        .arg(schedule_id)
        .query_async(&mut conn)
        .await
        .map_err(err)?;
    Ok(n > 0)
}
