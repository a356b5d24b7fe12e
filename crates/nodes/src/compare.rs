//! Rune's rule comparison for switch (and list) nodes: operators, their word aliases, and
//! loose typing (numeric when both sides are numbers, otherwise text).

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
    let Value::String(s) = v else { return v.clone() };
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() >= 2 && ((b[0] == b'"' && b[b.len() - 1] == b'"') || (b[0] == b'\'' && b[b.len() - 1] == b'\'')) {
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
            Value::Array(items) => items.iter().any(|x| x == right || to_text(x) == to_text(right)),
            other => to_text(other).contains(&to_text(right)),
        }),
        _ => {
            let (Some(a), Some(b)) = (number(left), number(right)) else {
                return Err(format!("cannot order `{}` and `{}`: both must be numbers", to_text(left), to_text(right)));
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
}
