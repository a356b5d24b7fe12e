//! Cron schedules: every second each replica looks for ticks due since its last pass and fires
//! the ones it claims (`History::claim_tick`, SET NX in Redis), so a tick fires once whatever
//! the number of masters. Ticks missed by more than [`CATCH_UP`] (the master was down) are
//! skipped rather than fired late in a burst.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use tokio_util::sync::CancellationToken;

use crate::app::Master;
use crate::history::Schedule;
use crate::metrics_names as m;

/// How late a tick may still fire.
const CATCH_UP: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
const PASS: Duration = Duration::from_secs(1);

/// Parses a cron expression (6 fields with seconds first, or 5 fields).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    Cron::from_str(expression).map_err(|e| format!("`{expression}` is not a cron expression: {e}"))
}

/// The first tick of `schedule` strictly after `after`.
pub fn next_tick(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = parse_cron(&schedule.cron).ok()?;
    let tz: chrono_tz::Tz = schedule.timezone.parse().ok()?;
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The ticks a pass at `now` fires for a schedule last looked at `since`: those after `since`
/// up to `now`, except ticks more than [`CATCH_UP`] late.
pub fn due_ticks(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut due = Vec::new();
    let mut cursor = since;
    while let Some(tick) = next_tick(schedule, cursor) {
        if tick > now {
            break;
        }
        cursor = tick;
        if now - tick <= CATCH_UP {
            due.push(tick);
        }
    }
    due
}

/// Runs until `shutdown`, reading the time from the master's clock.
pub async fn run(master: Arc<Master>, shutdown: CancellationToken) {
    let mut last_pass: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut interval = tokio::time::interval(PASS);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let now = master.clock.now_utc();
        let schedules = match master.history.schedules().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read schedules");
                continue;
            }
        };
        last_pass.retain(|id, _| schedules.iter().any(|s| &s.schedule_id == id));
        for schedule in schedules {
            let since = *last_pass
                .entry(schedule.schedule_id.clone())
                .or_insert_with(|| {
                    // A new schedule (or a new replica) starts looking from its creation or
                    // from a minute ago, whichever is later; claims prevent double fires.
                    let created = DateTime::parse_from_rfc3339(&schedule.created_at)
                        .map(|d| d.with_timezone(&Utc))
                        .unwrap_or(now);
                    created.max(now - CATCH_UP)
                });
            for tick in due_ticks(&schedule, since, now) {
                fire(&master, &schedule, tick).await;
            }
            last_pass.insert(schedule.schedule_id.clone(), now);
        }
    }
}

async fn fire(master: &Master, schedule: &Schedule, tick: DateTime<Utc>) {
    match master
        .history
        .claim_tick(&schedule.schedule_id, tick.timestamp())
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, schedule = %schedule.schedule_id, "cannot claim a cron tick");
            return;
        }
    }
    match master
        .start_stored(&schedule.workflow_id, None, schedule.input.clone(), "cron")
        .await
    {
        Ok((execution_id, _)) => {
            metrics::counter!(m::CRON_FIRED).increment(1);
            tracing::info!(schedule = %schedule.schedule_id, workflow_id = %schedule.workflow_id, %execution_id, tick = %tick, "cron tick fired");
        }
        Err(e) => {
            tracing::warn!(schedule = %schedule.schedule_id, error = %e.message, "cron tick could not start")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str, tz: &str) -> Schedule {
        Schedule {
            schedule_id: "s".into(),
            workflow_id: "w".into(),
            cron: cron.into(),
            timezone: tz.into(),
            input: serde_json::json!({}),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn ticks_follow_the_schedule_time_zone() {
        let after = DateTime::parse_from_rfc3339("2026-06-01T10:00:30Z")
            .unwrap()
            .with_timezone(&Utc);
        // 12:00 in Paris (summer time) is 10:00 UTC; the next one is tomorrow.
        let next = next_tick(&schedule("0 0 12 * * *", "Europe/Paris"), after).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-06-02T10:00:00+00:00");
        let five = next_tick(&schedule("*/5 * * * *", "UTC"), after).unwrap();
        assert_eq!(five.to_rfc3339(), "2026-06-01T10:05:00+00:00");
        assert!(parse_cron("not cron").is_err());
    }

    #[test]
    fn a_pass_fires_the_ticks_the_clock_has_passed_and_skips_stale_ones() {
        use baton_engine::{Clock, ManualClock};
        let start = DateTime::parse_from_rfc3339("2026-06-01T10:00:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        let every_minute = schedule("0 * * * * *", "UTC");
        assert!(due_ticks(&every_minute, start, clock.now_utc()).is_empty());
        clock.advance(Duration::from_secs(60));
        let due = due_ticks(&every_minute, start, clock.now_utc());
        assert_eq!(
            due.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>(),
            ["2026-06-01T10:01:00+00:00"]
        );
        // The master was down for ten minutes: only the ticks at most a minute late fire.
        clock.advance(Duration::from_secs(600));
        let due = due_ticks(&every_minute, start, clock.now_utc());
        assert_eq!(
            due.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>(),
            ["2026-06-01T10:11:00+00:00"]
        );
    }
}
