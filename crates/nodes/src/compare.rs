//! Rune's rule comparison for switch (and list) nodes: operators, their word aliases, and
//! loose typing (numeric when both sides are numbers, otherwise text).

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use serde_json::Value;

use baton_core::value::to_text;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Contains,
}

impl Op {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "==" | "=" | "eq" | "equals" | "is equal to" => Op::Eq,
            "!=" | "neq" | "ne" | "is not equal to" => Op::Ne,
            ">" | "gt" | "is greater than" => Op::Gt,
            "<" | "lt" | "is less than" => Op::Lt,
            ">=" | "gte" | "ge" | "is greater than or equal to" => Op::Ge,
            "<=" | "lte" | "le" | "is less than or equal to" => Op::Le,
            "contains" => Op::Contains,
            _ => return None,
        })
    }
}

/// Interprets a rule side the way Rune does: a quoted string is a literal, numbers, booleans
/// and null are parsed, anything else is text. Non-string values are used as they are.
pub fn literal(v: &Value) -> Value {
    let Value::String(s) = v else {
        return v.clone();
    };
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() >= 2
        && ((b[0] == b'"' && b[b.len() - 1] == b'"') || (b[0] == b'\'' && b[b.len() - 1] == b'\''))
    {
        return Value::String(t[1..t.len() - 1].to_string());
    }
    match t {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "null" | "nil" => return Value::Null,
        _ => {}
    }
    if let Ok(n) = t.parse::<f64>()
        && let Some(num) = serde_json::Number::from_f64(n)
    {
        return Value::Number(num);
    }
    Value::String(s.clone())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Compares `left op right`. Ordering operators need two numbers; otherwise `Err` explains.
pub fn compare(left: &Value, op: Op, right: &Value) -> Result<bool, String> {
    match op {
        Op::Eq | Op::Ne => {
            let eq = match (left, right) {
                (Value::Null, Value::Null) => true,
                (Value::Null, _) | (_, Value::Null) => false,
                _ => match (number(left), number(right)) {
                    (Some(a), Some(b)) => a == b,
                    _ => to_text(left) == to_text(right),
                },
            };
            Ok(if op == Op::Eq { eq } else { !eq })
        }
        Op::Contains => Ok(match left {
            Value::Array(items) => items
                .iter()
                .any(|x| x == right || to_text(x) == to_text(right)),
            other => to_text(other).contains(&to_text(right)),
        }),
        _ => {
            let (Some(a), Some(b)) = (number(left), number(right)) else {
                return Err(format!(
                    "cannot order `{}` and `{}`: both must be numbers",
                    to_text(left),
                    to_text(right)
                ));
            };
            Ok(match op {
                Op::Gt => a > b,
                Op::Lt => a < b,
                Op::Ge => a >= b,
                _ => a <= b,
            })
        }
    }
}

/// A number, or a string that parses as one.
pub fn number_of(v: &Value) -> Option<f64> {
    number(v)
}

/// Rune's boolean-like values: `true`/`1`/`yes` and `false`/`0`/`no` (case-insensitive).
pub fn bool_like(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64()? {
            1.0 => Some(true),
            0.0 => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A date-time: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), `YYYY-MM-DD` (UTC midnight), or
/// RFC 2822 (`Mon, 02 Jan 2006 15:04:05 +0000`, RFC 1123/822's numeric-zone forms).
pub fn parse_date(v: &Value) -> Option<DateTime<FixedOffset>> {
    let s = v.as_str()?.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d);
    }
    let utc = FixedOffset::east_opt(0)?;
    for layout in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, layout) {
            return Some(n.and_utc().with_timezone(&utc));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().with_timezone(&utc));
    }
    DateTime::parse_from_rfc2822(s).ok()
}

/// Case-insensitive text order of the values' text forms.
pub fn compare_text(a: &Value, b: &Value) -> Ordering {
    to_text(a).to_lowercase().cmp(&to_text(b).to_lowercase())
}

/// Rune's "auto" order for lists: numeric when both are numbers, else by date when both are
/// dates, else case-insensitive text.
pub fn compare_auto(a: &Value, b: &Value) -> Ordering {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x.total_cmp(&y);
    }
    if let (Some(x), Some(y)) = (parse_date(a), parse_date(b)) {
        return x.cmp(&y);
    }
    compare_text(a, b)
}

/// Rune's list-rule comparison (filter): `==`/`!=` are null-aware, numeric when both are
/// numbers, else boolean when both are boolean-like, else text; ordering operators use
/// [`compare_auto`] (a null side never matches); `contains` is a substring test (or an array
/// element test).
pub fn list_compare(left: &Value, op: Op, right: &Value) -> bool {
    match op {
        Op::Eq | Op::Ne => {
            let eq = match (left, right) {
                (Value::Null, Value::Null) => true,
                (Value::Null, _) | (_, Value::Null) => false,
                _ => match (number(left), number(right)) {
                    (Some(a), Some(b)) => a == b,
                    _ => match (bool_like(left), bool_like(right)) {
                        (Some(a), Some(b)) => a == b,
                        _ => to_text(left) == to_text(right),
                    },
                },
            };
            if op == Op::Eq { eq } else { !eq }
        }
        Op::Contains => match left {
            Value::Null => false,
            Value::Array(items) => items
                .iter()
                .any(|x| x == right || to_text(x) == to_text(right)),
            other => to_text(other).contains(&to_text(right)),
        },
        _ => {
            if left.is_null() || right.is_null() {
                return false;
            }
            let ord = compare_auto(left, right);
            match op {
                Op::Gt => ord == Ordering::Greater,
                Op::Lt => ord == Ordering::Less,
                Op::Ge => ord != Ordering::Less,
                _ => ord != Ordering::Greater,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_numerically_even_as_strings() {
        assert!(compare(&json!("200"), Op::Eq, &json!(200)).unwrap());
        assert!(compare(&json!(10), Op::Gt, &literal(&json!("9"))).unwrap());
    }

    #[test]
    fn ordering_text_is_an_error() {
        assert!(compare(&json!("abc"), Op::Gt, &json!(1)).is_err());
    }

    #[test]
    fn word_aliases_parse() {
        assert_eq!(Op::parse("is greater than or equal to"), Some(Op::Ge));
        assert_eq!(Op::parse("contains"), Some(Op::Contains));
    }

    #[test]
    fn quoted_literals_stay_text() {
        assert_eq!(literal(&json!("'42'")), json!("42"));
        assert_eq!(literal(&json!("42")), json!(42.0));
    }

    #[test]
    fn list_rules_fall_back_from_numbers_to_dates_to_text() {
        assert!(list_compare(&json!("10"), Op::Gt, &json!(9)));
        assert!(list_compare(
            &json!("2024-03-01"),
            Op::Gt,
            &json!("2024-02-28T10:00:00Z")
        ));
        assert!(list_compare(
            &json!("2024-03-01 10:00:00"),
            Op::Lt,
            &json!("2024-03-01T11:00:00+00:00")
        ));
        assert!(list_compare(&json!("banana"), Op::Gt, &json!("Apple")));
        assert!(list_compare(&json!("yes"), Op::Eq, &json!(true)));
        assert!(!list_compare(&Value::Null, Op::Gt, &json!(1)));
        assert!(list_compare(
            &json!("hello world"),
            Op::Contains,
            &json!("lo w")
        ));
    }
}
