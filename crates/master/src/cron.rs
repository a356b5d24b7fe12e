//! Cron ticks, pure (no I/O, no clock): parsing a schedule, the next tick after an instant, and
//! what one scheduler pass fires for a due schedule under its missed-tick policy.
//!
//! Ticks are whole seconds. The next tick is always searched from the previous *scheduled*
//! tick (never from a pass's `now` with its sub-seconds), so consecutive ticks are found one
//! after the other and none is skipped. Time zones and daylight saving time follow croner's
//! definition: on a spring-forward day a fixed-time job (`0 30 2 * * *`) whose wall time does
//! not exist runs at the first instant after the gap, interval jobs (`0 */10 * * * *`) have no
//! ticks in the gap; on a fall-back day a fixed-time job runs once (the first occurrence of its
//! wall time) and an interval job runs in both occurrences of the repeated wall times. Croner
//! searches in wall time, which is not monotonic in real time around a fall back; [`Spec::next_after`]
//! returns the ticks in real-time order.

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, Offset, TimeDelta, TimeZone, Utc};
use croner::{Cron, JobType};

use crate::history::model::Missed;

/// A tick later than this is *missed* (the master was down or stalled), and the schedule's
/// [`Missed`] policy decides; up to this late it simply fires.
pub const GRACE: TimeDelta = TimeDelta::seconds(60);
/// `fire_all` fires at most this many missed ticks of one schedule, oldest first; the others
/// are skipped.
pub const MAX_CATCH_UP: usize = 100;
/// An expression with no tick within this span from now is rejected as impossible.
pub const HORIZON: TimeDelta = TimeDelta::days(5 * 366);
/// Offset changes (DST) are looked for this far around an instant; real ones are at most 2 h.
const SHIFT_WINDOW: TimeDelta = TimeDelta::hours(3);
const SECOND: TimeDelta = TimeDelta::seconds(1);

/// What is wrong with a schedule, by field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Cron(String),
    #[error("`{0}` is not an IANA time zone (e.g. Europe/Paris, UTC)")]
    Timezone(String),
}

/// A compiled schedule: its cron expression in its time zone.
#[derive(Debug, Clone)]
pub struct Spec {
    cron: Cron,
    tz: chrono_tz::Tz,
    fixed_time: bool,
}

/// Parses a cron expression (6 fields with seconds first, or 5 fields).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    Cron::from_str(expression).map_err(|e| format!("`{expression}` is not a cron expression: {e}"))
}

/// `t` without its sub-seconds.
pub fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// Unix milliseconds of `t`.
pub fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant of unix milliseconds `ms`.
pub fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

impl Spec {
    pub fn new(expression: &str, timezone: &str) -> Result<Self, SpecError> {
        let cron = parse_cron(expression).map_err(SpecError::Cron)?;
        let tz: chrono_tz::Tz = timezone
            .parse()
            .map_err(|_| SpecError::Timezone(timezone.to_string()))?;
        let fixed_time = cron.determine_job_type() == JobType::FixedTime;
        Ok(Self {
            cron,
            tz,
            fixed_time,
        })
    }

    /// The first tick after `from`, or an error saying why the expression never fires (no
    /// tick within [`HORIZON`]).
    pub fn check_fires(&self, from: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        match self.next_after(from) {
            Some(t) if t - from <= HORIZON => Ok(t),
            _ => Err(format!(
                "the expression never fires (no tick within {} years), e.g. a date that does not exist",
                HORIZON.num_days() / 366
            )),
        }
    }

    /// The first tick at or after `t` (a tick in `t`'s second counts).
    pub fn first_at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after(floor_second(t) - SECOND)
    }

    /// The first tick strictly after the second of `after` (its sub-seconds are ignored), in
    /// real-time order. `None` when there is none (an impossible expression).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = floor_second(after);
        let here = self.offset_at(after);
        // A fall back ahead: `after` may be in the first run of wall times that repeat.
        let ahead = self.offset_at(after + SHIFT_WINDOW);
        if ahead < here {
            let t = self.transition(after, after + SHIFT_WINDOW);
            let repeat = TimeDelta::seconds(i64::from(here - ahead));
            let first = self.wall_next(after);
            if after >= t - repeat && !self.fixed_time {
                // Interval jobs tick again in the second run [t, t + repeat).
                let second = self
                    .fixed_next(ahead, t - SECOND)
                    .filter(|g| *g < t + repeat);
                return match (first, second) {
                    (Some(f), Some(g)) => Some(f.min(g)),
                    (f, g) => f.or(g),
                };
            }
            return first;
        }
        // A fall back behind: `after` may be in the second run of repeated wall times.
        let behind = self.offset_at(after - SHIFT_WINDOW);
        if behind > here {
            let t = self.transition(after - SHIFT_WINDOW, after);
            let repeat = TimeDelta::seconds(i64::from(behind - here));
            if after < t + repeat {
                if !self.fixed_time
                    && let Some(g) = self.fixed_next(here, after).filter(|g| *g < t + repeat)
                {
                    return Some(g);
                }
                // Fixed-time jobs ran in the first run; the next tick is after the repeat.
                return self.wall_next(t + repeat - SECOND);
            }
        }
        self.wall_next(after)
    }

    /// Croner's search in the schedule's time zone (wall time), from `after` exclusive.
    fn wall_next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self
            .cron
            .find_next_occurrence(&after.with_timezone(&self.tz), false)
            .ok()?
            .with_timezone(&Utc);
        // Wall-time search cannot go back in real time outside the cases handled above;
        // never return a tick that would make a caller loop.
        (next > after).then_some(next)
    }

    /// Croner's search at a fixed UTC offset (seconds east), from `after` exclusive.
    fn fixed_next(&self, offset: i32, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let zone = FixedOffset::east_opt(offset)?;
        let next = self
            .cron
            .find_next_occurrence(&after.with_timezone(&zone), false)
            .ok()?
            .with_timezone(&Utc);
        (next > after).then_some(next)
    }

    fn offset_at(&self, t: DateTime<Utc>) -> i32 {
        self.tz
            .offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc()
    }

    /// The first second in `(lo, hi]` whose offset differs from `lo`'s (one change assumed).
    fn transition(&self, mut lo: DateTime<Utc>, mut hi: DateTime<Utc>) -> DateTime<Utc> {
        let base = self.offset_at(lo);
        while hi - lo > SECOND {
            let mid = lo + (hi - lo) / 2;
            let mid = floor_second(mid);
            if self.offset_at(mid) == base {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }
}

/// What one pass does for a due schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Ticks to fire now, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// The first tick not handled, the schedule's new cursor; `None`: it never fires again.
    pub next: Option<DateTime<Utc>>,
    /// The first missed tick (more than [`GRACE`] late), if any.
    pub missed_from: Option<DateTime<Utc>>,
}

/// The pass at `now` for a schedule whose first unhandled tick is `cursor`: fires every tick
/// up to `now`; ticks more than [`GRACE`] late follow `missed`. At most [`MAX_CATCH_UP`] +
/// the ticks of one grace period fire, whatever the outage.
pub fn plan(spec: &Spec, missed: Missed, cursor: DateTime<Utc>, now: DateTime<Utc>) -> Plan {
    let edge = now - GRACE;
    let mut fire = Vec::new();
    let mut next = Some(cursor);
    let mut missed_from = None;
    if cursor < edge {
        missed_from = Some(cursor);
        match missed {
            Missed::Skip => next = spec.first_at_or_after(edge),
            Missed::FireOnce => {
                fire.push(cursor);
                next = spec.first_at_or_after(edge);
            }
            Missed::FireAll => {
                while let Some(t) = next.filter(|t| *t < edge) {
                    if fire.len() == MAX_CATCH_UP {
                        next = spec.first_at_or_after(edge);
                        break;
                    }
                    fire.push(t);
                    next = spec.next_after(t);
                }
            }
        }
        // A tick in the edge's own second may come back; never fire one twice.
        if let (Some(n), Some(last)) = (next, fire.last())
            && n <= *last
        {
            next = spec.next_after(*last);
        }
    }
    while let Some(t) = next.filter(|t| *t <= now) {
        fire.push(t);
        next = spec.next_after(t);
    }
    Plan {
        fire,
        next,
        missed_from,
    }
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
