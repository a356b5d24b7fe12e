//! How JSON values are written into text (interpolation) and judged as booleans.

use serde_json::Value;

/// Text form of a value inside an interpolated string: strings as-is, whole numbers without a
/// fraction or exponent (`1000000`, not Rune's `1e+06`), objects and arrays as compact JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_text(n),
        other => other.to_string(),
    }
}

fn number_text(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f}"),
        None => n.to_string(),
    }
}

/// Rune's truthiness: null, false, "", "false", "0" and 0 are false; everything else is true.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s == "false" || s == "0"),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A value's JSON kind with its article, for messages: "a boolean", "an array", "null".
pub fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_floats_print_as_integers() {
        assert_eq!(to_text(&json!(1_000_000.0)), "1000000");
        assert_eq!(to_text(&json!(1.5)), "1.5");
        assert_eq!(to_text(&json!({"a": 1})), r#"{"a":1}"#);
    }
}
