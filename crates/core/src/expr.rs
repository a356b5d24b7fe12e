//! The expression engine for conditions and computed values, built on rhai.
//!
//! Rune's syntax (`$x == true`, `and`, `or`, `not`, `contains`, single-quoted strings) is
//! translated token by token into a rhai expression in which every `$reference` becomes a
//! variable. Values are bound as typed data at evaluation time and are never re-parsed, so
//! data can never inject logic. Each expression is compiled once per workflow definition.

use std::sync::OnceLock;

use rhai::{AST, Dynamic, Engine, EvalAltResult, ImmutableString, Position, Scope};
use serde_json::{Map, Value};

use crate::path::{Reference, parse_bare_at};

/// A failure to compile or evaluate an expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExprError {
    #[error("expression `{source_text}` does not parse: {message}")]
    Syntax {
        source_text: String,
        message: String,
    },
    #[error("missing reference `{reference}` in expression `{source_text}`")]
    MissingReference {
        source_text: String,
        reference: String,
    },
    #[error("expression `{source_text}` failed: {message}")]
    Eval {
        source_text: String,
        message: String,
    },
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Expr {
    source: String,
    ast: AST,
    refs: Vec<Reference>,
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut e = Engine::new();
        e.set_max_operations(100_000);
        e.set_max_expr_depths(64, 32);
        e.set_max_string_size(1 << 20);
        e.set_max_array_size(100_000);
        e.set_max_map_size(100_000);
        // Fast-operators mode evaluates built-in operators on standard types first, and rhai's
        // built-in `==` on two different types is simply `false`: the Rune coercions registered
        // below would never run.
        e.set_fast_operators(false);
        e.on_print(|_| {});
        e.on_debug(|_, _, _| {});
        #[allow(deprecated)]
        e.set_fail_on_invalid_map_property(false);
        if let Err(err) = e.register_custom_operator("contains", 110) {
            // Only fails if the name is a keyword; "contains" is not.
            unreachable!("contains operator: {err}");
        }
        e.register_fn("contains", dyn_contains);
        // Rune compares a string with a number numerically when the string parses.
        e.register_fn("==", |a: ImmutableString, b: i64| {
            str_num(&a).is_some_and(|x| x == b as f64)
        });
        e.register_fn("==", |a: i64, b: ImmutableString| {
            str_num(&b).is_some_and(|x| x == a as f64)
        });
        e.register_fn("==", |a: ImmutableString, b: f64| {
            str_num(&a).is_some_and(|x| x == b)
        });
        e.register_fn("==", |a: f64, b: ImmutableString| {
            str_num(&b).is_some_and(|x| x == a)
        });
        e.register_fn("!=", |a: ImmutableString, b: i64| {
            !str_num(&a).is_some_and(|x| x == b as f64)
        });
        e.register_fn("!=", |a: i64, b: ImmutableString| {
            !str_num(&b).is_some_and(|x| x == a as f64)
        });
        e.register_fn("!=", |a: ImmutableString, b: f64| {
            !str_num(&a).is_some_and(|x| x == b)
        });
        e.register_fn("!=", |a: f64, b: ImmutableString| {
            !str_num(&b).is_some_and(|x| x == a)
        });
        e.register_fn("==", |a: ImmutableString, b: bool| {
            a.as_str() == b.to_string()
        });
        e.register_fn("==", |a: bool, b: ImmutableString| {
            b.as_str() == a.to_string()
        });
        e.register_fn("!=", |a: ImmutableString, b: bool| {
            a.as_str() != b.to_string()
        });
        e.register_fn("!=", |a: bool, b: ImmutableString| {
            b.as_str() != a.to_string()
        });
        e.register_fn("==", |_: (), b: Dynamic| b.is_unit());
        e.register_fn("==", |a: Dynamic, _: ()| a.is_unit());
        e.register_fn("!=", |_: (), b: Dynamic| !b.is_unit());
        e.register_fn("!=", |a: Dynamic, _: ()| !a.is_unit());
        macro_rules! numeric_cmp {
            ($op:literal, $f:expr) => {
                e.register_fn($op, |a: ImmutableString, b: i64| -> RhaiResult<bool> {
                    Ok($f(need_num(&a)?, b as f64))
                });
                e.register_fn($op, |a: i64, b: ImmutableString| -> RhaiResult<bool> {
                    Ok($f(a as f64, need_num(&b)?))
                });
                e.register_fn($op, |a: ImmutableString, b: f64| -> RhaiResult<bool> {
                    Ok($f(need_num(&a)?, b))
                });
                e.register_fn($op, |a: f64, b: ImmutableString| -> RhaiResult<bool> {
                    Ok($f(a, need_num(&b)?))
                });
            };
        }
        numeric_cmp!(">", |a: f64, b: f64| a > b);
        numeric_cmp!("<", |a: f64, b: f64| a < b);
        numeric_cmp!(">=", |a: f64, b: f64| a >= b);
        numeric_cmp!("<=", |a: f64, b: f64| a <= b);
        e
    })
}

fn str_num(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

fn need_num(s: &str) -> RhaiResult<f64> {
    str_num(s).ok_or_else(|| format!("cannot compare '{s}' as a number").into())
}

fn dyn_contains(haystack: Dynamic, needle: Dynamic) -> bool {
    if let Some(s) = haystack.clone().try_cast::<ImmutableString>() {
        return s.contains(needle.to_string().as_str());
    }
    if let Some(arr) = haystack.clone().try_cast::<rhai::Array>() {
        let nv = dynamic_to_json(&needle);
        return arr.iter().any(|x| dynamic_to_json(x) == nv);
    }
    if let Some(map) = haystack.try_cast::<rhai::Map>() {
        return map.contains_key(needle.to_string().as_str());
    }
    false
}

fn dynamic_to_json(d: &Dynamic) -> Value {
    rhai::serde::from_dynamic::<Value>(d).unwrap_or(Value::Null)
}

impl Expr {
    /// Compiles an expression. Surrounding `{{ }}` are accepted and stripped.
    pub fn compile(source: &str) -> Result<Self, ExprError> {
        let trimmed = source.trim();
        let body = trimmed
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
            .map(str::trim)
            .unwrap_or(trimmed);
        let (translated, refs) = translate(body).map_err(|message| ExprError::Syntax {
            source_text: source.to_string(),
            message,
        })?;
        let ast = engine()
            .compile_expression(&translated)
            .map_err(|e| ExprError::Syntax {
                source_text: source.to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            source: source.to_string(),
            ast,
            refs,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The references the expression reads.
    pub fn references(&self) -> &[Reference] {
        &self.refs
    }

    /// Evaluates against the context (keys `$name`). A missing reference is an error.
    pub fn eval(&self, ctx: &Map<String, Value>) -> Result<Value, ExprError> {
        let mut scope = Scope::new();
        for (i, r) in self.refs.iter().enumerate() {
            let v = r.resolve(ctx).ok_or_else(|| ExprError::MissingReference {
                source_text: self.source.clone(),
                reference: r.to_string(),
            })?;
            let d = rhai::serde::to_dynamic(v).map_err(|e| self.eval_err(e.to_string()))?;
            scope.push_constant_dynamic(format!("__r{i}"), d);
        }
        let out: Dynamic = engine()
            .eval_ast_with_scope(&mut scope, &self.ast)
            .map_err(|e| self.eval_err(clean(&e)))?;
        if out.is_unit() {
            return Ok(Value::Null);
        }
        rhai::serde::from_dynamic::<Value>(&out).map_err(|e| self.eval_err(e.to_string()))
    }

    /// Evaluates as a condition: booleans as they are, anything else by Rune's truthiness.
    pub fn eval_bool(&self, ctx: &Map<String, Value>) -> Result<bool, ExprError> {
        Ok(crate::value::truthy(&self.eval(ctx)?))
    }

    fn eval_err(&self, message: String) -> ExprError {
        ExprError::Eval {
            source_text: self.source.clone(),
            message,
        }
    }
}

fn clean(e: &EvalAltResult) -> String {
    let mut s = e.to_string();
    if e.position() != Position::NONE
        && let Some(i) = s.rfind(" (line")
    {
        s.truncate(i);
    }
    // Our internal variable names must never leak into user-facing messages.
    s.replace("__r", "$ref#")
}

/// Translates Rune/JS-style syntax to rhai and extracts `$references`.
fn translate(src: &str) -> Result<(String, Vec<Reference>), String> {
    let mut out = String::with_capacity(src.len() + 8);
    let mut refs: Vec<Reference> = Vec::new();
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (at, c) = chars[k];
        match c {
            '\'' | '"' => {
                let quote = c;
                let mut lit = String::new();
                k += 1;
                let mut closed = false;
                while k < chars.len() {
                    let (_, ch) = chars[k];
                    if ch == '\\' && k + 1 < chars.len() {
                        let (_, esc) = chars[k + 1];
                        lit.push(match esc {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        k += 2;
                        continue;
                    }
                    if ch == quote {
                        closed = true;
                        k += 1;
                        break;
                    }
                    lit.push(ch);
                    k += 1;
                }
                if !closed {
                    return Err(format!("unterminated string starting at offset {at}"));
                }
                out.push('"');
                for ch in lit.chars() {
                    match ch {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        '\r' => out.push_str("\\r"),
                        other => out.push(other),
                    }
                }
                out.push('"');
                continue;
            }
            '$' => {
                let (r, end) = parse_bare_at(src, at)
                    .ok_or_else(|| format!("invalid reference at offset {at}"))?;
                let idx = match refs.iter().position(|x| *x == r) {
                    Some(i) => i,
                    None => {
                        refs.push(r);
                        refs.len() - 1
                    }
                };
                out.push_str(&format!("__r{idx}"));
                while k < chars.len() && chars[k].0 < end {
                    k += 1;
                }
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = k;
                while k < chars.len() && (chars[k].1.is_ascii_alphanumeric() || chars[k].1 == '_') {
                    k += 1;
                }
                let end = if k < chars.len() {
                    chars[k].0
                } else {
                    src.len()
                };
                let word = &src[at..end];
                let prev_is_dot = start > 0 && chars[start - 1].1 == '.';
                if prev_is_dot {
                    out.push_str(word);
                    continue;
                }
                match word {
                    "and" | "AND" => out.push_str("&&"),
                    "or" | "OR" => out.push_str("||"),
                    "not" | "NOT" => out.push('!'),
                    "null" | "nil" | "undefined" | "None" => out.push_str("()"),
                    "True" => out.push_str("true"),
                    "False" => out.push_str("false"),
                    w if w.starts_with("__") => {
                        return Err(format!("identifier `{w}` is reserved"));
                    }
                    w => out.push_str(w),
                }
                continue;
            }
            '=' | '!' if src[at..].starts_with("===") || src[at..].starts_with("!==") => {
                out.push(c);
                out.push('=');
                k += 3;
                continue;
            }
            _ => out.push(c),
        }
        k += 1;
    }
    Ok((out, refs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(src: &str, ctx: Value) -> Result<Value, ExprError> {
        Expr::compile(src)?.eval(ctx.as_object().unwrap())
    }

    #[test]
    fn rune_boolean_syntax_works() {
        let ctx = json!({"$x": true, "$n": {"v": 5}, "$s": "hello world"});
        assert_eq!(
            eval("$x == true and $n.v >= 5", ctx.clone()).unwrap(),
            json!(true)
        );
        assert_eq!(
            eval("not $x or $n.v < 2", ctx.clone()).unwrap(),
            json!(false)
        );
        assert_eq!(
            eval("$s contains 'world'", ctx.clone()).unwrap(),
            json!(true)
        );
        assert_eq!(eval("$s contains \"nope\"", ctx).unwrap(), json!(false));
    }

    #[test]
    fn arithmetic_and_string_concatenation() {
        let ctx = json!({"$json": {"first": "Ada", "last": "Lovelace", "qty": 3, "price": 2.5}});
        assert_eq!(
            eval("{{ $json.first + ' ' + $json.last }}", ctx.clone()).unwrap(),
            json!("Ada Lovelace")
        );
        assert_eq!(
            eval("{{ $json.qty * $json.price }}", ctx).unwrap(),
            json!(7.5)
        );
    }

    #[test]
    fn numeric_strings_compare_with_numbers_as_rune_does() {
        let ctx = json!({"$r": {"status": "200"}});
        assert_eq!(eval("$r.status == 200", ctx.clone()).unwrap(), json!(true));
        assert_eq!(eval("$r.status > 100", ctx).unwrap(), json!(true));
    }

    #[test]
    fn data_cannot_inject_logic() {
        let ctx = json!({"$u": {"name": "x' or true or '"}});
        assert_eq!(eval("$u.name == 'admin'", ctx).unwrap(), json!(false));
    }

    #[test]
    fn missing_reference_names_the_reference() {
        let err = eval("$nope.x > 1", json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing reference `$nope.x` in expression `$nope.x > 1`"
        );
    }

    #[test]
    fn syntax_errors_are_reported_at_compile_time() {
        assert!(matches!(
            Expr::compile("$a == "),
            Err(ExprError::Syntax { .. })
        ));
        assert!(matches!(
            Expr::compile("x = 1"),
            Err(ExprError::Syntax { .. })
        ));
    }

    #[test]
    fn null_compares_equal_only_to_null() {
        let ctx = json!({"$a": null, "$b": 1});
        assert_eq!(eval("$a == null", ctx.clone()).unwrap(), json!(true));
        assert_eq!(eval("$b == null", ctx).unwrap(), json!(false));
    }
}
