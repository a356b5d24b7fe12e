//! The Redis history's list indexes: listing newest first (pagination, workflow and status
//! filters, cursors) as a k-way merge over the buckets' indexes, and trimming a bucket to the
//! retention and the record limit.
//!
//! An index is a sorted set of members `<13-digit started ms>|<execution id>`, all scored 0,
//! so members order by start time then id (`ZREVRANGEBYLEX`). Members are unique across
//! buckets (an execution is in one), so a cursor (the last member returned) means "strictly
//! older than this" in every bucket, whatever the bucket count.

use std::collections::{HashMap, VecDeque};

use baton_redis::RedisConnection;
use futures_util::future::try_join_all;

use super::model::Summary;
use super::redis_keys::Layout;
use super::{HistoryError, ListQuery, Page};

/// Executions scanned at most for one list page (status filters skip records).
const MAX_SCANNED: usize = 5_000;

pub(super) fn err(e: redis::RedisError) -> HistoryError {
    HistoryError(e.to_string())
}

/// The execution id of an index member.
pub(super) fn id_of(member: &str) -> &str {
    member.split_once('|').map_or(member, |(_, id)| id)
}

/// A summary from a record's hash.
pub(super) fn summary_of(id: &str, h: &HashMap<String, String>) -> Summary {
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

/// One bucket's index as a stream read in pages, newest first.
struct Source {
    bucket: u32,
    index: String,
    /// Members read and not yet merged, newest first.
    buf: VecDeque<String>,
    /// Where the next page starts (`ZREVRANGEBYLEX` max).
    max: String,
    /// The index has nothing below `max`.
    done: bool,
}

impl Source {
    fn needs_page(&self) -> bool {
        self.buf.is_empty() && !self.done
    }
}

/// Reads the next page (`per` members) of every source whose buffer is empty, concurrently.
async fn refill(
    conn: &RedisConnection,
    sources: &mut [Source],
    per: usize,
) -> Result<(), HistoryError> {
    let reads = sources.iter().filter(|s| s.needs_page()).map(|s| {
        let mut conn = conn.clone();
        let cmd = redis::cmd("ZREVRANGEBYLEX")
            .arg(&s.index)
            .arg(&s.max)
            .arg("-")
            .arg("LIMIT")
            .arg(0)
            .arg(per)
            .clone();
        async move { cmd.query_async::<Vec<String>>(&mut conn).await }
    });
    let pages = try_join_all(reads).await.map_err(err)?;
    for (s, page) in sources.iter_mut().filter(|s| s.needs_page()).zip(pages) {
        s.done = page.len() < per;
        if let Some(last) = page.last() {
            s.max = format!("({last}");
        }
        s.buf = page.into();
    }
    Ok(())
}

/// Takes at most `n` members, newest first across the sources, stopping where a source must
/// read its next page first (only then is the order known past that point).
fn merge(sources: &mut [Source], n: usize) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    while out.len() < n && !sources.iter().any(Source::needs_page) {
        let newest = sources
            .iter_mut()
            .filter(|s| !s.buf.is_empty())
            .max_by(|a, b| a.buf[0].cmp(&b.buf[0]));
        let Some(s) = newest else { break };
        if let Some(m) = s.buf.pop_front() {
            out.push((s.bucket, m));
        }
    }
    out
}

/// The records of `members`, in their order: one pipeline per bucket, the buckets
/// concurrently (a cluster pipeline must stay on one slot).
async fn records(
    conn: &RedisConnection,
    layout: &Layout,
    members: &[(u32, String)],
) -> Result<Vec<HashMap<String, String>>, HistoryError> {
    let mut by_bucket: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, (b, _)) in members.iter().enumerate() {
        by_bucket.entry(*b).or_default().push(i);
    }
    let reads = by_bucket.values().map(|positions| {
        let mut pipe = redis::pipe();
        for &i in positions {
            pipe.cmd("HGETALL")
                .arg(&layout.record(id_of(&members[i].1))[0]);
        }
        let mut conn = conn.clone();
        async move {
            pipe.query_async::<Vec<HashMap<String, String>>>(&mut conn)
                .await
        }
    });
    let pages = try_join_all(reads).await.map_err(err)?;
    let mut out = vec![HashMap::new(); members.len()];
    for (positions, page) in by_bucket.values().zip(pages) {
        for (&i, h) in positions.iter().zip(page) {
            out[i] = h;
        }
    }
    Ok(out)
}

/// One page of summaries, newest first, merged over the buckets.
pub(super) async fn list(
    conn: &RedisConnection,
    layout: &Layout,
    q: &ListQuery,
) -> Result<Page, HistoryError> {
    let start = match &q.cursor {
        Some(c) => format!("({c}"),
        None => "+".to_string(),
    };
    let mut sources: Vec<Source> = (0..layout.count())
        .map(|bucket| Source {
            bucket,
            index: layout.index(bucket, q.workflow.as_deref()),
            buf: VecDeque::new(),
            max: start.clone(),
            done: false,
        })
        .collect();
    let mut out = Vec::new();
    let mut scanned = 0;
    let mut last = None;
    loop {
        // Without a status filter every record read is returned: read what the page needs;
        // with one, read more (records are skipped).
        let need = q.limit.saturating_sub(out.len()).max(1);
        let per = if q.status.is_some() {
            (need * 2).clamp(16, 500)
        } else {
            need.min(500)
        };
        refill(conn, &mut sources, per).await?;
        let batch = merge(&mut sources, per);
        if batch.is_empty() {
            return Ok(Page {
                executions: out,
                next_cursor: None,
            });
        }
        let found = records(conn, layout, &batch).await?;
        for ((bucket, m), h) in batch.iter().zip(found) {
            scanned += 1;
            last = Some(m.clone());
            if h.is_empty() {
                // Expired record: drop its index entry.
                let mut c = conn.clone();
                let _: Result<i64, _> = redis::cmd("ZREM")
                    .arg(layout.index(*bucket, q.workflow.as_deref()))
                    .arg(m)
                    .query_async(&mut c)
                    .await;
                continue;
            }
            let s = summary_of(id_of(m), &h);
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
        if scanned >= MAX_SCANNED {
            // Scanned enough for one page: let the client continue from here.
            let more = sources.iter().any(|s| !s.buf.is_empty() || !s.done);
            return Ok(Page {
                executions: out,
                next_cursor: if more { last } else { None },
            });
        }
    }
}

/// Drops bucket `b`'s index entries older than the retention (`cutoff_ms`) and its oldest
/// records over `kept` (the bucket's share of the record limit).
pub(super) async fn trim(
    conn: &RedisConnection,
    layout: &Layout,
    b: u32,
    cutoff_ms: i64,
    kept: u64,
) -> Result<(), HistoryError> {
    let mut conn = conn.clone();
    let idx = layout.index(b, None);
    let _: i64 = redis::cmd("ZREMRANGEBYLEX")
        .arg(&idx)
        .arg("-")
        .arg(format!("({cutoff_ms:013}|"))
        .query_async(&mut conn)
        .await
        .map_err(err)?;
    let count: u64 = redis::cmd("ZCARD")
        .arg(&idx)
        .query_async(&mut conn)
        .await
        .map_err(err)?;
    if count <= kept {
        return Ok(());
    }
    let oldest: Vec<String> = redis::cmd("ZRANGE")
        .arg(&idx)
        .arg(0)
        .arg(count - kept - 1)
        .query_async(&mut conn)
        .await
        .map_err(err)?;
    for member in oldest {
        let keys = layout.record(id_of(&member));
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
                .arg(layout.index(b, Some(&w)))
                .arg(&member)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.map_err(err)?;
    }
    Ok(())
}
