//! The registry: unique names, suggestions for typos, redaction, the generated reference.

use super::*;

fn no_own() -> BTreeSet<String> {
    BTreeSet::new()
}

#[test]
fn every_name_is_unique_prefixed_upper_case_and_read_by_some_role() {
    let mut seen = BTreeSet::new();
    for v in VARIABLES {
        assert!(seen.insert(v.name), "{} is registered twice", v.name);
        assert!(v.name.starts_with(PREFIX), "{}", v.name);
        assert_eq!(v.name, v.name.to_ascii_uppercase(), "{}", v.name);
        assert!(!v.roles.is_empty(), "{} is read by no role", v.name);
        assert!(!v.doc.is_empty(), "{} has no doc", v.name);
    }
}

#[test]
fn a_known_variable_of_any_role_is_not_reported() {
    let names = [
        "BATON_API_TOKENS",
        "BATON_MASTER_URL",
        "BATON_HTTP_PORT",
        "BATON_TEST_AMQP_URL",
    ];
    assert!(unknown_variables(names, &no_own()).is_empty());
}

#[test]
fn a_misspelled_variable_is_reported_with_the_closest_known_name() {
    let unknown = unknown_variables(["BATON_WROKER_CONCURRENCY", "PATH"], &no_own());
    assert_eq!(
        unknown,
        vec![Unknown {
            name: "BATON_WROKER_CONCURRENCY".into(),
            closest: Some("BATON_CONCURRENCY".into()),
        }]
    );
    let unknown = unknown_variables(["BATON_MASTR_URL", "BATON_PREFECH"], &no_own());
    let closest: Vec<_> = unknown.iter().map(|u| u.closest.as_deref()).collect();
    assert_eq!(closest, [Some("BATON_MASTER_URL"), Some("BATON_PREFETCH")]);
}

#[test]
fn a_name_like_nothing_known_has_no_suggestion() {
    let unknown = unknown_variables(["BATON_ZZZZZZZZZZZZ"], &no_own());
    assert_eq!(unknown[0].closest, None);
    assert_eq!(unknown[0].to_string(), "`BATON_ZZZZZZZZZZZZ`");
}

#[test]
fn a_field_of_the_loading_struct_is_known_before_its_registry_entry_exists() {
    let own: BTreeSet<String> = ["future_setting".to_string()].into();
    assert!(unknown_variables(["BATON_FUTURE_SETTING"], &own).is_empty());
    assert_eq!(
        unknown_variables(["BATON_FUTURE_SETTING"], &no_own()).len(),
        1
    );
}

#[test]
fn file_keys_are_checked_by_their_lower_case_names() {
    let unknown = unknown_keys(["prefetch", "master_listen", "prefech"], &no_own());
    assert_eq!(
        unknown,
        vec![Unknown {
            name: "prefech".into(),
            closest: Some("prefetch".into()),
        }]
    );
}

#[test]
fn secrets_and_passwords_in_urls_are_redacted() {
    let token = find("BATON_API_TOKENS");
    assert_eq!(display_value(token, "s3cret"), "<redacted>");
    assert_eq!(display_value(token, ""), "");
    let amqp = find("BATON_AMQP_URL");
    assert_eq!(
        display_value(amqp, "amqp://baton:pw@rabbit:5672/%2f"),
        "amqp://baton:<redacted>@rabbit:5672/%2f"
    );
    assert_eq!(
        redact_url("redis://:p@ss@redis:6379/0"),
        "redis://:<redacted>@redis:6379/0"
    );
    assert_eq!(redact_url("redis://redis:6379/"), "redis://redis:6379/");
    assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
    assert_eq!(display_value(find("BATON_HTTP_PORT"), "9090"), "9090");
}

#[test]
fn keys_are_the_lower_case_names_without_the_prefix() {
    assert_eq!(
        find("BATON_HTTP_PORT").map(Variable::key).as_deref(),
        Some("http_port")
    );
    assert_eq!(find_key("amqp_url").map(|v| v.name), Some("BATON_AMQP_URL"));
}

#[test]
fn coverage_names_a_field_without_entry_and_a_drifted_default() {
    let problems = coverage_problems(
        Role::Worker,
        &serde_json::json!({"http_port": 9090, "prefetch": 7, "future_setting": 16}),
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("`BATON_PREFETCH`") && problems[0].contains("`7`"));
    assert!(problems[1].contains("field `future_setting` has no registry entry"));
    assert!(
        coverage_problems(Role::Master, &serde_json::json!({"http_port": 9090}))[0]
            .contains("does not list it")
    );
}

/// `docs/config.md` is generated; this keeps it from drifting from the registry.
#[test]
fn docs_config_md_matches_the_registry() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = markdown();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "one file is a prefix of the other".to_string(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "{} is out of date ({first}): run `cargo run -q -p baton -- docs config > docs/config.md`",
            path.display()
        );
    }
    for v in VARIABLES {
        assert!(
            generated.contains(&format!("| `{}` |", v.name)),
            "{}",
            v.name
        );
    }
}
