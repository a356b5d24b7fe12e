//! Cron schedules end to end: the schedule store's index and cursor on memory and on Redis, a
//! scheduler pass driven by a manual clock (only due schedules read, each tick fired once by
//! racing replicas), the API's 422s, and two real masters on a per-second schedule for 60 s.

mod common;

use std::sync::Arc;
use std::time::Duration;

use baton_engine::{Clock, ManualClock};
use baton_master::history::memory::MemoryHistory;
use baton_master::history::redis::RedisHistory;
use baton_master::history::{History, ListQuery, Missed, Schedule};
use baton_master::{Master, cron, scheduler};
use chrono::{DateTime, TimeDelta, Utc};
use common::{Env, hello, redis_url, until};
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

fn schedule(id: &str, workflow: &str, cron: &str) -> Schedule {
    Schedule {
        schedule_id: id.into(),
        workflow_id: workflow.into(),
        cron: cron.into(),
        timezone: "UTC".into(),
        input: json!({"name": "Cron"}),
        created_at: "2026-06-01T00:00:00.000Z".into(),
        missed: Missed::FireOnce,
    }
}

/// What every history must do with schedules: index by cursor, read only the due ones, move a
/// cursor only from where the caller saw it.
async fn schedule_store_contract(h: &dyn History) {
    let ms = |s: &str| cron::millis(at(s));
    h.put_schedule(
        &schedule("late", "w", "* * * * * *"),
        Some(ms("2026-06-01T10:00:02Z")),
    )
    .await
    .unwrap();
    h.put_schedule(
        &schedule("early", "w", "* * * * * *"),
        Some(ms("2026-06-01T10:00:01Z")),
    )
    .await
    .unwrap();
    h.put_schedule(
        &schedule("future", "w", "* * * * * *"),
        Some(ms("2026-06-02T00:00:00Z")),
    )
    .await
    .unwrap();
    h.put_schedule(&schedule("never", "w", "0 0 0 31 2 *"), None)
        .await
        .unwrap();
    let ids = |v: Vec<baton_master::history::Scheduled>| {
        v.into_iter()
            .map(|s| (s.schedule.schedule_id, s.next_ms))
            .collect::<Vec<_>>()
    };
    let now = ms("2026-06-01T10:00:05Z");
    assert_eq!(
        ids(h.due_schedules(now, 10).await.unwrap()),
        vec![
            ("early".to_string(), Some(ms("2026-06-01T10:00:01Z"))),
            ("late".to_string(), Some(ms("2026-06-01T10:00:02Z")))
        ]
    );
    assert_eq!(ids(h.due_schedules(now, 1).await.unwrap()).len(), 1);
    // Compare-and-set: the first mover wins, a stale cursor loses.
    let from = ms("2026-06-01T10:00:01Z");
    let to = Some(ms("2026-06-01T10:00:06Z"));
    assert!(h.advance_schedule("early", from, to).await.unwrap());
    assert!(!h.advance_schedule("early", from, to).await.unwrap());
    assert_eq!(
        ids(h.due_schedules(now, 10).await.unwrap()),
        vec![("late".to_string(), Some(ms("2026-06-01T10:00:02Z")))]
    );
    // No next tick: unindexed, never due again.
    assert!(
        h.advance_schedule("late", ms("2026-06-01T10:00:02Z"), None)
            .await
            .unwrap()
    );
    assert!(h.due_schedules(i64::MAX / 2, 10).await.unwrap().len() == 2);
    let all = ids(h.schedules().await.unwrap());
    assert_eq!(all.len(), 4);
    assert!(all.contains(&("late".to_string(), None)));
    assert!(all.contains(&("never".to_string(), None)));
    // Deleted: gone from the index too, and its cursor cannot be moved.
    assert!(h.delete_schedule("early").await.unwrap());
    assert!(
        !h.advance_schedule("early", ms("2026-06-01T10:00:06Z"), None)
            .await
            .unwrap()
    );
    assert_eq!(
        ids(h.due_schedules(i64::MAX / 2, 10).await.unwrap()),
        vec![("future".to_string(), Some(ms("2026-06-02T00:00:00Z")))]
    );
}

async fn redis_history() -> (RedisHistory, String) {
    let prefix = format!("t-{}:master:", uuid::Uuid::new_v4().simple());
    let target = baton_redis::RedisTarget::parse(&redis_url(), false).unwrap();
    let conn = baton_redis::connect(&target, baton_redis::Timeouts::default())
        .await
        .expect("redis");
    (RedisHistory::new(conn, &prefix, 1000, 3600, 16), prefix)
}

async fn drop_keys(prefix: &str) {
    let mut conn = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_memory_schedule_store_indexes_schedules_by_next_tick() {
    schedule_store_contract(&MemoryHistory::new(1000, 3600)).await;
}

#[tokio::test]
async fn the_redis_schedule_store_indexes_schedules_by_next_tick() {
    let (h, prefix) = redis_history().await;
    schedule_store_contract(&h).await;
    drop_keys(&prefix).await;
}

/// An embedded master whose scheduler reads `clock`, with workflow `w` (hello) stored.
async fn embedded_at(clock: Arc<ManualClock>) -> baton_master::Embedded {
    let mut e = baton_master::embedded(4, None, None)
        .await
        .expect("embedded master");
    Arc::get_mut(&mut e.master).expect("not shared yet").clock = clock;
    e.master
        .catalog
        .put("w", &hello("w"))
        .await
        .expect("stored");
    e
}

async fn cron_runs(master: &Master) -> usize {
    let page = master
        .history
        .list(&ListQuery {
            workflow: Some("w".into()),
            limit: 10_000,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert!(page.executions.iter().all(|s| s.trigger == "cron"));
    page.executions.len()
}

#[tokio::test]
async fn a_pass_reads_only_the_due_schedules_of_a_thousand() {
    let clock = Arc::new(ManualClock::new(at("2026-06-01T10:00:00.250Z")));
    let e = embedded_at(clock.clone()).await;
    let now = clock.now_utc();
    for i in 0..1000 {
        // Yearly schedules: not due for months.
        let s = schedule(&format!("yearly-{i:04}"), "w", "0 0 0 1 1 *");
        let first = scheduler::first_tick(&s, now).unwrap();
        e.master
            .history
            .put_schedule(&s, Some(cron::millis(first)))
            .await
            .unwrap();
    }
    for i in 0..3 {
        let s = schedule(&format!("second-{i}"), "w", "* * * * * *");
        let first = scheduler::first_tick(&s, now).unwrap();
        e.master
            .history
            .put_schedule(&s, Some(cron::millis(first)))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(1));
    let before = e.history().schedule_reads();
    let report = scheduler::pass(&e.master, clock.now_utc()).await.unwrap();
    assert_eq!(
        e.history().schedule_reads() - before,
        3,
        "read only the 3 due schedules"
    );
    assert_eq!((report.due, report.fired, report.lost), (3, 3, 0));
    // Nothing is due in the same second any more: nothing read.
    let before = e.history().schedule_reads();
    let report = scheduler::pass(&e.master, clock.now_utc()).await.unwrap();
    assert_eq!((report.due, e.history().schedule_reads() - before), (0, 0));
}

#[tokio::test]
async fn replicas_passing_at_interleaved_instants_fire_each_tick_of_a_per_second_schedule_once() {
    // Near the real time: the history keeps what started within its retention.
    let start = cron::floor_second(Utc::now()) + TimeDelta::milliseconds(601);
    let clock = Arc::new(ManualClock::new(start));
    let e = embedded_at(clock.clone()).await;
    let s = schedule("every-second", "w", "* * * * * *");
    let first = scheduler::first_tick(&s, clock.now_utc()).unwrap();
    assert_eq!(first, cron::floor_second(start) + TimeDelta::seconds(1));
    e.master
        .history
        .put_schedule(&s, Some(cron::millis(first)))
        .await
        .unwrap();
    // Two replicas sharing the store, their passes 1 s apart at drifting sub-second offsets
    // (and now and then late), one behind the other by 0..999 ms: the later one must not fire
    // again what the earlier one fired.
    let mut fired = 0;
    let mut lost = 0;
    for i in 0..120u64 {
        clock.advance(Duration::from_millis(if i % 17 == 0 {
            1_700
        } else {
            1_000
        }));
        let now = clock.now_utc();
        let other = now + TimeDelta::milliseconds(i64::try_from((i * 373) % 1000).unwrap());
        let (a, b) = tokio::join!(
            scheduler::pass(&e.master, now),
            scheduler::pass(&e.master, other)
        );
        for r in [a.unwrap(), b.unwrap()] {
            fired += r.fired;
            lost += r.lost;
        }
    }
    // Every tick up to the last pass, each once.
    let last = clock.now_utc() + TimeDelta::milliseconds(999);
    let ticks = usize::try_from((cron::floor_second(last) - first).num_seconds()).unwrap();
    assert!(
        fired + 1 >= ticks && fired <= ticks + 1,
        "{fired} fired for about {ticks} ticks"
    );
    let listed = until(|| async {
        let n = cron_runs(&e.master).await;
        (n == fired).then_some(n)
    })
    .await;
    assert_eq!(listed, fired);
    eprintln!("{fired} fired, {lost} cursor races lost");
}

#[tokio::test]
async fn after_a_master_outage_the_missed_policy_decides() {
    for (policy, expected) in [
        (Missed::Skip, 1),
        (Missed::FireOnce, 2),
        (Missed::FireAll, 61),
    ] {
        let clock = Arc::new(ManualClock::new(at("2026-06-01T09:59:30Z")));
        let e = embedded_at(clock.clone()).await;
        let mut s = schedule("minutely", "w", "0 * * * * *");
        s.missed = policy;
        let first = scheduler::first_tick(&s, clock.now_utc()).unwrap();
        e.master
            .history
            .put_schedule(&s, Some(cron::millis(first)))
            .await
            .unwrap();
        // Down from 09:59:30 to 11:00:30: the ticks 10:00 … 10:59 were missed, 11:00 is on time.
        clock.advance(Duration::from_secs(3_660));
        let report = scheduler::pass(&e.master, clock.now_utc()).await.unwrap();
        assert_eq!(report.fired, expected, "{policy:?}");
        let next = e.master.history.schedules().await.unwrap()[0].next_ms;
        assert_eq!(
            next,
            Some(cron::millis(at("2026-06-01T11:01:00Z"))),
            "{policy:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn impossible_expressions_unknown_zones_and_policies_answer_422_naming_the_field() {
    let env = Env::start().await;
    env.put_workflow(hello("ticking")).await;
    let cases = [
        (json!({"cron": "0 0 0 31 2 *"}), vec!["$.cron"]),
        (
            json!({"cron": "0 0 0 30 2 *", "timezone": "Europe/Paris"}),
            vec!["$.cron"],
        ),
        (json!({"cron": "garbage"}), vec!["$.cron"]),
        (
            json!({"cron": "* * * * *", "timezone": "Mars/Olympus"}),
            vec!["$.timezone"],
        ),
        (
            json!({"cron": "* * * * *", "missed": "sometimes"}),
            vec!["$.missed"],
        ),
        (json!({"cron": "* * * * *", "missed": 3}), vec!["$.missed"]),
        (
            json!({"timezone": 5, "missed": "all", "catch_up": true}),
            vec!["$.cron", "$.timezone", "$.missed", "$.catch_up"],
        ),
    ];
    for (body, fields) in cases {
        let (status, answer) = env
            .call("POST", "/workflows/ticking/schedules", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body} → {answer}");
        let paths: Vec<&str> = answer["error"]["problems"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["path"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(paths, fields, "{body} → {answer}");
    }
    let (status, created) = env
        .call(
            "POST",
            "/workflows/ticking/schedules",
            Some(json!({"cron": "0 0 0 29 2 *", "missed": "fire_all"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["missed"], "fire_all");
    assert!(
        created["next_run_at"]
            .as_str()
            .is_some_and(|t| t.contains("-02-29T00:00:00")),
        "{created}"
    );
    let (_, listed) = env.call("GET", "/workflows/ticking/schedules", None).await;
    assert_eq!(
        listed["schedules"][0]["next_run_at"],
        created["next_run_at"]
    );
    let (_, default) = env
        .call(
            "POST",
            "/workflows/ticking/schedules",
            Some(json!({"cron": "0 0 * * *"})),
        )
        .await;
    assert_eq!(default["missed"], "fire_once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_masters_fire_a_per_second_schedule_every_second_for_a_minute_without_duplicates() {
    let mut env = Env::start().await;
    env.add_master().await;
    env.put_workflow(hello("ticking")).await;
    let (status, created) = env
        .call(
            "POST",
            "/workflows/ticking/schedules",
            Some(json!({"cron": "* * * * * *", "input": {"name": "Cron"}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let sid = created["schedule_id"].as_str().unwrap().to_string();
    let first = at(created["next_run_at"].as_str().unwrap());
    // Both masters run their scheduler; let a minute of ticks fire.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (status, _) = env
        .call(
            "DELETE",
            &format!("/workflows/ticking/schedules/{sid}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let deleted = Utc::now();
    // A pass that read the schedule just before the delete may still fire its tick.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, page) = env
        .call("GET", "/executions?workflow=ticking&limit=500", None)
        .await;
    let runs = page["executions"].as_array().unwrap();
    assert!(runs.iter().all(|r| r["trigger"] == "cron"));
    // The ticks between the first one and the delete, one execution each: at least 59 in a
    // minute, and never more executions than ticks (a duplicate would add one).
    let ticks = usize::try_from((cron::floor_second(deleted) - first).num_seconds() + 1).unwrap();
    assert!(
        runs.len() >= 59,
        "{} executions for {ticks} ticks",
        runs.len()
    );
    assert!(
        runs.len() <= ticks + 1,
        "{} executions for {ticks} ticks",
        runs.len()
    );
    let mut conn = env.redis().await;
    let claims: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}tick:{sid}:*", env.settings.master_key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(runs.len(), claims.len(), "one execution per claimed tick");
    eprintln!(
        "{} executions for {ticks} ticks in {:?}",
        runs.len(),
        deleted - first
    );
}

#[tokio::test]
async fn schedule_cursors_survive_a_dev_state_file_restart_and_old_schedules_get_one() {
    let dir = std::env::temp_dir().join(format!("baton-cron-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let cursor = cron::millis(at("2026-06-01T10:00:05Z"));
    {
        let h = MemoryHistory::open(&file, 1000, 3600).unwrap();
        h.put_schedule(&schedule("kept", "w", "* * * * * *"), Some(cursor))
            .await
            .unwrap();
        // As stored by a master that had no cursors.
        h.put_schedule(&schedule("old", "w", "0 * * * * *"), None)
            .await
            .unwrap();
        h.save().unwrap();
    }
    let clock = Arc::new(ManualClock::new(at("2026-06-01T10:00:30Z")));
    let mut e = baton_master::embedded(2, Some(&file), None).await.unwrap();
    Arc::get_mut(&mut e.master).unwrap().clock = clock.clone();
    let due = e.master.history.due_schedules(cursor, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].schedule.schedule_id, "kept");
    assert_eq!(due[0].next_ms, Some(cursor));
    scheduler::index_unindexed(&e.master, clock.now_utc())
        .await
        .unwrap();
    let old = e.master.history.schedules().await.unwrap();
    let old = old
        .iter()
        .find(|s| s.schedule.schedule_id == "old")
        .unwrap();
    assert_eq!(old.next_ms, Some(cron::millis(at("2026-06-01T10:01:00Z"))));
    let _ = std::fs::remove_dir_all(&dir);
}
