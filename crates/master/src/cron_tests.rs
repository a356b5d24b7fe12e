//! Specifications of the tick arithmetic (see `cron.rs`).

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

fn spec(cron: &str, tz: &str) -> Spec {
    Spec::new(cron, tz).expect("a valid schedule")
}

fn rfc(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The ticks in `(from, to]` by repeated [`Spec::next_after`].
fn chain(spec: &Spec, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from;
    while let Some(next) = spec.next_after(t).filter(|n| *n <= to) {
        assert!(next > t, "ticks go forward: {next} after {t}");
        out.push(next);
        t = next;
    }
    out
}

/// Croner's own definition of the ticks in `(from, to]`: everything its iterator yields from a
/// few hours before, in real-time order. (Its iterator skips every other tick of a per-second
/// schedule, so this reference is for schedules with ticks at least 2 s apart.)
fn croner_ticks(
    cron: &str,
    tz: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let c = parse_cron(cron).expect("cron");
    let tz: chrono_tz::Tz = tz.parse().expect("tz");
    let mut all: Vec<DateTime<Utc>> = c
        .iter_after((from - TimeDelta::hours(4)).with_timezone(&tz))
        .map(|t| t.with_timezone(&Utc))
        .take_while(|t| *t <= to + TimeDelta::hours(4))
        .filter(|t| *t > from && *t <= to)
        .collect();
    all.sort();
    all.dedup();
    all
}

/// A deterministic sequence of pass start offsets in milliseconds, 0..999.
fn jitter(i: u64) -> i64 {
    i64::try_from(i.wrapping_mul(2_654_435_761) % 1_000).unwrap_or(0)
}

/// Drives passes from `start` for `span`, one a second at a sub-second offset that changes
/// each time (and now and then a pass that comes 1.5 s late); returns the fired ticks.
fn simulate(
    spec: &Spec,
    missed: Missed,
    start: DateTime<Utc>,
    span: TimeDelta,
) -> Vec<DateTime<Utc>> {
    let mut cursor = spec.next_after(start);
    let mut fired = Vec::new();
    let mut second = 0i64;
    let mut i = 0u64;
    while second <= span.num_seconds() {
        i += 1;
        second += if i.is_multiple_of(97) { 2 } else { 1 };
        let now = start + TimeDelta::seconds(second) + TimeDelta::milliseconds(jitter(i));
        let Some(c) = cursor.filter(|c| *c <= now) else {
            continue;
        };
        let plan = plan(spec, missed, c, now);
        assert!(
            plan.missed_from.is_none(),
            "nothing is late in a normal run"
        );
        fired.extend(plan.fire);
        cursor = plan.next;
    }
    fired
}

#[test]
fn every_ten_minutes_over_two_days_fires_each_tick_exactly_once() {
    let start = at("2026-06-01T00:00:00.600Z");
    let s = spec("0 */10 * * * *", "Europe/Paris");
    let fired = simulate(&s, Missed::FireOnce, start, TimeDelta::days(2));
    let expected = chain(&s, start, start + TimeDelta::days(2));
    assert_eq!(expected.len(), 2 * 24 * 6);
    assert_eq!(fired[..expected.len()], expected[..]);
}

#[test]
fn every_second_over_a_day_fires_each_tick_exactly_once_whatever_the_pass_offsets() {
    let start = at("2026-06-01T00:00:54.601Z");
    let s = spec("* * * * * *", "UTC");
    let fired = simulate(&s, Missed::Skip, start, TimeDelta::days(1));
    assert!(fired.len() >= 86_400, "{}", fired.len());
    for (i, t) in fired.iter().enumerate() {
        // 00:00:55, 00:00:56, ... one per second, none skipped, none twice.
        let want = at("2026-06-01T00:00:55Z") + TimeDelta::seconds(i64::try_from(i).unwrap_or(0));
        assert_eq!(*t, want);
    }
}

#[test]
fn a_tick_in_the_same_second_as_the_last_pass_still_fires() {
    // The reported bug: a pass at 54.600 then a tick at 55.000 and a pass at 55.601.
    let s = spec("* * * * * *", "UTC");
    let first = plan(
        &s,
        Missed::Skip,
        at("2026-06-01T00:00:54Z"),
        at("2026-06-01T00:00:54.600Z"),
    );
    assert_eq!(first.fire, vec![at("2026-06-01T00:00:54Z")]);
    let cursor = first.next.expect("a next tick");
    assert_eq!(cursor, at("2026-06-01T00:00:55Z"));
    let second = plan(&s, Missed::Skip, cursor, at("2026-06-01T00:00:55.601Z"));
    assert_eq!(second.fire, vec![cursor]);
}

fn assert_ticks(cron: &str, tz: &str, from: &str, to: &str, expected: &[&str]) {
    let s = spec(cron, tz);
    let got: Vec<String> = chain(&s, at(from), at(to)).iter().map(rfc).collect();
    assert_eq!(got, expected, "{cron} in {tz}");
    let croner: Vec<String> = croner_ticks(cron, tz, at(from), at(to))
        .iter()
        .map(rfc)
        .collect();
    assert_eq!(got, croner, "{cron} in {tz}: croner's definition");
}

#[test]
fn paris_spring_forward_skips_the_missing_hour_and_moves_fixed_times_after_it() {
    // 2026-03-29 02:00 CET (01:00Z) becomes 03:00 CEST.
    assert_ticks(
        "0 */30 * * * *",
        "Europe/Paris",
        "2026-03-28T23:45:00Z",
        "2026-03-29T02:00:00Z",
        &[
            "2026-03-29T00:00:00Z",
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-29T02:00:00Z",
        ],
    );
    assert_ticks(
        "0 30 2 * * *",
        "Europe/Paris",
        "2026-03-28T00:00:00Z",
        "2026-03-30T12:00:00Z",
        &[
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
        ],
    );
}

#[test]
fn paris_fall_back_runs_interval_jobs_in_both_hours_and_fixed_times_once() {
    // 2026-10-25 03:00 CEST (01:00Z) becomes 02:00 CET: 02:00-02:59 happens twice.
    assert_ticks(
        "0 */30 * * * *",
        "Europe/Paris",
        "2026-10-24T23:45:00Z",
        "2026-10-25T02:00:00Z",
        &[
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:00:00Z",
        ],
    );
    assert_ticks(
        "0 30 2 * * *",
        "Europe/Paris",
        "2026-10-24T00:00:00Z",
        "2026-10-26T12:00:00Z",
        &[
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
        ],
    );
}

#[test]
fn new_york_spring_forward_and_fall_back_follow_croner() {
    // 2026-03-08 02:00 EST (07:00Z) becomes 03:00 EDT.
    assert_ticks(
        "0 */30 * * * *",
        "America/New_York",
        "2026-03-08T05:45:00Z",
        "2026-03-08T07:30:00Z",
        &[
            "2026-03-08T06:00:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
        ],
    );
    assert_ticks(
        "0 30 2 * * *",
        "America/New_York",
        "2026-03-07T00:00:00Z",
        "2026-03-09T12:00:00Z",
        &[
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
        ],
    );
    // 2026-11-01 02:00 EDT (06:00Z) becomes 01:00 EST: 01:00-01:59 happens twice.
    assert_ticks(
        "0 */30 * * * *",
        "America/New_York",
        "2026-11-01T04:45:00Z",
        "2026-11-01T07:00:00Z",
        &[
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:00:00Z",
        ],
    );
    assert_ticks(
        "0 30 1 * * *",
        "America/New_York",
        "2026-10-31T00:00:00Z",
        "2026-11-02T12:00:00Z",
        &[
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z",
        ],
    );
}

#[test]
fn every_tick_of_the_dst_days_is_croners_in_real_time_order() {
    let days = [
        ("Europe/Paris", "2026-03-28T22:00:00Z"),
        ("Europe/Paris", "2026-10-24T22:00:00Z"),
        ("America/New_York", "2026-03-08T04:00:00Z"),
        ("America/New_York", "2026-11-01T03:00:00Z"),
    ];
    let crons = [
        "0 */10 * * * *",
        "15 */7 * * * *",
        "0 0 * * * *",
        "0 30 2 * * *",
        "0 15 1 * * *",
        "0 0 3 * * *",
    ];
    for (tz, from) in days {
        for cron in crons {
            let from = at(from);
            let to = from + TimeDelta::hours(26);
            let s = spec(cron, tz);
            let got = chain(&s, from, to);
            assert_eq!(got, croner_ticks(cron, tz, from, to), "{cron} in {tz}");
            // And a pass loop with sub-second offsets fires exactly those.
            let fired = simulate(&s, Missed::FireOnce, from, TimeDelta::hours(26));
            assert_eq!(fired[..got.len()], got[..], "{cron} in {tz}");
        }
        // Every second of real time is a tick of `* * * * * *`, through gaps and repeats.
        let from = at(from);
        let every = chain(&spec("* * * * * *", tz), from, from + TimeDelta::hours(26));
        assert_eq!(every.len(), 26 * 3600, "{tz}");
        assert!(every.windows(2).all(|w| w[1] - w[0] == SECOND), "{tz}");
    }
}

#[test]
fn after_an_hour_down_skip_fires_none_of_the_missed_ticks() {
    let s = spec("0 * * * * *", "UTC");
    let p = plan(
        &s,
        Missed::Skip,
        at("2026-06-01T10:00:00Z"),
        at("2026-06-01T11:00:30Z"),
    );
    assert_eq!(
        p.fire,
        vec![at("2026-06-01T11:00:00Z")],
        "only the on-time tick"
    );
    assert_eq!(p.next, Some(at("2026-06-01T11:01:00Z")));
    assert_eq!(p.missed_from, Some(at("2026-06-01T10:00:00Z")));
}

#[test]
fn after_an_hour_down_fire_once_fires_one_execution_for_the_missed_ticks() {
    let s = spec("0 * * * * *", "UTC");
    let p = plan(
        &s,
        Missed::FireOnce,
        at("2026-06-01T10:00:00Z"),
        at("2026-06-01T11:00:30Z"),
    );
    assert_eq!(
        p.fire,
        vec![at("2026-06-01T10:00:00Z"), at("2026-06-01T11:00:00Z")]
    );
    assert_eq!(p.next, Some(at("2026-06-01T11:01:00Z")));
}

#[test]
fn after_an_hour_down_fire_all_fires_every_missed_tick_up_to_the_bound() {
    let s = spec("0 * * * * *", "UTC");
    let p = plan(
        &s,
        Missed::FireAll,
        at("2026-06-01T10:00:00Z"),
        at("2026-06-01T11:00:30Z"),
    );
    assert_eq!(p.fire.len(), 61, "10:00 … 11:00");
    assert_eq!(p.fire.first(), Some(&at("2026-06-01T10:00:00Z")));
    assert_eq!(p.fire.last(), Some(&at("2026-06-01T11:00:00Z")));
    // A per-second schedule missed 3,600 ticks: the oldest 100 fire, then the on-time ones.
    let s = spec("* * * * * *", "UTC");
    let p = plan(
        &s,
        Missed::FireAll,
        at("2026-06-01T10:00:00Z"),
        at("2026-06-01T11:00:00.500Z"),
    );
    assert_eq!(p.fire.len(), MAX_CATCH_UP + 61);
    assert_eq!(p.fire[MAX_CATCH_UP - 1], at("2026-06-01T10:01:39Z"));
    assert_eq!(p.fire[MAX_CATCH_UP], at("2026-06-01T10:59:00Z"));
    assert!(
        p.fire.windows(2).all(|w| w[0] < w[1]),
        "each once, in order"
    );
    assert_eq!(p.next, Some(at("2026-06-01T11:00:01Z")));
}

#[test]
fn impossible_expressions_and_unknown_zones_are_refused() {
    let now = at("2026-06-01T10:00:30Z");
    assert!(spec("0 0 0 31 2 *", "UTC").check_fires(now).is_err());
    assert!(spec("0 0 0 30 2 *", "UTC").next_after(now).is_none());
    assert_eq!(
        spec("0 0 0 29 2 *", "UTC").check_fires(now),
        Ok(at("2028-02-29T00:00:00Z"))
    );
    assert!(matches!(
        Spec::new("not cron", "UTC"),
        Err(SpecError::Cron(_))
    ));
    assert!(matches!(
        Spec::new("* * * * *", "Mars/Olympus"),
        Err(SpecError::Timezone(_))
    ));
    // 12:00 in Paris (summer time) is 10:00 UTC; the next one is tomorrow.
    let next = spec("0 0 12 * * *", "Europe/Paris").next_after(now);
    assert_eq!(next, Some(at("2026-06-02T10:00:00Z")));
    let five = spec("*/5 * * * *", "UTC").next_after(now);
    assert_eq!(five, Some(at("2026-06-01T10:05:00Z")));
}
