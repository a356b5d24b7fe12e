//! The cron scheduler: every second each replica runs a [`pass`] at its clock's `now`. A pass
//! reads only the due schedules (the history indexes schedules by their cursor, the first tick
//! not handled yet), plans each one ([`cron::plan`]: every tick up to `now`, missed ticks by the
//! schedule's policy), moves its cursor by compare-and-set (the replica that moves it owns the
//! ticks; the others lost the race and fire nothing) and fires the planned ticks, each also
//! claimed once (`History::claim_tick`, SET NX in Redis). Ticks are at most once: a replica
//! that dies between moving a cursor and firing loses those ticks.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::app::Master;
use crate::cron::{self, Spec};
use crate::history::{HistoryError, Schedule};
use crate::metrics_names as m;

const PERIOD: Duration = Duration::from_secs(1);
/// How long after a whole second a pass starts.
const PASS_OFFSET: Duration = Duration::from_millis(5);
/// Due schedules handled per pass at most; the others are still due at the next pass.
pub const DUE_BATCH: usize = 1_000;

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Due schedules read.
    pub due: usize,
    /// Schedules whose cursor another replica moved first.
    pub lost: usize,
    /// Executions started.
    pub fired: usize,
}

/// The next tick of a new schedule created at `now`, checking that it ever fires.
pub fn first_tick(schedule: &Schedule, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    first_tick_of(&schedule.cron, &schedule.timezone, now)
}

/// [`first_tick`] of an expression in a time zone.
pub fn first_tick_of(
    cron: &str,
    timezone: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    Spec::new(cron, timezone)
        .map_err(|e| e.to_string())?
        .check_fires(now)
}

/// One pass at `now`.
pub async fn pass(master: &Master, now: DateTime<Utc>) -> Result<PassReport, HistoryError> {
    let due = master
        .history
        .due_schedules(cron::millis(now), DUE_BATCH)
        .await?;
    let mut report = PassReport {
        due: due.len(),
        ..PassReport::default()
    };
    for entry in due {
        let schedule = entry.schedule;
        let Some(cursor_ms) = entry.next_ms else {
            continue;
        };
        let spec = Spec::new(&schedule.cron, &schedule.timezone);
        let plan = match (&spec, cron::from_millis(cursor_ms)) {
            (Ok(spec), Some(cursor)) => cron::plan(spec, schedule.missed, cursor, now),
            // Stored before validation existed, or corrupted: unindex it rather than retry
            // it every second.
            _ => {
                tracing::warn!(schedule = %schedule.schedule_id, error = ?spec.err(), "unschedulable schedule: no longer scheduled");
                cron::Plan {
                    fire: Vec::new(),
                    next: None,
                    missed_from: None,
                }
            }
        };
        let moved = master
            .history
            .advance_schedule(
                &schedule.schedule_id,
                cursor_ms,
                plan.next.map(cron::millis),
            )
            .await?;
        if !moved {
            report.lost += 1;
            continue;
        }
        if let Some(first) = plan.missed_from {
            tracing::warn!(schedule = %schedule.schedule_id, missed_since = %first, policy = schedule.missed.as_str(), "cron ticks were missed");
            metrics::counter!(m::CRON_MISSED).increment(1);
        }
        if plan.next.is_none() {
            tracing::warn!(schedule = %schedule.schedule_id, "the schedule has no next tick: it will not fire again");
        }
        for tick in plan.fire {
            if fire(master, &schedule, tick).await {
                report.fired += 1;
            }
        }
    }
    Ok(report)
}

/// Gives a cursor to schedules stored without one (by an older master, or a state file),
/// counting from `now`.
pub async fn index_unindexed(master: &Master, now: DateTime<Utc>) -> Result<(), HistoryError> {
    for entry in master.history.schedules().await? {
        if entry.next_ms.is_some() {
            continue;
        }
        if let Ok(spec) = Spec::new(&entry.schedule.cron, &entry.schedule.timezone)
            && let Some(next) = spec.next_after(now)
        {
            master
                .history
                .put_schedule(&entry.schedule, Some(cron::millis(next)))
                .await?;
        }
    }
    Ok(())
}

/// Runs a pass every second until `shutdown`, reading the time from the master's clock. Passes
/// start just after each whole second of that clock, so a tick fires within milliseconds.
pub async fn run(master: Arc<Master>, shutdown: CancellationToken) {
    if let Err(e) = index_unindexed(&master, master.clock.now_utc()).await {
        tracing::warn!(error = %e, "cannot index the stored schedules");
    }
    loop {
        let into_second = u64::from(master.clock.now_utc().timestamp_subsec_millis());
        let wait = PERIOD.saturating_sub(Duration::from_millis(into_second)) + PASS_OFFSET;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = pass(&master, master.clock.now_utc()).await {
            tracing::warn!(error = %e, "cron pass failed");
        }
    }
}

/// Claims and fires one tick; `true` when an execution started.
async fn fire(master: &Master, schedule: &Schedule, tick: DateTime<Utc>) -> bool {
    match master
        .history
        .claim_tick(&schedule.schedule_id, tick.timestamp())
        .await
    {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::warn!(error = %e, schedule = %schedule.schedule_id, "cannot claim a cron tick");
            return false;
        }
    }
    match master
        .start_stored(&schedule.workflow_id, None, schedule.input.clone(), "cron")
        .await
    {
        Ok((execution_id, _)) => {
            metrics::counter!(m::CRON_FIRED).increment(1);
            tracing::info!(schedule = %schedule.schedule_id, workflow_id = %schedule.workflow_id, %execution_id, tick = %tick, "cron tick fired");
            true
        }
        Err(e) => {
            tracing::warn!(schedule = %schedule.schedule_id, error = %e.message, "cron tick could not start");
            false
        }
    }
}
