//! Credential scoping and redaction, end to end in the embedded runtime with real local HTTP
//! servers: a vault credential is sent only to its `hosts` (the first request and every
//! redirect) and only by its `workflows`; any other use fails the node with `CREDENTIAL_SCOPE`
//! before anything is sent. An endpoint that echoes the request back cannot put the secret into
//! the status events, the stored context or the completion: the engine redacts it.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::get;
use baton_core::CompiledWorkflow;
use baton_core::message::{Completion, ExecutionStatus};
use baton_engine::CredentialScope;
use baton_engine::ports::{CredentialVault, ExecutionStore};
use baton_memory::{EmbeddedRuntime, Event};
use baton_vault::{MemoryVault, VaultKey};
use serde_json::{Map, Value, json};

const SECRET: &str = "tok-5e3d1c9b7a-reflect-me-not";

/// A server with `/echo` (answers every request header back as JSON, and the secret as plain
/// text in a second field) and `/hop?to=<url>` (a 302 to `to`); it records the paths it served.
async fn echo_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (s1, s2) = (seen.clone(), seen.clone());
    let app = Router::new()
        .route(
            "/echo",
            get(move |headers: HeaderMap| {
                let seen = s1.clone();
                async move {
                    seen.lock().unwrap().push("/echo".into());
                    let all: Map<String, Value> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(String::from_utf8_lossy(v.as_bytes()))))
                        .collect();
                    let auth = all
                        .get("authorization")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    axum::Json(json!({"headers": all, "text": format!("you sent {auth}")}))
                }
            }),
        )
        .route(
            "/hop",
            get(
                move |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| {
                    let seen = s2.clone();
                    async move {
                        seen.lock().unwrap().push("/hop".into());
                        Redirect::temporary(q.get("to").map(String::as_str).unwrap_or("/"))
                    }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

fn workflow(
    name: &str,
    node_type: &str,
    parameters: Value,
    credential: &str,
) -> Arc<CompiledWorkflow> {
    let doc = json!({
        "name": name,
        "nodes": [
            {"id": "call", "name": "Call", "type": node_type, "parameters": parameters,
             "credentials": {"$credential": credential}},
            {"id": "after", "name": "After", "type": "log",
             "parameters": {"message": "{{ $Call.body.text }}"}}
        ],
        "edges": [{"id": "e1", "src": "call", "dst": "after"}]
    });
    Arc::new(CompiledWorkflow::compile(&doc, &baton_nodes::registry()).unwrap())
}

struct Run {
    completion: Completion,
    events: Vec<String>,
    context: String,
}

impl Run {
    fn everything(&self) -> String {
        format!(
            "{}\n{}\n{}",
            serde_json::to_string(&self.completion).unwrap(),
            self.events.join("\n"),
            self.context
        )
    }

    fn failed_with_scope(&self) -> String {
        assert_eq!(self.completion.status, ExecutionStatus::Halted);
        assert!(
            self.events.iter().any(|e| e.contains("CREDENTIAL_SCOPE")),
            "{:#?}",
            self.events
        );
        self.completion.failure_reason.clone().unwrap_or_default()
    }
}

async fn setup(scope: CredentialScope, data: Value, type_name: &str) -> (EmbeddedRuntime, String) {
    let vault = Arc::new(MemoryVault::new(VaultKey::generate()));
    let meta = vault
        .put("api", type_name, data.as_object().unwrap(), &scope)
        .await
        .unwrap();
    let runtime =
        EmbeddedRuntime::start_with_vault(baton_nodes::registry(), 8, Some(vault.clone()));
    (runtime, meta.credential_id)
}

async fn run(runtime: &EmbeddedRuntime, wf: Arc<CompiledWorkflow>, execution_id: &str) -> Run {
    let mut events = runtime.events().subscribe();
    let done = runtime.submit(wf, execution_id, json!({})).await.unwrap();
    let completion = done.await.unwrap();
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            Event::Status(s) => seen.push(serde_json::to_string(&s).unwrap()),
            Event::Completion(c) => seen.push(serde_json::to_string(&c).unwrap()),
        }
    }
    let context = runtime
        .store()
        .final_context(execution_id)
        .await
        .unwrap()
        .context;
    Run {
        completion,
        events: seen,
        context: serde_json::to_string(&context).unwrap(),
    }
}

#[tokio::test]
async fn a_secret_echoed_back_by_the_server_is_redacted_from_statuses_context_and_completion() {
    let (port, seen) = echo_server().await;
    let (runtime, id) = setup(
        CredentialScope::hosts(["127.0.0.1"]),
        json!({"token": SECRET}),
        "token",
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/echo");
    let wf = workflow("reflect", "http", json!({"url": url}), &id);

    let run = run(&runtime, wf, "exec-reflect").await;

    assert_eq!(
        run.completion.status,
        ExecutionStatus::Completed,
        "{:?}",
        run.completion
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["/echo".to_string()],
        "the request was sent"
    );
    assert!(
        run.context.contains("Bearer [REDACTED]")
            && run.context.contains("you sent Bearer [REDACTED]"),
        "the echo is stored, redacted: {}",
        run.context
    );
    assert!(
        run.events.iter().any(|e| e.contains("[REDACTED]")),
        "the success status shows the redacted output: {:#?}",
        run.events
    );
    assert!(!run.everything().contains(SECRET), "{}", run.everything());
    assert!(
        !run.everything().contains("tok-5e3d"),
        "no part of it either"
    );
}

#[tokio::test]
async fn a_host_outside_the_credentials_hosts_fails_with_credential_scope_and_nothing_is_sent() {
    let (port, seen) = echo_server().await;
    let (runtime, id) = setup(
        CredentialScope::hosts(["api.example.com", "*.example.org"]),
        json!({"token": SECRET}),
        "token",
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/echo");
    let run = run(
        &runtime,
        workflow("wrong-host", "http", json!({"url": url}), &id),
        "exec-host",
    )
    .await;
    let reason = run.failed_with_scope();
    assert!(
        reason.contains(&id) && reason.contains("`127.0.0.1`"),
        "names the credential and the host: {reason}"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing sent");
    assert!(!run.everything().contains(SECRET));
}

#[tokio::test]
async fn a_credential_does_not_follow_a_redirect_to_another_host() {
    let (port, seen) = echo_server().await;
    let (runtime, id) = setup(
        CredentialScope::hosts(["127.0.0.1"]),
        json!({"type": "header", "field": "X-Api-Key", "value": SECRET}),
        "header",
    )
    .await;
    // Same server, another host name: `localhost` is not in the credential's hosts.
    let target = format!("http://localhost:{port}/echo");
    let url = format!("http://127.0.0.1:{port}/hop?to={}", urlencode(&target));
    let run = run(
        &runtime,
        workflow("redirect", "http", json!({"url": url}), &id),
        "exec-redirect",
    )
    .await;
    let reason = run.failed_with_scope();
    assert!(
        reason.contains("redirect") && reason.contains("`localhost`"),
        "{reason}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["/hop".to_string()],
        "the echo was never reached"
    );

    // A redirect within the hosts is followed.
    let same = format!("http://127.0.0.1:{port}/echo");
    let url = format!("http://127.0.0.1:{port}/hop?to={}", urlencode(&same));
    let run = self::run(
        &runtime,
        workflow("redirect-ok", "http", json!({"url": url}), &id),
        "exec-redirect-ok",
    )
    .await;
    assert_eq!(
        run.completion.status,
        ExecutionStatus::Completed,
        "{:?}",
        run.completion
    );
    assert!(!run.everything().contains(SECRET), "{}", run.everything());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_credential_without_hosts_is_sent_nowhere() {
    let (port, seen) = echo_server().await;
    let (runtime, id) = setup(
        CredentialScope::default(),
        json!({"token": SECRET}),
        "token",
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/echo");
    let run = run(
        &runtime,
        workflow("no-hosts", "http", json!({"url": url}), &id),
        "exec-nohosts",
    )
    .await;
    let reason = run.failed_with_scope();
    assert!(
        reason.contains("no `hosts`") && reason.contains("[\"*\"]"),
        "{reason}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_workflow_outside_the_credentials_workflows_fails_before_the_secret_is_revealed() {
    let (port, seen) = echo_server().await;
    let scope = CredentialScope {
        hosts: vec!["*".into()],
        workflows: Some(vec!["billing".into()]),
    };
    let (runtime, id) = setup(scope, json!({"token": SECRET}), "token").await;
    let url = format!("http://127.0.0.1:{port}/echo");
    let run = self::run(
        &runtime,
        workflow("reports", "http", json!({"url": &url}), &id),
        "exec-wf-no",
    )
    .await;
    let reason = run.failed_with_scope();
    assert!(
        reason.contains(&id) && reason.contains("`reports`"),
        "{reason}"
    );
    assert!(seen.lock().unwrap().is_empty());

    let run = self::run(
        &runtime,
        workflow("billing", "http", json!({"url": &url}), &id),
        "exec-wf-ok",
    )
    .await;
    assert_eq!(
        run.completion.status,
        ExecutionStatus::Completed,
        "{:?}",
        run.completion
    );
}

#[tokio::test]
async fn an_smtp_credential_is_not_sent_to_a_server_outside_its_hosts() {
    let (runtime, id) = setup(
        CredentialScope::hosts(["mail.example.com"]),
        json!({"host": "127.0.0.1", "port": 2525, "username": "mailer", "password": SECRET}),
        "smtp",
    )
    .await;
    let params =
        json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "body": "b"});
    let run = run(&runtime, workflow("mail", "smtp", params, &id), "exec-smtp").await;
    let reason = run.failed_with_scope();
    assert!(
        reason.contains(&id) && reason.contains("`127.0.0.1`"),
        "{reason}"
    );
    assert!(!run.everything().contains(SECRET));
}
