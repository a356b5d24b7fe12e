//! Unit tests of the `smtp` node's parameter parsing and message building.

use super::*;

#[test]
fn addresses_name_the_parameter() {
    let err =
        parse_email(&json!({"from": "a@x.io", "to": ["b@x.io", "x"], "subject": 1})).unwrap_err();
    assert_eq!(err.message, r#"to[1]: "x" is not an email address"#);
    assert!(!err.retryable);
    let err = parse_email(&json!({"from": "nope", "to": "b@x.io", "subject": "s"})).unwrap_err();
    assert_eq!(err.message, r#"from: "nope" is not an email address"#);
    let ok =
        parse_email(&json!({"from": "Ops <a@x.io>", "to": "b@x.io, c@x.io", "subject": {"k": 1}}))
            .unwrap();
    assert_eq!(ok.to.len(), 2);
    assert_eq!(ok.subject, r#"{"k":1}"#);
    assert!(parse_email(&json!({"from": "a@x.io", "to": [], "subject": "s"})).is_err());
    assert!(parse_email(&json!({"from": "a@x.io", "to": "b@x.io"})).is_err());
}

#[test]
fn credentials_are_validated_without_echoing_secrets() {
    let creds = |v: Value| v.as_object().cloned().unwrap();
    let err = parse_server(None).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials);
    let err = parse_server(Some(&creds(json!({"port": 25})))).unwrap_err();
    assert!(err.message.contains("`host`"), "{}", err.message);
    let err = parse_server(Some(&creds(json!({"host": "h", "password": "s3cret!"})))).unwrap_err();
    assert!(!err.message.contains("s3cret!"));
    let s = parse_server(Some(&creds(json!({"host": "h", "port": "2525"})))).unwrap();
    assert_eq!((s.port, s.login.is_none()), (2525, true));
    let s = parse_server(Some(&creds(
        json!({"host": "h", "username": "u", "password": "p"}),
    )))
    .unwrap();
    assert_eq!(s.port, DEFAULT_PORT);
    assert!(parse_server(Some(&creds(json!({"host": "h", "port": 70000})))).is_err());
}

#[test]
fn message_ids_are_stable_and_safe() {
    let from: Mailbox = "a@example.com".parse().unwrap();
    assert_eq!(
        message_id("exec-1:node_1:1", &from),
        "<baton.exec-1=3Anode_1=3A1@example.com>"
    );
}
