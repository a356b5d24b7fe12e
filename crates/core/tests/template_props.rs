//! Property tests of the template language (`baton_core::template`), context references
//! (`baton_core::path`) and the expression engine (`baton_core::expr`).

use std::collections::HashSet;

use baton_core::expr::Expr;
use baton_core::path::{Reference, Segment, parse_bare_whole, parse_handlebars_path};
use baton_core::template::{TemplateError, TemplateSet};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Any JSON value (finite numbers only, as JSON has no NaN), a few levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        // Data that looks like a template must come back untouched, never re-parsed.
        prop_oneof![
            ".{0,12}",
            Just("$input.x".to_string()),
            Just("{{$a.b}}".to_string())
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((".{0,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A context key as written bare after `$` (e.g. `input`, `Fetch-1`).
fn arb_root_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_-]{0,8}"
}

/// A field name usable bare in a path and inside handlebars braces.
fn arb_field() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,8}"
}

fn arb_segment() -> impl Strategy<Value = Segment> {
    prop_oneof![3 => arb_field().prop_map(Segment::Key), 1 => (0usize..4).prop_map(Segment::Index)]
}

/// Builds a root value in which `path` leads to `leaf`, with distracting siblings around it.
fn nest(path: &[Segment], leaf: Value) -> Value {
    path.iter().rev().fold(leaf, |inner, seg| match seg {
        Segment::Key(k) => {
            let mut m = Map::new();
            if k != "sibling" {
                m.insert("sibling".into(), json!("not this"));
            }
            m.insert(k.clone(), inner);
            Value::Object(m)
        }
        Segment::Index(i) => {
            let mut items = vec![json!("not this"); *i];
            items.push(inner);
            items.push(json!("nor this"));
            Value::Array(items)
        }
    })
}

/// Text that contains no template syntax at all (a backslash before `{{` is handlebars' escape).
fn arb_plain_text() -> impl Strategy<Value = String> {
    "[^${}\\\\]{0,16}"
}

fn strict(roots: &[&str]) -> HashSet<String> {
    roots.iter().map(|r| r.to_string()).collect()
}

/// Compiles `template` under parameter `field` and resolves it against `ctx`.
fn render(
    template: &str,
    ctx: &Map<String, Value>,
    strict_roots: &HashSet<String>,
) -> Result<Value, TemplateError> {
    let mut set = TemplateSet::new();
    let compiled = set.compile(&json!({ "field": template }), strict_roots)?;
    compiled.resolve(&set, ctx, "").map(|v| v["field"].clone())
}

fn ctx_with(key: &str, value: Value) -> Map<String, Value> {
    let mut ctx = Map::new();
    // A distractor no generated key can equal.
    ctx.insert("$~other~".into(), json!({"unrelated": true}));
    ctx.insert(key.to_string(), value);
    ctx
}

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn text_without_dollar_or_double_braces_resolves_to_itself(
        s in any::<String>().prop_filter("no template syntax", |s| !s.contains('$') && !s.contains("{{"))
    ) {
        let out = render(&s, &ctx_with("$input", json!({"x": 1})), &strict(&["$input"])).unwrap();
        prop_assert_eq!(out, Value::String(s));
    }

    #[test]
    fn literal_parameter_trees_resolve_to_themselves(
        value in arb_json().prop_filter("no template syntax", |v| {
            let text = v.to_string();
            !text.contains('$') && !text.contains("{{")
        })
    ) {
        let mut set = TemplateSet::new();
        let compiled = set.compile(&value, &strict(&["$input"])).unwrap();
        prop_assert!(compiled.is_literal());
        prop_assert!(compiled.roots().is_empty());
        prop_assert_eq!(compiled.resolve(&set, &Map::new(), "").unwrap(), value);
    }

    #[test]
    fn a_whole_braced_reference_yields_the_stored_value_with_its_type(
        root in arb_root_name(),
        path in prop::collection::vec(arb_segment(), 0..4),
        leaf in arb_json(),
        strict_root in any::<bool>(),
    ) {
        let key = format!("${root}");
        let reference = Reference { root: key.clone(), path: path.clone() };
        let ctx = ctx_with(&key, nest(&path, leaf.clone()));
        let roots = if strict_root { strict(&[&key]) } else { HashSet::new() };
        for template in [format!("{{{{ {reference} }}}}"), format!("{{{{{reference}}}}}"), format!("{{{{{{{reference}}}}}}}")] {
            let out = render(&template, &ctx, &roots);
            prop_assert_eq!(out, Ok(leaf.clone()), "template {}", template);
        }
    }

    #[test]
    fn a_whole_bare_reference_yields_the_stored_value_with_its_type(
        root in arb_root_name(),
        path in prop::collection::vec(arb_segment(), 0..4),
        leaf in arb_json(),
        strict_root in any::<bool>(),
    ) {
        let key = format!("${root}");
        let reference = Reference { root: key.clone(), path: path.clone() };
        let ctx = ctx_with(&key, nest(&path, leaf.clone()));
        let roots = if strict_root { strict(&[&key]) } else { HashSet::new() };
        let template = reference.to_string();
        prop_assert_eq!(render(&template, &ctx, &roots), Ok(leaf), "template {}", template);
    }

    #[test]
    fn a_root_with_spaces_is_reachable_in_both_spellings(
        words in prop::collection::vec("[A-Za-z0-9]{1,6}", 2..4),
        path in prop::collection::vec(arb_field().prop_map(Segment::Key), 0..3),
        leaf in arb_json(),
    ) {
        let name = words.join(" ");
        let key = format!("${name}");
        let reference = Reference { root: key.clone(), path: path.clone() };
        let ctx = ctx_with(&key, nest(&path, leaf.clone()));
        let roots = strict(&[&key]);
        let bare = reference.to_string();
        prop_assert!(bare.starts_with("$["), "{}", bare);
        let tail: String = path.iter().map(|s| match s { Segment::Key(k) => format!(".{k}"), Segment::Index(i) => format!(".{i}") }).collect();
        for template in [bare.clone(), format!("{{{{ {bare} }}}}"), format!("{{{{[${name}]{tail}}}}}")] {
            prop_assert_eq!(render(&template, &ctx, &roots), Ok(leaf.clone()), "template {}", template);
        }
    }

    #[test]
    fn interpolating_a_string_equals_concatenation(
        root in arb_root_name(),
        field in arb_field(),
        value in any::<String>(),
        pre in arb_plain_text(),
        post in arb_plain_text(),
        strict_root in any::<bool>(),
    ) {
        let key = format!("${root}");
        let ctx = ctx_with(&key, json!({ field.clone(): value.clone() }));
        let roots = if strict_root { strict(&[&key]) } else { HashSet::new() };
        // The space ends the reference; `pre` may end in anything.
        let template = format!("{pre}{key}.{field} {post}");
        let out = render(&template, &ctx, &roots).unwrap();
        prop_assert_eq!(out, Value::String(format!("{pre}{value} {post}")));
        // The same through handlebars: no HTML escaping, data is not re-parsed.
        let template = format!("{pre}{{{{{key}.{field}}}}} {post}");
        let out = render(&template, &ctx, &roots).unwrap();
        prop_assert_eq!(out, Value::String(format!("{pre}{value} {post}")));
    }

    #[test]
    fn mixing_braces_and_bare_references_equals_concatenation(
        a in arb_root_name(),
        b in arb_root_name(),
        x in any::<String>(),
        y in any::<String>(),
        pre in arb_plain_text(),
        mid in arb_plain_text(),
        post in arb_plain_text(),
    ) {
        prop_assume!(a != b);
        let (ka, kb) = (format!("${a}"), format!("${b}"));
        let mut ctx = ctx_with(&ka, json!({"x": x.clone()}));
        ctx.insert(kb.clone(), json!({"y": y.clone()}));
        let roots = strict(&[&ka, &kb]);
        let template = format!("{pre}{{{{{ka}.x}}}}{mid}{kb}.y {post}");
        prop_assert_eq!(render(&template, &ctx, &roots).unwrap(), Value::String(format!("{pre}{x}{mid}{y} {post}")));
        let template = format!("{pre}{kb}.y {mid}{{{{{ka}.x}}}}{post}");
        prop_assert_eq!(render(&template, &ctx, &roots).unwrap(), Value::String(format!("{pre}{y} {mid}{x}{post}")));
    }

    #[test]
    fn interpolating_an_integer_writes_its_decimal_form(
        root in arb_root_name(),
        field in arb_field(),
        n in any::<i64>(),
        pre in arb_plain_text(),
        post in arb_plain_text(),
    ) {
        let key = format!("${root}");
        let ctx = ctx_with(&key, json!({ field.clone(): n }));
        let template = format!("{pre}{key}.{field} {post}");
        prop_assert_eq!(render(&template, &ctx, &strict(&[&key])).unwrap(), Value::String(format!("{pre}{n} {post}")));
    }

    #[test]
    fn a_missing_strict_root_always_errors_naming_the_reference(
        root in arb_root_name(),
        path in prop::collection::vec(arb_field(), 0..3),
        pre in arb_plain_text(),
        post in arb_plain_text(),
    ) {
        let key = format!("${root}");
        let reference = Reference { root: key.clone(), path: path.into_iter().map(Segment::Key).collect() };
        let ctx = ctx_with("$~somewhere else~", json!({"x": 1}));
        let roots = strict(&[&key]);
        let text = reference.to_string();
        for template in [
            text.clone(),
            format!("{{{{ {text} }}}}"),
            format!("{pre}{text} {post}"),
            format!("{pre}{{{{{text}}}}} {post}"),
        ] {
            match render(&template, &ctx, &roots) {
                Err(TemplateError::MissingReference { field, reference: named }) => {
                    prop_assert_eq!(field, "field");
                    prop_assert!(named.contains(&text), "template {:?}: error names {:?}, not {:?}", template, named, text);
                }
                other => prop_assert!(false, "template {:?}: expected a missing reference, got {:?}", template, other),
            }
        }
    }

    #[test]
    fn a_missing_path_under_a_present_root_errors_naming_the_reference(
        root in arb_root_name(),
        field in arb_field(),
        strict_root in any::<bool>(),
    ) {
        let key = format!("${root}");
        let ctx = ctx_with(&key, json!({}));
        let roots = if strict_root { strict(&[&key]) } else { HashSet::new() };
        let text = format!("{key}.{field}");
        for template in [text.clone(), format!("{{{{{text}}}}}"), format!("x {text} y"), format!("x {{{{{text}}}}} y")] {
            let err = render(&template, &ctx, &roots).unwrap_err();
            prop_assert!(
                matches!(&err, TemplateError::MissingReference { reference, .. } if reference.contains(&text)),
                "template {:?}: {:?}", template, err
            );
        }
    }

    #[test]
    fn a_missing_root_that_is_not_strict_stays_text(
        root in arb_root_name(),
        path in prop::collection::vec(arb_field(), 0..3),
        pre in arb_plain_text(),
        post in arb_plain_text(),
    ) {
        let reference = Reference { root: format!("${root}"), path: path.into_iter().map(Segment::Key).collect() };
        for template in [reference.to_string(), format!("{pre}{reference} {post}")] {
            let out = render(&template, &Map::new(), &HashSet::new());
            prop_assert_eq!(out, Ok(Value::String(template.clone())));
        }
    }

    #[test]
    fn compiling_and_resolving_any_text_never_panics(s in "\\PC{0,48}", braces in any::<bool>()) {
        let s = if braces { format!("{{{{{s}}}}}") } else { s };
        let ctx = ctx_with("$input", json!({"a": [1, {"b": "c"}], "n": 3}));
        let _ = render(&s, &ctx, &strict(&["$input"]));
    }
}

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

fn arb_reference() -> impl Strategy<Value = Reference> {
    let root = prop_oneof![arb_root_name(), "[^\\]]{1,10}"].prop_map(|r| format!("${r}"));
    let segment = prop_oneof![
        "[^\\]]{0,8}".prop_map(Segment::Key),
        arb_field().prop_map(Segment::Key),
        any::<usize>().prop_map(Segment::Index),
    ];
    (root, prop::collection::vec(segment, 0..5)).prop_map(|(root, path)| Reference { root, path })
}

proptest! {
    #[test]
    fn reference_display_parses_back_to_the_same_reference(r in arb_reference()) {
        let text = r.to_string();
        prop_assert_eq!(parse_bare_whole(&text), Some(r.clone()), "text {:?}", text);
        prop_assert_eq!(parse_handlebars_path(&format!("  {text} ")), Some(r), "text {:?}", text);
    }

    #[test]
    fn a_displayed_reference_resolves_what_its_path_leads_to(
        root in arb_root_name(),
        path in prop::collection::vec(arb_segment(), 0..4),
        leaf in arb_json(),
    ) {
        let r = Reference { root: format!("${root}"), path: path.clone() };
        let ctx = ctx_with(&r.root, nest(&path, leaf.clone()));
        let parsed = parse_bare_whole(&r.to_string()).unwrap();
        prop_assert_eq!(parsed.resolve(&ctx), Some(&leaf));
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions
// ---------------------------------------------------------------------------------------------

fn eval(source: &str, ctx: &Map<String, Value>) -> Value {
    Expr::compile(source).unwrap().eval(ctx).unwrap()
}

fn pair_ctx(a: &Value, b: &Value) -> Map<String, Value> {
    let mut ctx = Map::new();
    ctx.insert("$a".into(), a.clone());
    ctx.insert("$b".into(), b.clone());
    ctx
}

/// Strings that are sometimes numbers, sometimes booleans, sometimes neither.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,8}",
        any::<i64>().prop_map(|n| n.to_string()),
        (-5i64..5).prop_map(|n| n.to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just(" 3 ".to_string()),
        Just("1.0".to_string()),
    ]
}

/// Two values of the same type: ints, strings or bools, often equal.
fn arb_same_type_pair() -> impl Strategy<Value = (Value, Value)> {
    prop_oneof![
        (-3i64..3, -3i64..3).prop_map(|(a, b)| (json!(a), json!(b))),
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| (json!(a), json!(b))),
        any::<i64>().prop_map(|a| (json!(a), json!(a))),
        (arb_text(), arb_text()).prop_map(|(a, b)| (json!(a), json!(b))),
        arb_text().prop_map(|a| (json!(a.clone()), json!(a))),
        (any::<bool>(), any::<bool>()).prop_map(|(a, b)| (json!(a), json!(b))),
    ]
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..3).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        arb_text().prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
    ]
}

/// Rune's `==` across types: a string equals a number when it parses to that number, and a
/// boolean when it is `true`/`false`; otherwise values of different types are unequal.
fn rune_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        (Value::String(s), Value::Bool(x)) | (Value::Bool(x), Value::String(s)) => {
            *s == x.to_string()
        }
        _ => a == b,
    }
}

proptest! {
    #[test]
    fn equality_of_same_typed_values_agrees_with_json_equality((a, b) in arb_same_type_pair()) {
        let ctx = pair_ctx(&a, &b);
        prop_assert_eq!(eval("$a == $b", &ctx), json!(a == b), "a={} b={}", a, b);
        prop_assert_eq!(eval("$a != $b", &ctx), json!(a != b), "a={} b={}", a, b);
    }

    #[test]
    fn equality_across_types_follows_runes_coercions(a in arb_scalar(), b in arb_scalar()) {
        let ctx = pair_ctx(&a, &b);
        let expected = rune_equal(&a, &b);
        prop_assert_eq!(eval("$a == $b", &ctx), json!(expected), "a={} b={}", a, b);
        prop_assert_eq!(eval("$b == $a", &ctx), json!(expected), "a={} b={}", a, b);
        prop_assert_eq!(eval("$a != $b", &ctx), json!(!expected), "a={} b={}", a, b);
    }

    #[test]
    fn numeric_strings_order_against_numbers_numerically(n in -1000i64..1000, m in -1000i64..1000) {
        let ctx = pair_ctx(&json!(n.to_string()), &json!(m));
        prop_assert_eq!(eval("$a > $b", &ctx), json!(n > m));
        prop_assert_eq!(eval("$a <= $b", &ctx), json!(n <= m));
        prop_assert_eq!(eval("$b < $a", &ctx), json!(m < n));
    }

    #[test]
    fn ordering_a_non_numeric_string_against_a_number_is_an_error(s in "[a-z]{1,8}", n in any::<i64>()) {
        prop_assume!(s.parse::<f64>().is_err());
        let ctx = pair_ctx(&json!(s), &json!(n));
        let err = Expr::compile("$a > $b").unwrap().eval(&ctx).unwrap_err();
        prop_assert!(err.to_string().contains("as a number"), "{}", err);
    }

    #[test]
    fn a_string_literal_compares_as_typed_data(s in ".{0,12}") {
        // The value is bound, never spliced into the source, so quotes in it are harmless.
        let ctx = pair_ctx(&json!(s.clone()), &Value::Null);
        let literal = format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        prop_assert_eq!(eval(&format!("$a == {literal}"), &ctx), json!(true));
        prop_assert_eq!(eval(&format!("$a == {literal} + 'x'"), &ctx), json!(false));
    }

    #[test]
    fn compiling_arbitrary_text_never_panics(source in "\\PC{0,64}") {
        let _ = Expr::compile(&source);
    }

    #[test]
    fn compiling_and_evaluating_token_soup_never_panics(
        tokens in prop::collection::vec(prop_oneof![
            Just("$a"), Just("$b.x"), Just("$[c d]"), Just("$a[0]"), Just("$"), Just("=="), Just("!="),
            Just("==="), Just(">"), Just("<="), Just("and"), Just("or"), Just("not"), Just("contains"),
            Just("("), Just(")"), Just("["), Just("]"), Just("{{"), Just("}}"), Just("'s'"), Just("\""),
            Just("'"), Just("\\"), Just("1"), Just("2.5"), Just("-"), Just("+"), Just("*"), Just("/"),
            Just("%"), Just("null"), Just("true"), Just("."), Just(","), Just("__r0"), Just("x"),
            Just("="), Just(";"), Just("#{"), Just("}"), Just("fn"), Just("é"),
        ], 0..16)
    ) {
        let source = tokens.join(" ");
        let mut ctx = pair_ctx(&json!([1, "two", {"x": 3}]), &json!({"x": "y"}));
        ctx.insert("$c d".into(), json!(0));
        if let Ok(expr) = Expr::compile(&source) {
            let _ = expr.eval(&ctx);
        }
    }
}
