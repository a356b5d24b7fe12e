//! Unit tests of template resolution: borrowed and owned parameters, raw values, interpolation
//! without HTML escaping, bare references, and the errors that name a missing one.

use super::*;
use serde_json::json;

fn render(template: Value, ctx: Value) -> Result<Value, TemplateError> {
    let mut set = TemplateSet::new();
    let strict: HashSet<String> = ["$input".to_string(), "$Fetch".to_string()].into();
    let t = set.compile(&template, &strict)?;
    t.resolve(&set, ctx.as_object().unwrap(), "")
}

#[test]
fn literal_parameters_resolve_borrowed_and_templated_ones_owned() {
    let mut set = TemplateSet::new();
    let strict: HashSet<String> = ["$input".to_string()].into();
    let ctx = json!({"$input": {"n": 2}});
    let ctx = ctx.as_object().unwrap();
    let literal = set.compile(&json!({"level": "debug"}), &strict).unwrap();
    let borrowed = literal.resolve_cow(&set, ctx, "").unwrap();
    assert!(matches!(borrowed, Cow::Borrowed(_)));
    assert_eq!(*borrowed, json!({"level": "debug"}));
    let templated = set
        .compile(&json!({"n": "{{ $input.n }}"}), &strict)
        .unwrap();
    let owned = templated.resolve_cow(&set, ctx, "").unwrap();
    assert!(matches!(owned, Cow::Owned(_)));
    assert_eq!(*owned, json!({"n": 2}));
}

#[test]
fn handlebars_interpolates_without_html_escaping() {
    let v = render(
        json!("https://api/x/{{$input.user.id}}?q={{$input.q}}"),
        json!({"$input": {"user": {"id": 7}, "q": "<a&b>"}}),
    );
    assert_eq!(v.unwrap(), json!("https://api/x/7?q=<a&b>"));
}

#[test]
fn exactly_one_braced_path_yields_the_raw_value() {
    let v = render(
        json!("{{ $Fetch.body.users }}"),
        json!({"$Fetch": {"body": {"users": [1, 2]}}}),
    );
    assert_eq!(v.unwrap(), json!([1, 2]));
}

#[test]
fn bare_whole_reference_yields_the_raw_value() {
    let v = render(
        json!({"n": "$Fetch.body.users[1]"}),
        json!({"$Fetch": {"body": {"users": [1, 2]}}}),
    );
    assert_eq!(v.unwrap(), json!({"n": 2}));
}

#[test]
fn bare_reference_inside_text_is_interpolated_when_the_root_is_known() {
    let v = render(json!("/users/$item.id/x"), json!({"$item": {"id": 42}}));
    assert_eq!(v.unwrap(), json!("/users/42/x"));
}

#[test]
fn dollar_text_that_is_not_a_context_key_stays_text() {
    assert_eq!(render(json!("$5 off"), json!({})).unwrap(), json!("$5 off"));
    assert_eq!(render(json!("$100"), json!({})).unwrap(), json!("$100"));
}

#[test]
fn missing_reference_is_an_error_naming_it_and_the_field() {
    let err = render(json!({"url": "{{$input.nope}}"}), json!({"$input": {}})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing reference `{{$input.nope}}` in parameter `url`"
    );
    let err = render(json!({"a": {"b": "x $Fetch.status"}}), json!({})).unwrap_err();
    assert!(
        err.to_string().contains("`$Fetch.status`") && err.to_string().contains("`a.b`"),
        "{err}"
    );
    let err = render(json!("pre {{$input.gone}} post"), json!({"$input": {}})).unwrap_err();
    assert!(
        matches!(err, TemplateError::MissingReference { .. }),
        "{err}"
    );
}

#[test]
fn bare_references_outside_braces_are_interpolated_in_handlebars_text() {
    let ctx = json!({"$input": {"base": "http://h"}, "$item": {"id": 7}});
    assert_eq!(
        render(json!("{{$input.base}}/users/$item.id"), ctx.clone()).unwrap(),
        json!("http://h/users/7")
    );
    assert_eq!(
        render(json!("$5 off {{$input.base}}"), ctx.clone()).unwrap(),
        json!("$5 off http://h")
    );
    // Inside a block the text is the block's: left to handlebars, as written.
    assert_eq!(
        render(json!("{{#if $input.base}}id $item.id{{/if}}"), ctx.clone()).unwrap(),
        json!("id $item.id")
    );
    let err = render(json!("{{$input.base}}/$Fetch.status"), ctx).unwrap_err();
    assert!(err.to_string().contains("`$Fetch.status`"), "{err}");
}

#[test]
fn names_with_spaces_are_reachable() {
    let ctx = json!({"$Branch A": {"v": "ok"}});
    assert_eq!(
        render(json!("{{[$Branch A].v}}"), ctx.clone()).unwrap(),
        json!("ok")
    );
    assert_eq!(
        render(json!("got {{[$Branch A].v}}"), ctx.clone()).unwrap(),
        json!("got ok")
    );
    assert_eq!(
        render(json!("$[Branch A].v"), ctx.clone()).unwrap(),
        json!("ok")
    );
    assert_eq!(
        render(json!("got {{$[Branch A].v}}!"), ctx).unwrap(),
        json!("got ok!")
    );
}
