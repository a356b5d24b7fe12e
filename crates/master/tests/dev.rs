//! `baton dev` mode: the embedded backend (no RabbitMQ, no Redis), and its state file.

mod common;

use std::time::Duration;

use common::{approval, call_at, hello, read_sse, until};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Dev {
    url: String,
    shutdown: CancellationToken,
    saver: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<Result<(), baton_master::MasterError>>,
}

async fn start_dev(state: Option<&std::path::Path>) -> Dev {
    start_dev_with_key(state, None).await
}

/// `baton dev` with `BATON_CREDENTIALS_KEY` = `key` (a key generated per run when `None`).
async fn start_dev_with_key(state: Option<&std::path::Path>, key: Option<&str>) -> Dev {
    let embedded = std::sync::Arc::new(
        baton_master::embedded(8, state, key)
            .await
            .expect("embedded master"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let saver = {
        let e = embedded.clone();
        let s = shutdown.clone();
        tokio::spawn(async move { e.keep_saved(s).await })
    };
    let server = tokio::spawn(baton_master::serve(
        embedded.master.clone(),
        listener,
        shutdown.clone(),
    ));
    Dev {
        url,
        shutdown,
        saver,
        server,
    }
}

impl Dev {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call_at(
            &reqwest::Client::new(),
            &format!("{}{path}", self.url),
            method,
            body,
            None,
        )
        .await
    }

    async fn finished(&self, id: &str) -> Value {
        until(|| async {
            let (s, v) = self.call("GET", &format!("/executions/{id}"), None).await;
            (s == 200 && v["status"] != "running").then_some(v)
        })
        .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        let _ = self.saver.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dev_mode_runs_executions_in_process_without_auth_or_services() {
    let dev = start_dev(None).await;
    let (status, _) = dev.call("GET", "/readyz", None).await;
    assert_eq!(status, 200);
    let (status, _) = dev.call("POST", "/workflows", Some(hello("hello"))).await;
    assert_eq!(status, 201, "auth is off in dev mode");
    let (status, started) = dev
        .call(
            "POST",
            "/workflows/hello/executions",
            Some(json!({"input": {"name": "Dev"}})),
        )
        .await;
    assert_eq!(status, 202);
    let id = started["execution_id"].as_str().unwrap().to_string();
    let view = dev.finished(&id).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["nodes"]["greet"]["output"]["message"], "Hello Dev");

    // Signal, SSE and cancel work on the embedded runtime too.
    dev.call("POST", "/workflows", Some(approval("approval")))
        .await;
    let (_, started) = dev
        .call("POST", "/workflows/approval/executions", None)
        .await;
    let waiting = started["execution_id"].as_str().unwrap().to_string();
    let resp = reqwest::get(format!("{}/executions/{waiting}/events", dev.url))
        .await
        .unwrap();
    until(|| async {
        let (_, v) = dev
            .call("GET", &format!("/executions/{waiting}"), None)
            .await;
        (v["nodes"]["w"]["status"] == "waiting").then_some(())
    })
    .await;
    let (status, _) = dev
        .call(
            "POST",
            &format!("/executions/{waiting}/signals/approve"),
            Some(json!({"data": {"by": "dev"}})),
        )
        .await;
    assert_eq!(status, 202);
    let events = read_sse(resp).await;
    assert!(
        events
            .iter()
            .any(|(e, d)| e == "status" && d["node_id"] == "ok"),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap().1["status"], "completed");

    let (_, started) = dev
        .call("POST", "/workflows/approval/executions", None)
        .await;
    let halted = started["execution_id"].as_str().unwrap().to_string();
    until(|| async {
        let (_, v) = dev
            .call("GET", &format!("/executions/{halted}"), None)
            .await;
        (v["nodes"]["w"]["status"] == "waiting").then_some(())
    })
    .await;
    let (status, _) = dev
        .call("POST", &format!("/executions/{halted}/cancel"), None)
        .await;
    assert_eq!(status, 202);
    assert_eq!(dev.finished(&halted).await["status"], "halted");
    let (status, _) = dev
        .call("POST", &format!("/executions/{id}/replay?from=done"), None)
        .await;
    assert_eq!(status, 202);
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dev_mode_with_a_state_file_loses_nothing_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("baton-dev-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let dev = start_dev_with_key(Some(&state), Some(KEY)).await;
    dev.call("POST", "/workflows", Some(hello("kept"))).await;
    let mut second = hello("kept");
    second["nodes"][2]["parameters"]["message"] = json!("v2");
    dev.call("POST", "/workflows", Some(second)).await;
    let (_, started) = dev
        .call(
            "POST",
            "/workflows/kept/executions",
            Some(json!({"input": {"name": "Saved"}})),
        )
        .await;
    let id = started["execution_id"].as_str().unwrap().to_string();
    dev.finished(&id).await;
    let (status, _) = dev
        .call(
            "PUT",
            "/workflows/kept/webhook",
            Some(json!({"secret": SECRET})),
        )
        .await;
    assert_eq!(status, 200);
    dev.stop().await;
    assert!(state.exists(), "the state was saved at exit");

    let dev = start_dev_with_key(Some(&state), Some(KEY)).await;
    let (status, wf) = dev.call("GET", "/workflows/kept", None).await;
    assert_eq!(status, 200);
    assert_eq!(wf["versions"].as_array().unwrap().len(), 2, "{wf}");
    let view = dev.finished(&id).await;
    assert_eq!(view["status"], "completed");
    assert_eq!(view["nodes"]["greet"]["output"]["message"], "Hello Saved");
    assert_eq!(
        deliver(&dev, "kept", "msg_1").await,
        202,
        "the webhook and its secret survived"
    );
    dev.stop().await;
    // A corrupt state file is refused with its path, not silently replaced.
    std::fs::write(&state, "{oops").unwrap();
    let err = baton_master::embedded(1, Some(&state), None)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("state.json"), "{err}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A delivery to `/hooks/{workflow}` signed now with [`SECRET`]; returns the status.
async fn deliver(dev: &Dev, workflow: &str, id: &str) -> u16 {
    let secret = baton_master::webhook::SigningSecret::parse(SECRET).unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = format!("v1,{}", secret.sign(id, &ts, b"{}"));
    reqwest::Client::new()
        .post(format!("{}/hooks/{workflow}", dev.url))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts)
        .header("webhook-signature", signature)
        .body("{}")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_state_file_is_private_and_holds_webhook_secrets_sealed_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("baton-dev-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    // A file an older version wrote: world-readable, with a clear-text webhook secret.
    std::fs::write(
        &state,
        r#"{"records": {}, "definitions": {}, "idempotency": {}, "schedules": {},
            "hooks": {"kept": "old-clear-secret"}}"#,
    )
    .unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dev = start_dev_with_key(Some(&state), Some(KEY)).await;
    assert_eq!(
        mode(&state),
        0o600,
        "an existing state file is made private"
    );
    dev.call("POST", "/workflows", Some(hello("kept"))).await;
    assert_eq!(
        deliver(&dev, "kept", "m0").await,
        404,
        "a clear-text secret is not honoured"
    );
    let (status, _) = dev
        .call(
            "PUT",
            "/workflows/kept/webhook",
            Some(json!({"secret": SECRET})),
        )
        .await;
    assert_eq!(status, 200);
    dev.stop().await;
    assert_eq!(mode(&state), 0o600, "the saved state file is private");
    let text = std::fs::read_to_string(&state).unwrap();
    let encoded = SECRET.strip_prefix("whsec_").unwrap();
    assert!(!text.contains(encoded), "no clear secret: {text}");
    assert!(!text.contains("old-clear-secret"), "{text}");
    assert!(text.contains(r#""sealed_secret":"v1."#), "{text}");

    // Another key (here: none, so one generated for the run) cannot open it: the webhook
    // answers 503 rather than accepting unverified calls.
    let dev = start_dev(Some(&state)).await;
    assert_eq!(deliver(&dev, "kept", "m1").await, 503);
    dev.stop().await;
    let dev = start_dev_with_key(Some(&state), Some(KEY)).await;
    assert_eq!(deliver(&dev, "kept", "m1").await, 202);
    dev.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dev_mode_reveals_a_stored_credential_to_the_node_and_nowhere_else() {
    use axum::http::HeaderMap;
    // An API that answers whether it received the secret token.
    let api = axum::Router::new().route(
        "/check",
        axum::routing::get(|headers: HeaderMap| async move {
            let ok = headers.get("authorization").and_then(|v| v.to_str().ok())
                == Some("Bearer sekret-123");
            axum::Json(json!({ "authorized": ok }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}/check", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await });

    let dev = start_dev(None).await;
    let (status, cred) = dev
        .call(
            "POST",
            "/credentials",
            Some(
                json!({"name": "api", "type": "token", "data": {"token": "sekret-123"},
                        "hosts": ["127.0.0.1"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{cred}");
    let wf = json!({"id": "secured", "name": "Secured", "nodes": [
        {"id": "call", "name": "Call", "type": "http", "parameters": {"url": api_url, "method": "GET"},
         "credentials": {"$credential": cred["credential_id"]}}
    ], "edges": []});
    let (status, body) = dev.call("POST", "/workflows", Some(wf)).await;
    assert_eq!(status, 201, "{body}");
    let (_, started) = dev
        .call("POST", "/workflows/secured/executions", None)
        .await;
    let view = dev
        .finished(started["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(view["status"], "completed", "{view}");
    let text = view.to_string();
    assert!(
        text.contains(r#""authorized":true"#),
        "the node got the secret: {view}"
    );
    assert!(
        !text.contains("sekret-123"),
        "the secret is nowhere in the history: {view}"
    );
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dev_mode_sub_workflows_start_workflows_posted_to_the_master() {
    let dev = start_dev(None).await;
    let child = json!({"id": "child", "name": "Child",
        "nodes": [{"id": "twice", "name": "Twice", "type": "log",
                   "parameters": {"message": "child got {{$input.n}}"}}],
        "edges": []});
    let parent = json!({"id": "parent", "name": "Parent",
        "nodes": [{"id": "sub", "name": "Sub", "type": "workflow",
                   "parameters": {"workflow_id": "child", "input": {"n": "{{$input.n}}"}}}],
        "edges": []});
    for wf in [child, parent] {
        let (status, body) = dev.call("POST", "/workflows", Some(wf)).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, started) = dev
        .call(
            "POST",
            "/workflows/parent/executions",
            Some(json!({"input": {"n": 21}})),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["execution_id"].as_str().unwrap().to_string();
    let view = dev.finished(&id).await;
    assert_eq!(view["status"], "completed", "{view:#}");
    assert_eq!(
        view["final_context"]["$Sub"]["$Twice"]["message"], "child got 21",
        "the child ran from the master's catalog: {view:#}"
    );
    dev.stop().await;
}
