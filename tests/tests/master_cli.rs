//! Black-box tests of the CLI talking to a master (`--master URL` / `BATON_MASTER_URL`):
//! `submit`, `executions`, `watch` and `signal` against `baton dev` (the embedded master), and
//! against a real `baton master` + `baton worker` on RabbitMQ and Redis: bearer-token auth and
//! a vault credential stored through the master and revealed by the worker.

mod common;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use common::distributed::{BOUND, Cluster, free_port};
use common::{baton_bin, scratch_file, stderr, stdout, stdout_json, workspace};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `baton dev` or `baton master` process, killed when dropped.
struct MasterProc {
    url: String,
    log: PathBuf,
    child: Child,
}

impl Drop for MasterProc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "master log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// `baton` with no inherited `BATON_*` variable.
fn clean_command() -> Command {
    let mut cmd = Command::new(baton_bin());
    cmd.current_dir(workspace());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BATON_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    cmd
}

/// Waits until `url/healthz` answers 200.
async fn healthy(url: &str, child: &mut Child) -> bool {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Starts `make()` (a `baton dev` or `baton master` command) on a free port, passed to
/// `listen`, and waits until it is healthy; retries when another process took the port.
async fn start(mut make: impl FnMut(&str) -> Command) -> MasterProc {
    let mut last_log = String::new();
    for _ in 0..3 {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = scratch_file("master.log", "");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = make(&addr);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn the master");
        let url = format!("http://{addr}");
        if healthy(&url, &mut child).await {
            return MasterProc { url, log, child };
        }
        let _ = child.kill().await;
        last_log = std::fs::read_to_string(&log).unwrap_or_default();
    }
    panic!("the master did not get healthy within {BOUND:?}; its log:\n{last_log}");
}

/// Issue 14, item 6: `baton dev --state` stopped while a 20 s wait runs; after the restart
/// the run is not `running` forever: it failed with the reason, its waiting node too, and the
/// state file is private (0600).
#[tokio::test(flavor = "multi_thread")]
async fn a_run_in_flight_when_baton_dev_restarts_ends_failed_with_the_reason() {
    let state = scratch_file("dir-marker", "").with_file_name("state.json");
    let state_arg = state.to_string_lossy().into_owned();
    let dev = |addr: &str| {
        let mut cmd = clean_command();
        cmd.args(["dev", "--listen", addr, "--state", &state_arg]);
        cmd
    };
    let mut master = start(dev).await;
    let file = workflow_file(
        "pause.json",
        &json!({"name": "pause", "nodes": [
            {"id": "w", "name": "Pause", "type": "wait", "parameters": {"amount": 20, "unit": "seconds"}},
            {"id": "l", "name": "After", "type": "log", "parameters": {"message": "resumed"}}
        ], "edges": [{"id": "e1", "src": "w", "dst": "l"}]}),
    );
    let out = cli(&master.url, &["submit", &file], &[]).await;
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    wait_until_waiting(&master.url, &id, "w").await;

    // A graceful stop saves the state with the run in flight.
    let pid = master.child.id().expect("the dev process runs");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(term.success());
    tokio::time::timeout(BOUND, master.child.wait())
        .await
        .expect("baton dev stops on SIGTERM")
        .expect("exit status");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state)
            .expect("state saved")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the state file is private");
    }

    let master = start(dev).await;
    let got: Value = reqwest::get(format!("{}/executions/{id}", master.url))
        .await
        .expect("GET the execution")
        .json()
        .await
        .expect("JSON");
    assert_eq!(got["status"], "failed", "{got:#}");
    assert_eq!(
        got["failure_reason"], "interrupted by a restart of baton dev",
        "{got:#}"
    );
    assert_eq!(got["nodes"]["w"]["status"], "cancelled", "{got:#}");
    // Finished for good: watching it ends at once instead of waiting forever.
    let watched = cli(&master.url, &["watch", &id], &[]).await;
    assert_eq!(code(&watched), Some(1), "{}", stderr(&watched));
}

async fn start_dev() -> MasterProc {
    start(|addr| {
        let mut cmd = clean_command();
        cmd.args(["dev", "--listen", addr]);
        cmd
    })
    .await
}

/// Runs `baton ARGS` with `BATON_MASTER_URL=url` and extra variables, bounded by `BOUND`.
async fn cli(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = clean_command();
    cmd.args(args)
        .env("BATON_MASTER_URL", url)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(BOUND, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("baton {args:?} did not finish within {BOUND:?}"))
        .expect("run baton")
}

fn workflow_file(name: &str, workflow: &Value) -> String {
    scratch_file(name, &workflow.to_string())
        .to_string_lossy()
        .into_owned()
}

/// Waits for a signal named `approve`, then logs who approved.
fn approval_workflow(name: &str, timeout_ms: Option<u64>) -> Value {
    let mut wait = json!({"mode": "signal", "signal": "approve"});
    if let Some(ms) = timeout_ms {
        wait["amount"] = json!(ms);
        wait["unit"] = json!("milliseconds");
    }
    json!({
        "name": name,
        "nodes": [
            {"id": "w", "name": "Approve", "type": "wait", "parameters": wait},
            {"id": "d", "name": "Done", "type": "log",
             "parameters": {"message": "approved by {{ $Approve.data.by }}"}}
        ],
        "edges": [{"id": "e", "src": "w", "dst": "d"}]
    })
}

/// Polls `GET /executions/{id}` until `node` is waiting (a signal sent earlier could find no
/// waiter yet).
async fn wait_until_waiting(url: &str, execution_id: &str, node: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        if let Ok(r) = http
            .get(format!("{url}/executions/{execution_id}"))
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
            && v["nodes"][node]["status"] == "waiting"
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node `{node}` of {execution_id} never waited");
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_with_wait_prints_the_completion_and_executions_lists_it() {
    let master = start_dev().await;
    let out = cli(
        &master.url,
        &[
            "submit",
            "examples/01-hello.json",
            "--input",
            "@examples/01-hello.input.json",
            "--wait",
        ],
        &[],
    )
    .await;
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let completion = stdout_json(&out);
    assert_eq!(completion["status"], "completed");
    assert!(completion["final_context"]["$Greet"]["message"].is_string());
    let execution_id = completion["execution_id"].as_str().unwrap().to_string();
    let progress = stderr(&out);
    assert!(
        progress.contains(&format!("submitted execution {execution_id}")),
        "{progress}"
    );
    assert!(progress.contains("success Greet"), "{progress}");
    assert!(progress.contains("completed in"), "{progress}");

    let table = cli(&master.url, &["executions"], &[]).await;
    assert_eq!(code(&table), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    for column in ["EXECUTION", "WORKFLOW", "STATUS", "STARTED", "DURATION"] {
        assert!(header.contains(column), "{text}");
    }
    let row = lines
        .find(|l| l.starts_with(&execution_id))
        .unwrap_or_else(|| {
            panic!("{execution_id} is not listed:\n{text}");
        });
    assert!(
        row.contains("hello v1") && row.contains("completed"),
        "{row}"
    );

    let listed = cli(
        &master.url,
        &[
            "executions",
            "--json",
            "--status",
            "completed",
            "--limit",
            "5",
        ],
        &[],
    )
    .await;
    assert_eq!(code(&listed), Some(0), "{}", stderr(&listed));
    let json = stdout_json(&listed);
    assert_eq!(json["executions"][0]["execution_id"], execution_id.as_str());

    let none = cli(&master.url, &["executions", "--status", "failed"], &[]).await;
    assert_eq!(stdout(&none).lines().count(), 1, "only the header");
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_without_wait_prints_the_execution_id_and_an_idempotency_key_reuses_it() {
    let master = start_dev().await;
    let file = workflow_file("approval.json", &approval_workflow("idem", None));
    let args = ["submit", file.as_str(), "--execution-id", "retry-key-1"];
    let first = cli(&master.url, &args, &[]).await;
    assert_eq!(code(&first), Some(0), "{}", stderr(&first));
    let again = cli(&master.url, &args, &[]).await;
    assert_eq!(code(&again), Some(0), "{}", stderr(&again));
    let id = stdout(&first).trim().to_string();
    assert!(!id.is_empty());
    assert_eq!(
        stdout(&again).trim(),
        id,
        "the same key, the same execution"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_reports_every_problem_of_an_invalid_workflow_and_exits_2() {
    let master = start_dev().await;
    let file = workflow_file(
        "broken.json",
        &json!({
            "name": "broken",
            "nodes": [{"id": "a", "name": "A", "type": "frobnicate"},
                      {"id": "b", "name": "B", "type": "log", "parameters": {"message": "b"}}],
            "edges": [{"id": "e", "src": "b", "dst": "ghost"}]
        }),
    );
    let out = cli(&master.url, &["submit", &file, "--wait"], &[]).await;
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("is not a valid workflow") && err.contains("422"),
        "{err}"
    );
    assert!(
        err.contains("$.nodes[0].type: unknown node type `frobnicate`"),
        "{err}"
    );
    assert!(err.contains("$.edges[0].dst"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_halted_execution_exits_1_from_submit_and_from_watch() {
    let master = start_dev().await;
    let file = workflow_file("timeout.json", &approval_workflow("times-out", Some(50)));
    let out = cli(&master.url, &["submit", &file, "--wait"], &[]).await;
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    let completion = stdout_json(&out);
    assert_ne!(completion["status"], "completed");
    assert!(stderr(&out).contains("SIGNAL_TIMEOUT"), "{}", stderr(&out));

    let execution_id = completion["execution_id"].as_str().unwrap();
    let watched = cli(&master.url, &["watch", execution_id], &[]).await;
    assert_eq!(code(&watched), Some(1), "{}", stderr(&watched));
    let summary = stdout(&watched);
    assert!(
        summary.starts_with(completion["status"].as_str().unwrap()),
        "{summary}"
    );
    assert!(summary.contains(execution_id), "{summary}");
    assert!(
        stderr(&watched).contains("✗ Approve (wait) failed"),
        "{}",
        stderr(&watched)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_follows_an_execution_live_until_a_signal_from_the_cli_completes_it() {
    let master = start_dev().await;
    let file = workflow_file("approval.json", &approval_workflow("approval", None));
    let submitted = cli(&master.url, &["submit", &file], &[]).await;
    assert_eq!(code(&submitted), Some(0), "{}", stderr(&submitted));
    let execution_id = stdout(&submitted).trim().to_string();

    wait_until_waiting(&master.url, &execution_id, "w").await;
    let mut watch = clean_command();
    watch
        .args(["watch", &execution_id, "--json"])
        .env("BATON_MASTER_URL", &master.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut watch = watch.spawn().expect("spawn baton watch");
    let mut progress = BufReader::new(watch.stderr.take().unwrap()).lines();
    let mut shown = Vec::new();

    // The watcher shows the waiting node live; only then does the signal let it finish.
    let waiting = tokio::time::timeout(BOUND, async {
        while let Ok(Some(line)) = progress.next_line().await {
            let done = line.contains("⏸ Approve (wait) waiting");
            shown.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(waiting.ok(), Some(true), "watch showed: {shown:?}");
    let signalled = cli(
        &master.url,
        &[
            "signal",
            &execution_id,
            "approve",
            "--data",
            r#"{"by": "ada"}"#,
        ],
        &[],
    )
    .await;
    assert_eq!(code(&signalled), Some(0), "{}", stderr(&signalled));
    assert!(stderr(&signalled).contains("signal `approve` sent"));

    tokio::time::timeout(BOUND, async {
        while let Ok(Some(line)) = progress.next_line().await {
            shown.push(line);
        }
    })
    .await
    .expect("watch ends after the signal");
    let out = tokio::time::timeout(BOUND, watch.wait_with_output())
        .await
        .expect("watch exits")
        .unwrap();
    assert_eq!(code(&out), Some(0), "{shown:?}");
    let completion = stdout_json(&out);
    assert_eq!(completion["status"], "completed");
    assert_eq!(
        completion["final_context"]["$Done"]["message"],
        "approved by ada"
    );
    assert!(
        shown.iter().any(|l| l.contains("✓ Done (log) success")),
        "{shown:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_master_and_an_unknown_execution_are_reported_clearly() {
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let out = cli(&nobody, &["executions"], &[]).await;
    assert_eq!(code(&out), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach the master at {nobody}")),
        "{err}"
    );

    let master = start_dev().await;
    for args in [
        vec!["watch", "no-such-execution"],
        vec!["signal", "no-such-execution", "go"],
    ] {
        let out = cli(&master.url, &args, &[]).await;
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("404") && err.contains("no-such-execution"),
            "{err}"
        );
    }

    let mut cmd = clean_command();
    let out = cmd.args(["executions"]).output().await.unwrap();
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("--master URL or set BATON_MASTER_URL"));
}

/// A server that records the `Authorization` header of every request.
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

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_stored_through_the_master_is_revealed_by_a_worker_and_shown_nowhere() {
    const SECRET: &str = "s3cr3t-token-from-the-vault-4242";
    const TOKEN: &str = "api-token-for-this-test";
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let mut cluster = Cluster::new();
    cluster
        .spawn_worker(&[("BATON_CREDENTIALS_KEY", key)])
        .await;
    let master = start(|addr| {
        let mut cmd = Command::from(cluster.command());
        cmd.arg("master")
            .env("BATON_MASTER_LISTEN", addr)
            .env("BATON_API_TOKENS", TOKEN)
            .env(
                "BATON_MASTER_KEY_PREFIX",
                format!("{}:master:", cluster.key_prefix),
            )
            .env("BATON_CREDENTIALS_KEY", key);
        cmd
    })
    .await;

    // Without the token: 401, with a hint; with it: the listing.
    let denied = cli(&master.url, &["executions"], &[]).await;
    assert_eq!(code(&denied), Some(2));
    let err = stderr(&denied);
    assert!(
        err.contains("401") && err.contains("BATON_API_TOKEN"),
        "{err}"
    );
    let auth = [("BATON_API_TOKEN", TOKEN)];
    let listed = cli(&master.url, &["executions"], &auth).await;
    assert_eq!(code(&listed), Some(0), "{}", stderr(&listed));

    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/credentials", master.url))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "api", "type": "token", "data": {"token": SECRET}, "hosts": ["127.0.0.1"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let credential_id = created["credential_id"].as_str().unwrap_or_else(|| {
        panic!("no credential_id in {created}");
    });
    assert!(!created.to_string().contains(SECRET));

    let (url, seen) = recording_server().await;
    let file = workflow_file(
        "vault.json",
        &json!({
            "name": "vault-e2e",
            "nodes": [
                {"id": "call", "name": "Call", "type": "http",
                 "parameters": {"method": "GET", "url": url},
                 "credentials": {"$credential": credential_id}},
                {"id": "after", "name": "After", "type": "log",
                 "parameters": {"message": "hello {{ $Call.body.user }}"}}
            ],
            "edges": [{"id": "e", "src": "call", "dst": "after"}]
        }),
    );
    let out = cli(&master.url, &["submit", &file, "--wait"], &auth).await;
    assert_eq!(code(&out), Some(0), "{}\n{}", stderr(&out), cluster.logs());
    assert_eq!(*seen.lock().unwrap(), vec![format!("Bearer {SECRET}")]);
    let completion = stdout(&out);
    assert!(completion.contains("hello alice"), "{completion}");
    assert!(!completion.contains(SECRET), "{completion}");
    assert!(!stderr(&out).contains(SECRET));

    // What the master kept of the execution (statuses with parameters, outputs, context).
    let execution_id = stdout_json(&out)["execution_id"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = http
        .get(format!("{}/executions/{execution_id}", master.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(detail.contains("alice"), "{detail}");
    assert!(!detail.contains(SECRET), "{detail}");
    let watched = cli(&master.url, &["watch", &execution_id, "--json"], &auth).await;
    assert_eq!(code(&watched), Some(0), "{}", stderr(&watched));
    assert!(!stdout(&watched).contains(SECRET) && !stderr(&watched).contains(SECRET));
    assert!(
        !cluster.logs().contains(SECRET),
        "the worker logged the secret"
    );
    assert!(
        !std::fs::read_to_string(&master.log)
            .unwrap_or_default()
            .contains(SECRET),
        "the master logged the secret"
    );

    // A worker holding another key refuses to start, naming both key ids.
    let other = "HxwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=";
    let mut cmd = cluster.command();
    cmd.arg("worker")
        .env("BATON_CREDENTIALS_KEY", other)
        .env("BATON_HTTP_PORT", free_port().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::time::timeout(BOUND, tokio::process::Command::from(cmd).output())
        .await
        .expect("the worker with the wrong key exits")
        .unwrap();
    assert!(!out.status.success());
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        err.contains("credentials key does not match the vault (key id "),
        "{err}"
    );
}
