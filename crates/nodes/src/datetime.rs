//! Date and time nodes: `datetime.now`, `datetime.add`, `datetime.subtract`, `datetime.format`
//! and `datetime.parse` (Rune's `dateTimeNow`, `dateTimeAdd`, `dateTimeSubtract`,
//! `dateTimeFormat`, `dateTimeParse`).
//!
//! Time zones are IANA names (chrono-tz). Formats are strftime strings (`%Y-%m-%d %H:%M`) or,
//! for Rune compatibility, Go reference layouts (`2006-01-02 15:04`) and Go's named layouts
//! (`RFC3339`, `Kitchen`, …), which are translated to strftime.
//!
//! Calendar arithmetic happens on the local wall clock of the chosen time zone: adding days,
//! weeks, months or years keeps the local time of day across a daylight-saving change, while
//! seconds, minutes and hours are exact durations. Adding months clamps to the end of a shorter
//! month (Jan 31 + 1 month = Feb 28/29), where Go's `AddDate` would overflow into March.

use async_trait::async_trait;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use chrono::format::StrftimeItems;
use chrono::{
    DateTime, Datelike, Days, FixedOffset, LocalResult, Months, NaiveDate, NaiveDateTime, Offset,
    SecondsFormat, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use serde_json::{Value, json};

mod layout;

use layout::parse_layout;
pub use layout::{GoMode, format_date, go_layout, go_to_strftime};

/// Rune's default output layout (Go's `time.RFC3339`).
pub const DEFAULT_FORMAT: &str = "2006-01-02T15:04:05Z07:00";

/// Which of the five operations a [`DateTimeNode`] performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Now,
    Add,
    Subtract,
    Format,
    Parse,
}

/// One of the date/time node types.
#[derive(Debug)]
pub struct DateTimeNode {
    op: Operation,
    spec: NodeSpec,
}

const TIMEZONE_DOC: &str =
    "IANA time zone such as `Europe/Paris` or `America/New_York` (default UTC).";
const FORMAT_DOC: &str = "Output format: strftime (`%Y-%m-%d %H:%M`), a Go reference layout (`2006-01-02 15:04`) or a Go layout name (`RFC3339`, `Kitchen`, `DateTime`, …). Default `2006-01-02T15:04:05Z07:00` (RFC 3339).";
const DATE_DOC: &str = "RFC 3339 / ISO 8601 text (`2024-03-30T12:00:00+01:00`; without an offset it is read in `timezone`), `YYYY-MM-DD`, RFC 2822, or Unix seconds (a number or numeric string; values of magnitude >= 1e11 are read as milliseconds). `format` is also tried as a parse layout.";
const UNITS: &[&str] = &[
    "seconds", "minutes", "hours", "days", "weeks", "months", "years",
];
const OUTPUT: &str = r#"{"result": "<formatted>", "iso": "<RFC 3339 in timezone>", "unix": <seconds>, "timezone": "<IANA name>"}"#;

fn spec(
    type_name: &'static str,
    alias: &'static str,
    summary: &'static str,
    params: Vec<ParamSpec>,
    output: &'static str,
) -> NodeSpec {
    NodeSpec {
        type_name,
        aliases: vec![alias],
        class: NodeClass::Action,
        summary,
        params,
        output,
        raw_params: vec![],
        example: match type_name {
            "datetime.now" => r#"{"timezone": "Europe/Paris", "format": "%Y-%m-%d %H:%M"}"#,
            "datetime.add" => r#"{"date": "$input.ordered_at", "amount": 3, "unit": "days"}"#,
            "datetime.subtract" => r#"{"date": "$input.due", "amount": 2, "unit": "hours"}"#,
            "datetime.format" => {
                r#"{"date": "$input.ordered_at", "timezone": "America/New_York", "format": "%d %b %Y"}"#
            }
            _ => r#"{"date": "2024-03-30T12:00:00+01:00", "timezone": "UTC"}"#,
        },
        // Reads the engine's clock, calls nothing: a second run only computes again.
        pure: true,
    }
}

fn add_params(verb: &'static str) -> Vec<ParamSpec> {
    vec![
        ParamSpec::optional(
            "date",
            ParamKind::Any,
            "Start date (default now). Same forms as `datetime.format`'s `date`.",
        ),
        ParamSpec::required("amount", ParamKind::Integer, verb),
        ParamSpec::optional(
            "unit",
            ParamKind::Enum(UNITS.to_vec()),
            "seconds, minutes, hours (exact durations), days (default), weeks, months, years (calendar: keep the local time across DST; months clamp to the month's end).",
        ),
        ParamSpec::optional("timezone", ParamKind::String, TIMEZONE_DOC),
        ParamSpec::optional("format", ParamKind::String, FORMAT_DOC),
    ]
}

impl DateTimeNode {
    pub fn new(op: Operation) -> Self {
        let spec = match op {
            Operation::Now => spec(
                "datetime.now",
                "dateTimeNow",
                "The current date and time in a time zone, formatted.",
                vec![
                    ParamSpec::optional("timezone", ParamKind::String, TIMEZONE_DOC),
                    ParamSpec::optional("format", ParamKind::String, FORMAT_DOC),
                ],
                OUTPUT,
            ),
            Operation::Add => spec(
                "datetime.add",
                "dateTimeAdd",
                "Adds an amount of time to a date (calendar-aware for days and longer).",
                add_params("How many units to add (an integer; negative subtracts)."),
                OUTPUT,
            ),
            Operation::Subtract => spec(
                "datetime.subtract",
                "dateTimeSubtract",
                "Subtracts an amount of time from a date (calendar-aware for days and longer).",
                add_params("How many units to subtract (an integer; negative adds)."),
                OUTPUT,
            ),
            Operation::Format => spec(
                "datetime.format",
                "dateTimeFormat",
                "Formats a date in a time zone.",
                vec![
                    ParamSpec::required("date", ParamKind::Any, DATE_DOC),
                    ParamSpec::optional("timezone", ParamKind::String, TIMEZONE_DOC),
                    ParamSpec::optional("format", ParamKind::String, FORMAT_DOC),
                ],
                OUTPUT,
            ),
            Operation::Parse => spec(
                "datetime.parse",
                "dateTimeParse",
                "Parses a date and splits it into its parts in a time zone.",
                vec![
                    ParamSpec::required("date", ParamKind::Any, DATE_DOC),
                    ParamSpec::optional(
                        "timezone",
                        ParamKind::String,
                        "IANA time zone the parts are expressed in, and that a date without an offset is read in (default UTC).",
                    ),
                    ParamSpec::optional(
                        "format",
                        ParamKind::String,
                        "Optional layout to read `date` with (strftime or Go layout); the usual forms are tried too.",
                    ),
                ],
                r#"{"unix": <seconds>, "iso": "<RFC 3339>", "year": n, "month": 1-12, "day": n, "hour": n, "minute": n, "second": n, "weekday": "Sunday", "timezone": "<IANA name>"}"#,
            ),
        };
        Self { op, spec }
    }

    pub fn now() -> Self {
        Self::new(Operation::Now)
    }
    pub fn add() -> Self {
        Self::new(Operation::Add)
    }
    pub fn subtract() -> Self {
        Self::new(Operation::Subtract)
    }
    pub fn format() -> Self {
        Self::new(Operation::Format)
    }
    pub fn parse() -> Self {
        Self::new(Operation::Parse)
    }

    /// The operation on resolved parameters, at `now` (injectable for tests).
    pub fn evaluate(&self, params: &Value, now: DateTime<Utc>) -> Result<Value, NodeError> {
        let tz = timezone(params)?;
        let format = opt_str(params, "format")?;
        match self.op {
            Operation::Now => output(&now.with_timezone(&tz), tz, format),
            Operation::Format => {
                let date = required_date(params, tz, format)?;
                output(&date, tz, format)
            }
            Operation::Add | Operation::Subtract => {
                let date = match params.get("date") {
                    None | Some(Value::Null) => now.with_timezone(&tz),
                    Some(Value::String(s)) if s.trim().is_empty() => now.with_timezone(&tz),
                    Some(v) => parse_date(v, tz, format)?,
                };
                let amount = amount(params)?;
                let amount = if self.op == Operation::Subtract {
                    amount.checked_neg().ok_or_else(|| {
                        NodeError::invalid("parameter `amount`: expected an integer, found one too large to negate")
                    })?
                } else {
                    amount
                };
                let unit = unit(params)?;
                let shifted = shift(&date, amount, unit)?;
                output(&shifted, tz, format)
            }
            Operation::Parse => {
                let d = required_date(params, tz, format)?;
                Ok(json!({
                    "unix": d.timestamp(),
                    "iso": iso(&d),
                    "year": d.year(),
                    "month": d.month(),
                    "day": d.day(),
                    "hour": d.hour(),
                    "minute": d.minute(),
                    "second": d.second(),
                    "weekday": d.format("%A").to_string(),
                    "timezone": tz.name(),
                }))
            }
        }
    }
}

#[async_trait]
impl Node for DateTimeNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn check(&self, params: &Value) -> Vec<baton_core::validate::Problem> {
        crate::checks::datetime(params)
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        self.evaluate(input.params, input.clock.now_utc())
            .map(NodeOutput::Value)
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// A string parameter; missing, null and blank strings are `None`.
fn opt_str<'a>(params: &'a Value, name: &str) -> Result<Option<&'a str>, NodeError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(NodeError::invalid(format!(
            "parameter `{name}`: expected a string, found `{other}`"
        ))),
    }
}

fn timezone(params: &Value) -> Result<Tz, NodeError> {
    match opt_str(params, "timezone")? {
        None => Ok(Tz::UTC),
        Some(name) => name.trim().parse::<Tz>().map_err(|_| {
            NodeError::invalid(format!(
                "parameter `timezone`: expected an IANA time zone such as `Europe/Paris` or `UTC`, found `{name}`"
            ))
        }),
    }
}

fn amount(params: &Value) -> Result<i64, NodeError> {
    let bad = |v: &Value| {
        NodeError::invalid(format!(
            "parameter `amount`: expected an integer, found `{v}`"
        ))
    };
    match params.get("amount") {
        None | Some(Value::Null) => Err(NodeError::invalid(
            "parameter `amount` is required: expected an integer",
        )),
        Some(v @ Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| bad(v)),
        Some(v @ Value::String(s)) => s.trim().parse::<i64>().map_err(|_| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

/// A unit of `amount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

fn unit(params: &Value) -> Result<Unit, NodeError> {
    let Some(text) = opt_str(params, "unit")? else {
        return Ok(Unit::Days);
    };
    let unit = match text.trim().to_ascii_lowercase().as_str() {
        "second" | "seconds" | "s" | "sec" | "secs" => Unit::Seconds,
        "minute" | "minutes" | "min" | "mins" => Unit::Minutes,
        "hour" | "hours" | "h" => Unit::Hours,
        "day" | "days" | "d" => Unit::Days,
        "week" | "weeks" | "w" => Unit::Weeks,
        "month" | "months" => Unit::Months,
        "year" | "years" | "y" => Unit::Years,
        _ => {
            return Err(NodeError::invalid(format!(
                "parameter `unit`: expected one of {}, found `{text}`",
                UNITS.join(", ")
            )));
        }
    };
    Ok(unit)
}

fn required_date(params: &Value, tz: Tz, format: Option<&str>) -> Result<DateTime<Tz>, NodeError> {
    match params.get("date") {
        None | Some(Value::Null) => Err(NodeError::invalid(
            "parameter `date` is required: expected a date such as `2024-03-30T12:00:00Z` or Unix seconds",
        )),
        Some(v) => parse_date(v, tz, format),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing dates
// ---------------------------------------------------------------------------------------------

/// Layouts with an offset, tried after RFC 3339 and RFC 2822.
const OFFSET_LAYOUTS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f %#z",
    "%Y-%m-%dT%H:%M%#z",
];

/// Layouts without an offset: read on the wall clock of `timezone`.
const NAIVE_LAYOUTS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
];

const DATE_LAYOUTS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"];

fn parse_date(v: &Value, tz: Tz, format: Option<&str>) -> Result<DateTime<Tz>, NodeError> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            from_unix(f, tz).ok_or_else(|| {
                NodeError::invalid(format!("parameter `date`: Unix time `{n}` is out of range"))
            })
        }
        Value::String(s) => parse_date_text(s.trim(), tz, format),
        other => Err(NodeError::invalid(format!(
            "parameter `date`: expected a date string or Unix seconds, found `{other}`"
        ))),
    }
}

/// Unix seconds, or milliseconds when the magnitude is at least 1e11 (year 5138 in seconds).
fn from_unix(f: f64, tz: Tz) -> Option<DateTime<Tz>> {
    if !f.is_finite() {
        return None;
    }
    let millis = if f.abs() >= 1e11 { f } else { f * 1000.0 };
    if millis.abs() > 8.0e18 {
        return None;
    }
    DateTime::<Utc>::from_timestamp_millis(millis.round() as i64).map(|d| d.with_timezone(&tz))
}

fn parse_date_text(s: &str, tz: Tz, format: Option<&str>) -> Result<DateTime<Tz>, NodeError> {
    if s.is_empty() {
        return Err(NodeError::invalid(
            "parameter `date`: expected a date such as `2024-03-30T12:00:00Z`, found an empty string",
        ));
    }
    // The node's own format first: a date written the way the workflow formats dates.
    if let Some(fmt) = format {
        let layout = parse_layout(fmt);
        if let Some(d) = parse_with(s, &layout, tz)? {
            return Ok(d);
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d.with_timezone(&tz));
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Ok(d.with_timezone(&tz));
    }
    for layout in OFFSET_LAYOUTS
        .iter()
        .chain(NAIVE_LAYOUTS)
        .chain(DATE_LAYOUTS)
    {
        if let Some(d) = parse_with(s, layout, tz)? {
            return Ok(d);
        }
    }
    if let Ok(f) = s.parse::<f64>()
        && let Some(d) = from_unix(f, tz)
    {
        return Ok(d);
    }
    Err(NodeError::invalid(format!(
        "parameter `date`: expected RFC 3339 (`2024-03-30T12:00:00+01:00`), `YYYY-MM-DD[ HH:MM[:SS]]`, RFC 2822, Unix seconds{}; found `{s}`",
        format
            .map(|f| format!(" or the layout `{f}`"))
            .unwrap_or_default()
    )))
}

/// Parses `s` with one strftime layout: with an offset, as a local date-time, or as a date at
/// midnight. `Ok(None)` when it does not match.
fn parse_with(s: &str, layout: &str, tz: Tz) -> Result<Option<DateTime<Tz>>, NodeError> {
    if StrftimeItems::new(layout).parse().is_err() {
        return Ok(None);
    }
    if let Ok(d) = DateTime::<FixedOffset>::parse_from_str(s, layout) {
        return Ok(Some(d.with_timezone(&tz)));
    }
    if let Ok(n) = NaiveDateTime::parse_from_str(s, layout) {
        return local(tz, n, "date").map(Some);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, layout) {
        return local(tz, d.and_time(chrono::NaiveTime::MIN), "date").map(Some);
    }
    Ok(None)
}

/// A wall-clock time in `tz`. An ambiguous time (clocks going back) is the earlier instant; a
/// skipped time (clocks going forward) is moved forward by the gap, as Go does.
fn local(tz: Tz, naive: NaiveDateTime, param: &str) -> Result<DateTime<Tz>, NodeError> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(d) => Ok(d),
        LocalResult::Ambiguous(a, b) => Ok(a.min(b)),
        LocalResult::None => {
            // The offset in force just before the gap.
            let before = naive
                .checked_sub_signed(TimeDelta::days(1))
                .and_then(|n| tz.from_local_datetime(&n).earliest())
                .map(|d| d.offset().fix());
            before
                .and_then(|off| {
                    naive.checked_sub_signed(TimeDelta::seconds(i64::from(off.local_minus_utc())))
                })
                .map(|utc| tz.from_utc_datetime(&utc))
                .ok_or_else(|| {
                    NodeError::invalid(format!(
                        "parameter `{param}`: `{naive}` does not exist in {}",
                        tz.name()
                    ))
                })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arithmetic
// ---------------------------------------------------------------------------------------------

fn shift(date: &DateTime<Tz>, amount: i64, unit: Unit) -> Result<DateTime<Tz>, NodeError> {
    let overflow = || {
        NodeError::invalid(format!(
            "parameter `amount`: {amount} {unit:?} takes the date out of the supported range"
        ))
    };
    let tz = date.timezone();
    let exact = |secs_per: i64| -> Result<DateTime<Tz>, NodeError> {
        let secs = amount.checked_mul(secs_per).ok_or_else(overflow)?;
        let delta = TimeDelta::try_seconds(secs).ok_or_else(overflow)?;
        date.checked_add_signed(delta).ok_or_else(overflow)
    };
    let naive = date.naive_local();
    let magnitude = amount.unsigned_abs();
    let calendar = match unit {
        Unit::Seconds => return exact(1),
        Unit::Minutes => return exact(60),
        Unit::Hours => return exact(3600),
        Unit::Days | Unit::Weeks => {
            let days = if unit == Unit::Weeks {
                magnitude.checked_mul(7).ok_or_else(overflow)?
            } else {
                magnitude
            };
            if amount >= 0 {
                naive.checked_add_days(Days::new(days))
            } else {
                naive.checked_sub_days(Days::new(days))
            }
        }
        Unit::Months | Unit::Years => {
            let months = if unit == Unit::Years {
                magnitude.checked_mul(12).ok_or_else(overflow)?
            } else {
                magnitude
            };
            let months = u32::try_from(months).map_err(|_| overflow())?;
            if amount >= 0 {
                naive.checked_add_months(Months::new(months))
            } else {
                naive.checked_sub_months(Months::new(months))
            }
        }
    };
    local(tz, calendar.ok_or_else(overflow)?, "amount")
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

fn iso(d: &DateTime<Tz>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn output(d: &DateTime<Tz>, tz: Tz, format: Option<&str>) -> Result<Value, NodeError> {
    Ok(json!({
        "result": format_date(d, format.unwrap_or(DEFAULT_FORMAT))?,
        "iso": iso(d),
        "unix": d.timestamp(),
        "timezone": tz.name(),
    }))
}
