//! Black-box tests of the date/time nodes (`datetime.*`, Rune's `dateTime*`).

use baton_core::ErrorCode;
use baton_core::spec::NodeClass;
use baton_engine::{Clock, ManualClock, Node, NodeError, NodeInput, NodeOutput, SystemClock};
use baton_nodes::datetime::{DateTimeNode, GoMode, go_to_strftime};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ok(node: &DateTimeNode, params: Value) -> Value {
    node.evaluate(&params, at("2024-01-15T10:30:00Z"))
        .unwrap_or_else(|e| panic!("{params}: {e:?}"))
}

fn err(node: &DateTimeNode, params: Value) -> NodeError {
    let e = node
        .evaluate(&params, at("2024-01-15T10:30:00Z"))
        .expect_err(&params.to_string());
    assert_eq!(e.code, ErrorCode::InvalidParameter, "{e:?}");
    assert!(!e.retryable);
    e
}

async fn run(node: &DateTimeNode, params: Value) -> Result<Value, NodeError> {
    run_on(node, params, &SystemClock).await
}

async fn run_on(node: &DateTimeNode, params: Value, clock: &dyn Clock) -> Result<Value, NodeError> {
    let context = Map::new();
    let cancel = CancellationToken::new();
    node.run(NodeInput {
        params: &params,
        context: &context,
        credentials: None,
        used_credential: None,
        execution_id: "exec-1",
        node_id: "node-1",
        node_name: "Date",
        attempt: 1,
        idempotency_key: "exec-1:node-1:1",
        cancel: &cancel,
        clock,
    })
    .await
    .map(NodeOutput::into_value)
}

#[test]
fn all_five_are_registered_under_both_names_as_actions() {
    let registry = baton_nodes::registry();
    for (name, alias) in [
        ("datetime.now", "dateTimeNow"),
        ("datetime.add", "dateTimeAdd"),
        ("datetime.subtract", "dateTimeSubtract"),
        ("datetime.format", "dateTimeFormat"),
        ("datetime.parse", "dateTimeParse"),
    ] {
        let node = registry.get(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(node.spec().class, NodeClass::Action);
        assert!(node.spec().params.iter().all(|p| !p.doc.is_empty()));
        assert_eq!(registry.get(alias).unwrap().spec().type_name, name);
    }
}

#[tokio::test]
async fn now_defaults_to_utc_rfc3339() {
    let before = Utc::now().timestamp();
    let out = run(&DateTimeNode::now(), json!({})).await.unwrap();
    let unix = out["unix"].as_i64().unwrap();
    assert!((before..=before + 5).contains(&unix), "{out}");
    assert_eq!(out["timezone"], "UTC");
    let result = out["result"].as_str().unwrap();
    assert!(result.ends_with('Z') && result.len() == 20, "{result}");
    assert_eq!(out["iso"], out["result"]);
}

#[tokio::test]
async fn now_reads_the_engine_clock_not_the_system_time() {
    let clock = ManualClock::new(at("2030-06-01T08:00:00Z"));
    let out = run_on(&DateTimeNode::now(), json!({}), &clock)
        .await
        .unwrap();
    assert_eq!(out["result"], "2030-06-01T08:00:00Z");
    assert_eq!(out["unix"], at("2030-06-01T08:00:00Z").timestamp());
    clock.advance(std::time::Duration::from_secs(90));
    let out = run_on(&DateTimeNode::now(), json!({}), &clock)
        .await
        .unwrap();
    assert_eq!(out["result"], "2030-06-01T08:01:30Z");
}

#[test]
fn now_converts_to_the_time_zone() {
    let out = ok(
        &DateTimeNode::now(),
        json!({"timezone": "Asia/Tokyo", "format": "%Y-%m-%d %H:%M %Z"}),
    );
    assert_eq!(
        out,
        json!({"result": "2024-01-15 19:30 JST", "iso": "2024-01-15T19:30:00+09:00", "unix": 1705314600, "timezone": "Asia/Tokyo"})
    );
    // Rune's default layout prints the offset outside UTC.
    let out = ok(
        &DateTimeNode::now(),
        json!({"timezone": "America/New_York", "format": ""}),
    );
    assert_eq!(out["result"], "2024-01-15T05:30:00-05:00");
}

#[test]
fn format_converts_between_zones() {
    let node = DateTimeNode::format();
    let out = ok(
        &node,
        json!({"date": "2024-07-01T12:00:00Z", "timezone": "America/New_York", "format": "2006-01-02 15:04 MST"}),
    );
    assert_eq!(out["result"], "2024-07-01 08:00 EDT");
    assert_eq!(out["iso"], "2024-07-01T08:00:00-04:00");
    assert_eq!(out["unix"], 1719835200);
    // A date without an offset is read in `timezone`.
    let out = ok(
        &node,
        json!({"date": "2024-07-01 12:00", "timezone": "Europe/Paris", "format": "%H:%M %:z"}),
    );
    assert_eq!(out["result"], "12:00 +02:00");
    assert_eq!(out["unix"], 1719828000);
    // Unix seconds in, Kolkata's half-hour offset out.
    let out = ok(
        &node,
        json!({"date": 0, "timezone": "Asia/Kolkata", "format": "RFC3339"}),
    );
    assert_eq!(out["result"], "1970-01-01T05:30:00+05:30");
}

#[test]
fn go_layouts_are_translated() {
    let node = DateTimeNode::format();
    let date = "2024-03-05T07:08:09.123456Z";
    let cases = [
        ("Monday, 02-Jan-06 3:04PM", "Tuesday, 05-Mar-24 7:08AM"),
        ("January 2, 2006", "March 5, 2024"),
        ("02/01/2006 15:04:05.000", "05/03/2024 07:08:09.123"),
        ("2006-01-02T15:04:05Z07:00", "2024-03-05T07:08:09Z"),
        ("Kitchen", "7:08AM"),
        ("RFC1123", "Tue, 05 Mar 2024 07:08:09 UTC"),
        ("DateOnly", "2024-03-05"),
        ("%d.%m.%Y %H:%M", "05.03.2024 07:08"),
        ("Jan _2 at 15h", "Mar  5 at 07h"),
    ];
    for (format, want) in cases {
        let out = ok(&node, json!({"date": date, "format": format}));
        assert_eq!(out["result"], want, "format {format}");
    }
    let out = ok(
        &node,
        json!({"date": date, "timezone": "Europe/Paris", "format": "2006-01-02 15:04 -0700 Z07:00"}),
    );
    assert_eq!(out["result"], "2024-03-05 08:08 +0100 +01:00");
    assert_eq!(
        go_to_strftime("2006-01-02 15:04:05.999 pm", GoMode::Format { utc: false }),
        "%Y-%m-%d %H:%M:%S%.f %P"
    );
}

#[test]
fn add_days_across_the_paris_spring_dst_change_keeps_the_wall_clock() {
    let node = DateTimeNode::add();
    let start = "2024-03-30T12:00:00+01:00";
    let out = ok(
        &node,
        json!({"date": start, "amount": 1, "unit": "days", "timezone": "Europe/Paris"}),
    );
    assert_eq!(out["iso"], "2024-03-31T12:00:00+02:00");
    assert_eq!(out["unix"].as_i64().unwrap() - 1711796400, 23 * 3600);
    // Hours are exact durations.
    let out = ok(
        &node,
        json!({"date": start, "amount": 24, "unit": "hours", "timezone": "Europe/Paris"}),
    );
    assert_eq!(out["iso"], "2024-03-31T13:00:00+02:00");
    // Landing in the skipped hour moves forward by the gap.
    let out = ok(
        &node,
        json!({"date": "2024-03-30T02:30:00+01:00", "amount": 1, "timezone": "Europe/Paris"}),
    );
    assert_eq!(out["iso"], "2024-03-31T03:30:00+02:00");
    // Autumn: one day is 25 hours.
    let out = ok(
        &node,
        json!({"date": "2024-10-26T12:00:00+02:00", "amount": 1, "unit": "day", "timezone": "Europe/Paris"}),
    );
    assert_eq!(out["iso"], "2024-10-27T12:00:00+01:00");
    // Weeks too.
    let out = ok(
        &node,
        json!({"date": "2024-03-25T09:00:00+01:00", "amount": "1", "unit": "weeks", "timezone": "Europe/Paris"}),
    );
    assert_eq!(out["iso"], "2024-04-01T09:00:00+02:00");
}

#[test]
fn months_and_years_clamp_to_the_month_end() {
    let add = DateTimeNode::add();
    let sub = DateTimeNode::subtract();
    let iso = |node: &DateTimeNode, date: &str, amount: i64, unit: &str| {
        ok(node, json!({"date": date, "amount": amount, "unit": unit}))["iso"].clone()
    };
    assert_eq!(
        iso(&add, "2024-01-31T08:00:00Z", 1, "months"),
        "2024-02-29T08:00:00Z"
    );
    assert_eq!(
        iso(&add, "2023-01-31T08:00:00Z", 1, "months"),
        "2023-02-28T08:00:00Z"
    );
    assert_eq!(
        iso(&add, "2024-01-31T08:00:00Z", 3, "months"),
        "2024-04-30T08:00:00Z"
    );
    assert_eq!(
        iso(&add, "2024-11-30T08:00:00Z", 2, "months"),
        "2025-01-30T08:00:00Z"
    );
    assert_eq!(
        iso(&sub, "2024-03-31T08:00:00Z", 1, "months"),
        "2024-02-29T08:00:00Z"
    );
    assert_eq!(
        iso(&add, "2024-02-29T08:00:00Z", 1, "years"),
        "2025-02-28T08:00:00Z"
    );
    assert_eq!(
        iso(&sub, "2024-01-01T00:00:00Z", 90, "seconds"),
        "2023-12-31T23:58:30Z"
    );
    assert_eq!(
        iso(&add, "2024-01-01T00:00:00Z", -2, "minutes"),
        "2023-12-31T23:58:00Z"
    );
    // Month arithmetic is on the local calendar: end of January in New York.
    let out = ok(
        &add,
        json!({"date": "2024-02-01T03:00:00Z", "amount": 1, "unit": "months", "timezone": "America/New_York"}),
    );
    assert_eq!(out["iso"], "2024-02-29T22:00:00-05:00");
}

#[test]
fn add_and_subtract_default_to_now_and_reuse_the_format_to_parse() {
    let out = ok(
        &DateTimeNode::subtract(),
        json!({"amount": 1, "format": "%Y-%m-%d"}),
    );
    assert_eq!(out["result"], "2024-01-14");
    let out = ok(
        &DateTimeNode::add(),
        json!({"date": "15/01/2024 10:00", "amount": 2, "unit": "hours", "format": "02/01/2006 15:04", "timezone": "Europe/Paris"}),
    );
    assert_eq!(out["result"], "15/01/2024 12:00");
    assert_eq!(out["iso"], "2024-01-15T12:00:00+01:00");
}

#[test]
fn parse_reads_several_forms() {
    let node = DateTimeNode::parse();
    let cases = [
        json!({"date": "2024-03-30T14:05:09Z"}),
        json!({"date": "2024-03-30T15:05:09+01:00"}),
        json!({"date": "2024-03-30 14:05:09"}),
        json!({"date": "Sat, 30 Mar 2024 14:05:09 +0000"}),
        json!({"date": 1711807509}),
        json!({"date": "1711807509"}),
        json!({"date": 1711807509000_i64}),
        json!({"date": "30/03/2024 14:05:09", "format": "%d/%m/%Y %H:%M:%S"}),
        json!({"date": "30.03.2024 14h05m09", "format": "02.01.2006 15h04m05"}),
        json!({"date": "2024-03-30T14:05:09Z", "format": "RFC3339"}),
    ];
    for params in cases {
        let out = ok(&node, params.clone());
        assert_eq!(
            out,
            json!({"unix": 1711807509, "iso": "2024-03-30T14:05:09Z", "year": 2024, "month": 3, "day": 30,
                   "hour": 14, "minute": 5, "second": 9, "weekday": "Saturday", "timezone": "UTC"}),
            "{params}"
        );
    }
    // Parts are in `timezone`; a bare date is midnight there.
    let out = ok(
        &node,
        json!({"date": "2024-03-31", "timezone": "Europe/Paris"}),
    );
    assert_eq!(out["iso"], "2024-03-31T00:00:00+01:00");
    assert_eq!(out["weekday"], "Sunday");
    let out = ok(
        &node,
        json!({"date": "2024-03-30T23:30:00Z", "timezone": "Europe/Paris"}),
    );
    assert_eq!(
        (out["day"].clone(), out["hour"].clone()),
        (json!(31), json!(0))
    );
    assert_eq!(out["timezone"], "Europe/Paris");
    // An ambiguous local time (clocks going back) is the earlier instant.
    let out = ok(
        &node,
        json!({"date": "2024-10-27 02:30", "timezone": "Europe/Paris"}),
    );
    assert_eq!(out["iso"], "2024-10-27T02:30:00+02:00");
}

#[test]
fn errors_name_the_parameter_and_what_was_expected() {
    let e = err(&DateTimeNode::now(), json!({"timezone": "Mars/Olympus"}));
    assert!(
        e.message.contains("`timezone`") && e.message.contains("IANA"),
        "{}",
        e.message
    );
    let e = err(&DateTimeNode::now(), json!({"timezone": 3}));
    assert!(
        e.message.contains("`timezone`: expected a string"),
        "{}",
        e.message
    );
    let e = err(&DateTimeNode::now(), json!({"format": "%Q %Y"}));
    assert!(
        e.message.contains("`format`") && e.message.contains("strftime"),
        "{}",
        e.message
    );
    let e = err(&DateTimeNode::add(), json!({"unit": "days"}));
    assert!(e.message.contains("`amount` is required"), "{}", e.message);
    let e = err(&DateTimeNode::add(), json!({"amount": "soon"}));
    assert!(
        e.message.contains("`amount`: expected an integer"),
        "{}",
        e.message
    );
    let e = err(&DateTimeNode::subtract(), json!({"amount": 1.5}));
    assert!(
        e.message.contains("`amount`: expected an integer"),
        "{}",
        e.message
    );
    let e = err(
        &DateTimeNode::add(),
        json!({"amount": 1, "unit": "fortnights"}),
    );
    assert!(
        e.message
            .contains("`unit`: expected one of seconds, minutes"),
        "{}",
        e.message
    );
    let e = err(
        &DateTimeNode::add(),
        json!({"amount": 9_000_000_000_i64, "unit": "years"}),
    );
    assert!(e.message.contains("`amount`"), "{}", e.message);
    let e = err(&DateTimeNode::format(), json!({"format": "%Y"}));
    assert!(e.message.contains("`date` is required"), "{}", e.message);
    let e = err(&DateTimeNode::parse(), json!({}));
    assert!(e.message.contains("`date` is required"), "{}", e.message);
    let e = err(&DateTimeNode::parse(), json!({"date": "next tuesday"}));
    assert!(
        e.message.contains("`date`: expected RFC 3339") && e.message.contains("next tuesday"),
        "{}",
        e.message
    );
    let e = err(&DateTimeNode::parse(), json!({"date": {"y": 2024}}));
    assert!(
        e.message.contains("`date`: expected a date string"),
        "{}",
        e.message
    );
}
