//! End to end in the embedded runtime: an http node whose credentials reference the vault
//! sends the secret to the server, and the secret appears nowhere else — not in the status
//! events (their `parameters` included), the completion or the stored context. A missing
//! credential or vault fails the node with an error that names the node and the id.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use baton_core::CompiledWorkflow;
use baton_core::message::{Completion, ExecutionStatus};
use baton_engine::CredentialScope;
use baton_engine::ports::{CredentialVault, ExecutionStore};
use baton_memory::{EmbeddedRuntime, Event};
use baton_vault::{MemoryVault, VaultKey};
use serde_json::{Value, json};

const SECRET: &str = "tok-9f8e7d6c5b4a-never-log-me";

/// A server that records the `Authorization` header of every request it receives.
async fn recording_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/whoami",
        get(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                record.lock().unwrap().push(auth);
                axum::Json(json!({"user": "alice"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/whoami"), seen)
}

fn workflow(url: &str, credentials: Value) -> Arc<CompiledWorkflow> {
    let doc = json!({
        "name": "vault secrecy",
        "nodes": [
            {"id": "call", "name": "Call", "type": "http",
             "parameters": {"method": "GET", "url": url}, "credentials": credentials},
            {"id": "after", "name": "After", "type": "log",
             "parameters": {"message": "got {{ $Call.body.user }}"}}
        ],
        "edges": [{"id": "e1", "src": "call", "dst": "after"}]
    });
    Arc::new(CompiledWorkflow::compile(&doc, &baton_nodes::registry()).unwrap())
}

/// Runs one execution and returns its completion, every event seen and its stored context.
async fn run(
    runtime: &EmbeddedRuntime,
    wf: Arc<CompiledWorkflow>,
    execution_id: &str,
) -> (Completion, Vec<String>, String) {
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
    (completion, seen, serde_json::to_string(&context).unwrap())
}

#[tokio::test]
async fn a_vault_credential_reaches_the_server_and_nowhere_else() {
    let (url, seen) = recording_server().await;
    let vault = Arc::new(MemoryVault::new(VaultKey::generate()));
    let data = json!({"token": SECRET}).as_object().cloned().unwrap();
    let meta = vault
        .put("api", "token", &data, &CredentialScope::any())
        .await
        .unwrap();
    let runtime =
        EmbeddedRuntime::start_with_vault(baton_nodes::registry(), 8, Some(vault.clone()));
    let wf = workflow(&url, json!({"$credential": meta.credential_id}));

    let (completion, events, context) = run(&runtime, wf, "exec-vault-ok").await;

    assert_eq!(
        completion.status,
        ExecutionStatus::Completed,
        "{completion:?}"
    );
    assert_eq!(*seen.lock().unwrap(), vec![format!("Bearer {SECRET}")]);
    assert!(
        events.iter().any(|e| e.contains("\"parameters\"")),
        "status events with parameters were observed: {events:?}"
    );
    for event in &events {
        assert!(!event.contains(SECRET), "secret in an event: {event}");
    }
    let completion_json = serde_json::to_string(&completion).unwrap();
    assert!(!completion_json.contains(SECRET), "{completion_json}");
    assert!(context.contains("alice"), "the node ran: {context}");
    assert!(
        !context.contains(SECRET),
        "secret in the context: {context}"
    );
}

#[tokio::test]
async fn inline_credentials_keep_working_without_a_vault() {
    let (url, seen) = recording_server().await;
    let runtime = EmbeddedRuntime::start(baton_nodes::registry(), 8);
    let wf = workflow(
        &url,
        json!({"type": "token", "values": {"token": "inline-token"}}),
    );
    let (completion, _, _) = run(&runtime, wf, "exec-inline").await;
    assert_eq!(
        completion.status,
        ExecutionStatus::Completed,
        "{completion:?}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["Bearer inline-token".to_string()]
    );
}

#[tokio::test]
async fn an_unknown_credential_fails_the_node_naming_the_node_and_the_id() {
    let (url, seen) = recording_server().await;
    let vault: Arc<dyn CredentialVault> = Arc::new(MemoryVault::new(VaultKey::generate()));
    let runtime = EmbeddedRuntime::start_with_vault(baton_nodes::registry(), 8, Some(vault));
    let wf = workflow(&url, json!({"$credential": "cred_missing"}));
    let (completion, _, _) = run(&runtime, wf, "exec-unknown").await;
    assert_eq!(completion.status, ExecutionStatus::Halted);
    let reason = completion.failure_reason.unwrap_or_default();
    assert!(
        reason.contains("`Call`")
            && reason.contains("cred_missing")
            && reason.contains("not in the vault"),
        "{reason}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request without the credential"
    );
}

#[tokio::test]
async fn a_credential_reference_without_a_vault_fails_with_a_clear_error() {
    let (url, seen) = recording_server().await;
    let runtime = EmbeddedRuntime::start(baton_nodes::registry(), 8);
    let wf = workflow(&url, json!({"$credential": "cred_1"}));
    let (completion, _, _) = run(&runtime, wf, "exec-no-vault").await;
    assert_eq!(completion.status, ExecutionStatus::Halted);
    let reason = completion.failure_reason.unwrap_or_default();
    assert!(
        reason.contains("`Call`")
            && reason.contains("cred_1")
            && reason.contains("BATON_CREDENTIALS_KEY"),
        "{reason}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_credential_that_cannot_be_decrypted_fails_the_node_once_without_retries() {
    let (url, seen) = recording_server().await;
    let vault = Arc::new(MemoryVault::new(VaultKey::generate()));
    let meta = vault
        .put(
            "api",
            "bearer",
            json!({"token": SECRET}).as_object().unwrap(),
            &CredentialScope::any(),
        )
        .await
        .unwrap();
    // Stored with another key, or altered at rest: it can never open.
    let sealed = vault.sealed(&meta.credential_id).unwrap();
    let mut altered: Vec<char> = sealed.chars().collect();
    let i = altered.len() - 5;
    altered[i] = if altered[i] == 'A' { 'B' } else { 'A' };
    assert!(vault.replace_sealed(&meta.credential_id, altered.into_iter().collect()));
    let runtime = EmbeddedRuntime::start_with_vault(baton_nodes::registry(), 8, Some(vault));
    let wf = Arc::new(
        CompiledWorkflow::compile(
            &json!({
                "name": "undecryptable",
                "nodes": [{"id": "call", "name": "Call", "type": "http",
                    "parameters": {"method": "GET", "url": url},
                    "credentials": {"$credential": meta.credential_id},
                    "retry": {"max_attempts": 3, "initial_delay_ms": 10, "max_delay_ms": 20}}],
                "edges": []
            }),
            &baton_nodes::registry(),
        )
        .unwrap(),
    );
    let (completion, events, _) = run(&runtime, wf, "exec-undecryptable").await;
    assert_eq!(completion.status, ExecutionStatus::Halted);
    let reason = completion.failure_reason.unwrap_or_default();
    assert!(
        reason.contains("`Call`") && reason.contains("cannot be decrypted"),
        "{reason}"
    );
    let retries = events.iter().filter(|e| e.contains("\"retry\"")).count();
    assert_eq!(
        retries, 0,
        "no retry of an unreadable credential: {events:#?}"
    );
    assert!(
        events.iter().any(|e| e.contains("CREDENTIAL_UNREADABLE")),
        "{events:#?}"
    );
    assert!(seen.lock().unwrap().is_empty(), "no request without it");
}
