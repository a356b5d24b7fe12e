//! One configuration for every role (issue 17): a process ignores the `BATON_*` variables of the
//! other roles and refuses a name no role knows, naming the closest one; the README's client
//! environment (`BATON_MASTER_URL`, `BATON_API_TOKEN`) works for `cancel` as for the other
//! master commands; `baton config` prints the effective configuration with secrets redacted.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::distributed::{BOUND, Cluster, free_port};
use common::{baton_bin, scratch_file, stderr, stdout, workspace};
use serde_json::{Value, json};

/// `baton` with no inherited `BATON_*` variable, and `env` set.
fn clean(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(baton_bin());
    cmd.current_dir(workspace()).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BATON_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn output(cmd: std::process::Command) -> Output {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(BOUND, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("baton did not finish within {BOUND:?}"))
        .expect("run baton")
}

/// Waits for a signal that never comes: a run to cancel.
fn waiting_workflow() -> Value {
    json!({"name": "held", "nodes": [
        {"id": "w", "name": "Hold", "type": "wait", "parameters": {"mode": "signal", "signal": "go"}},
        {"id": "l", "name": "After", "type": "log", "parameters": {"message": "released"}}
    ], "edges": [{"id": "e", "src": "w", "dst": "l"}]})
}

/// What the master, the dashboard's users and the README's client environment set.
const OTHER_ROLES: [(&str, &str); 5] = [
    ("BATON_API_TOKENS", "a-master-token"),
    ("BATON_MASTER_KEY_PREFIX", "elsewhere:master:"),
    ("BATON_MASTER_LISTEN", "127.0.0.1:1"),
    ("BATON_MASTER_URL", ""),
    ("BATON_API_TOKEN", "a-client-token"),
];

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_and_the_pool_commands_run_with_the_other_roles_variables_in_their_environment() {
    let mut cluster = Cluster::new();
    // Ready means it loaded its settings and connected.
    cluster.spawn_worker(&OTHER_ROLES).await;

    let file = cluster.workflow_file("held.json", &waiting_workflow());
    let mut submit = cluster.command();
    submit.envs(OTHER_ROLES).arg("submit").arg(&file);
    let out = cluster.output(submit).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();

    let mut cancel = cluster.command();
    cancel.envs(OTHER_ROLES).args(["cancel", &id]);
    let out = cluster.output(cancel).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The cancel reached the worker: following the execution ends it, halted.
    let mut follow = cluster.command();
    follow.args([
        "submit",
        &file.to_string_lossy(),
        "--execution-id",
        &id,
        "--wait",
    ]);
    let out = cluster.output(follow).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("halted"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_variable_stops_a_worker_naming_the_closest_known_one() {
    let cluster = Cluster::new();
    let mut cmd = cluster.command();
    cmd.arg("worker")
        .env("BATON_HTTP_PORT", free_port().to_string())
        .env("BATON_WROKER_CONCURRENCY", "4")
        .envs(OTHER_ROLES);
    let out = cluster.output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "unknown variable `BATON_WROKER_CONCURRENCY` (did you mean `BATON_CONCURRENCY`?)"
        ),
        "{err}"
    );
    assert!(
        !err.contains("API_TOKENS"),
        "other roles' variables are not errors: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_variable_is_refused_by_a_client_command_too() {
    let out = output(clean(
        &["executions"],
        &[("BATON_MASTR_URL", "http://127.0.0.1:8080")],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`BATON_MASTR_URL` (did you mean `BATON_MASTER_URL`?)"),
        "{}",
        stderr(&out)
    );
}

/// The README's `export BATON_MASTER_URL=… BATON_API_TOKEN=…`, against a master with tokens.
#[tokio::test(flavor = "multi_thread")]
async fn cancel_goes_through_the_master_with_the_readme_environment_and_token_is_a_flag_too() {
    const TOKEN: &str = "readme-token";
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}");
    let log = scratch_file("master.log", "");
    let mut master = cluster.command();
    master
        .arg("master")
        .env("BATON_MASTER_LISTEN", &addr)
        .env("BATON_API_TOKENS", TOKEN)
        .env(
            "BATON_MASTER_KEY_PREFIX",
            format!("{}:master:", cluster.key_prefix),
        )
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut master = tokio::process::Command::from(master)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the master");
    wait_healthy(&url).await;

    let readme = [
        ("BATON_MASTER_URL", url.as_str()),
        ("BATON_API_TOKEN", TOKEN),
    ];
    let file = scratch_file("held.json", &waiting_workflow().to_string());
    let file = file.to_string_lossy();
    let out = output(clean(&["submit", &file], &readme)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    wait_until_waiting(&url, TOKEN, &id).await;

    let out = output(clean(&["cancel", &id], &readme)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = output(clean(&["watch", &id], &readme)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // `--master` and `--token` as flags, no variable.
    let out = output(clean(
        &[
            "executions",
            "--master",
            &url,
            "--token",
            TOKEN,
            "--status",
            "halted",
            "--json",
        ],
        &[],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed.to_string().contains(&id), "{listed}");
    let _ = master.start_kill();
}

async fn wait_healthy(url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the master at {url} did not get healthy within {BOUND:?}");
}

async fn wait_until_waiting(url: &str, token: &str, id: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        if let Ok(r) = http
            .get(format!("{url}/executions/{id}"))
            .bearer_auth(token)
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
            && v["nodes"]["w"]["status"] == "waiting"
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("execution {id} never waited");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_prints_the_effective_configuration_with_secrets_redacted() {
    let file = scratch_file("master.toml", "master_listen = \"0.0.0.0:9999\"\n");
    let file = file.to_string_lossy();
    let env = [
        ("BATON_API_TOKENS", "tok-one,tok-two"),
        ("BATON_AMQP_URL", "amqp://baton:hunter2@rabbit:5672/%2f"),
        (
            "BATON_CREDENTIALS_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("BATON_HTTP_PORT", "9191"),
    ];
    let out = output(clean(
        &["config", "--role", "master", "--config", &file],
        &env,
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for secret in ["tok-one", "hunter2", "AAECAwQF"] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("BATON_API_TOKENS"),
        "BATON_API_TOKENS=<redacted> # env"
    );
    assert_eq!(
        line("BATON_AMQP_URL"),
        "BATON_AMQP_URL=amqp://baton:<redacted>@rabbit:5672/%2f # env"
    );
    assert_eq!(
        line("BATON_MASTER_LISTEN"),
        "BATON_MASTER_LISTEN=0.0.0.0:9999 # file"
    );
    assert_eq!(
        line("BATON_MASTER_MAX_EXECUTIONS"),
        "BATON_MASTER_MAX_EXECUTIONS=10000 # default"
    );
    assert!(
        !text.contains("BATON_HTTP_PORT"),
        "a worker variable:\n{text}"
    );

    let out = output(clean(&["config", "--role", "worker", "--json"], &env)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let port = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "BATON_HTTP_PORT")
        .unwrap();
    assert_eq!(
        (&port["value"], &port["source"]),
        (&json!("9191"), &json!("env"))
    );
    assert!(!list.to_string().contains("hunter2"));
}
