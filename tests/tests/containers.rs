//! A real pool of containers: `scripts/containers` packages the `baton` binary under test into
//! a `FROM scratch` image (no registry) and starts a master and 3 worker containers (podman,
//! host network, 128 MiB each) on the shared RabbitMQ and Redis with this test's queue and key
//! prefixes. Executions go in through the master's HTTP API; the worker container running a
//! held HTTP hop is `podman kill`ed; every execution still completes exactly once.
//!
//! Skipped, with the exact failure printed, only when `scripts/containers check` finds that
//! podman cannot be installed or cannot run a container on this machine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::distributed::{
    BOUND, Cluster, TestApi, connection_owner, free_port, sequential_http_workflow,
};
use common::{baton_bin, workspace};
use serde_json::{Value, json};

const WORKERS: usize = 3;
const EXECUTIONS: usize = 12;
const STEPS: usize = 5;

/// `scripts/containers <args>` with the pool's settings and nothing inherited from `BATON_*`.
fn script(env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(workspace().join("scripts/containers"));
    cmd.current_dir(workspace()).args(args);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("BATON_") || k.starts_with("CT_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.output().expect("run scripts/containers")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--events-backend=file", "--runtime", "runc"])
        .args(args)
        .output()
        .expect("run podman")
}

/// The pool's containers and image; removed on drop (their logs printed if the test failed).
struct Pool {
    name: String,
    image: String,
    env: Vec<(String, String)>,
}

impl Pool {
    fn container(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    /// The host pid of a container's process (`baton`, the entrypoint).
    fn pid(&self, role: &str) -> Option<u32> {
        let out = podman(&[
            "inspect",
            "--format",
            "{{.State.Pid}}",
            &self.container(role),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for role in std::iter::once("master".to_string())
            .chain((1..=WORKERS).map(|i| format!("worker-{i}")))
        {
            let out = podman(&["logs", "--tail", "40", &self.container(&role)]);
            s += &format!(
                "--- {role}\n{}{}\n",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        s
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("container logs:\n{}", self.logs());
        }
        let out = script(&self.env, &["down"]);
        if !out.status.success() {
            eprintln!("scripts/containers down: {}", text(&out));
        }
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

async fn status_of(url: &str) -> Option<u16> {
    let r = reqwest::get(url).await.ok()?;
    Some(r.status().as_u16())
}

async fn wait_ready(url: &str, pool: &Pool) {
    let deadline = Instant::now() + BOUND;
    while status_of(url).await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "{url} not ready within {BOUND:?}\n{}",
            pool.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_containers_loses_nothing_when_a_worker_container_is_killed_mid_hop() {
    let check = script(&[], &["check"]);
    if !check.status.success() {
        eprintln!(
            "SKIPPED: podman cannot run containers on this machine: {}",
            String::from_utf8_lossy(&check.stderr).trim()
        );
        return;
    }

    let api = TestApi::start(Duration::from_millis(100));
    api.hold("/step/3");
    let cluster = Cluster::new();
    let token = format!("tok-{}", cluster.id);
    let master_port = free_port();
    let worker_ports: Vec<String> = (0..WORKERS).map(|_| free_port().to_string()).collect();
    let short = &cluster.id[..12.min(cluster.id.len())];
    let env: Vec<(String, String)> = [
        ("BATON_BIN", baton_bin().display().to_string()),
        ("CT_IMAGE", format!("localhost/baton:e2e-{short}")),
        ("CT_NAME", format!("bt-{short}")),
        ("CT_WORKERS", WORKERS.to_string()),
        ("CT_MASTER_PORT", master_port.to_string()),
        ("CT_WORKER_PORTS", worker_ports.join(",")),
        ("CT_MEMORY", "128m".into()),
        ("BATON_AMQP_URL", cluster.amqp_url.clone()),
        ("BATON_REDIS_URL", cluster.redis_url.clone()),
        ("BATON_QUEUE_PREFIX", cluster.queue_prefix.clone()),
        ("BATON_KEY_PREFIX", cluster.key_prefix.clone()),
        (
            "BATON_MASTER_KEY_PREFIX",
            format!("{}:master:", cluster.key_prefix),
        ),
        ("BATON_API_TOKENS", token.clone()),
        ("BATON_LOG_FORMAT", "human".into()),
        // The test API listens on 127.0.0.1.
        ("BATON_HTTP_ALLOW_PRIVATE_NETWORKS", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let pool = Pool {
        name: format!("bt-{short}"),
        image: format!("localhost/baton:e2e-{short}"),
        env: env.clone(),
    };
    // Copies of every completion, taken before anything runs.
    let broker = cluster.broker().await;
    let mut completions = cluster
        .subscribe(&broker, &[&cluster.topology.completion_queue])
        .await;

    let up = script(&env, &["up"]);
    assert!(up.status.success(), "scripts/containers up: {}", text(&up));
    let master = format!("http://127.0.0.1:{master_port}");
    wait_ready(&format!("{master}/readyz"), &pool).await;
    for port in &worker_ports {
        wait_ready(&format!("http://127.0.0.1:{port}/readyz"), &pool).await;
    }
    let memory = podman(&[
        "inspect",
        "--format",
        "{{.HostConfig.Memory}}",
        &pool.container("worker-1"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&memory.stdout).trim(),
        (128u64 << 20).to_string(),
        "the worker containers run with a 128 MiB memory limit"
    );

    // The workflow and its executions, through the master's API.
    let http = reqwest::Client::new();
    let auth = format!("Bearer {token}");
    let mut workflow = sequential_http_workflow("steps", STEPS);
    workflow["id"] = json!("steps");
    let stored = http
        .post(format!("{master}/workflows"))
        .header("authorization", &auth)
        .json(&workflow)
        .send()
        .await
        .expect("POST /workflows");
    assert!(stored.status().is_success(), "{:?}", stored.text().await);
    let mut ids = BTreeSet::new();
    for _ in 0..EXECUTIONS {
        let r: Value = http
            .post(format!("{master}/workflows/steps/executions"))
            .header("authorization", &auth)
            .json(&json!({"input": {"base_url": api.url}}))
            .send()
            .await
            .expect("POST /workflows/steps/executions")
            .json()
            .await
            .expect("a JSON answer");
        let id = r["execution_id"].as_str().unwrap_or_else(|| panic!("{r}"));
        ids.insert(id.to_string());
    }

    // Every execution's step 3 is held by the API, in flight on some worker container: kill
    // the container that made the first of those calls.
    let deadline = Instant::now() + BOUND;
    while api.counts().get("/step/3").copied().unwrap_or(0) < EXECUTIONS {
        assert!(
            Instant::now() < deadline,
            "not every step 3 arrived: {:?}\n{}",
            api.counts(),
            pool.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = api.calls().into_iter().find(|c| c.path == "/step/3");
    let first = first.expect("a call to /step/3");
    let roles: Vec<String> = (1..=WORKERS).map(|i| format!("worker-{i}")).collect();
    let pids: Vec<(String, u32)> = roles
        .iter()
        .filter_map(|r| pool.pid(r).map(|p| (r.clone(), p)))
        .collect();
    let only: Vec<u32> = pids.iter().map(|(_, p)| *p).collect();
    let owner = connection_owner(first.peer, api.port, &only)
        .and_then(|pid| pids.iter().find(|(_, p)| *p == pid))
        .map(|(r, _)| r.clone())
        .unwrap_or_else(|| panic!("no worker container owns the call from {}", first.peer));
    let killed = podman(&["kill", &pool.container(&owner)]);
    assert!(killed.status.success(), "podman kill: {}", text(&killed));
    api.release();

    // Exactly one completion per execution, each `completed`; nothing else.
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + BOUND * 2;
    while seen.len() < EXECUTIONS {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = completions.next(left).await else {
            panic!(
                "{} of {EXECUTIONS} completions after killing {owner}\n{}",
                seen.len(),
                pool.logs()
            );
        };
        let v = m.json();
        let id = v["execution_id"].as_str().unwrap_or_default().to_string();
        seen.entry(id)
            .or_default()
            .push(v["status"].as_str().unwrap_or_default().to_string());
    }
    // Late duplicates would arrive within a few seconds.
    for m in completions.drain(Duration::from_secs(3)).await {
        let v = m.json();
        let id = v["execution_id"].as_str().unwrap_or_default().to_string();
        seen.entry(id)
            .or_default()
            .push(v["status"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "completions for exactly the executions started"
    );
    for (id, statuses) in &seen {
        assert_eq!(statuses, &["completed"], "execution {id}: one completion");
    }
    // The master's history agrees.
    for id in &ids {
        let r: Value = http
            .get(format!("{master}/executions/{id}"))
            .header("authorization", &auth)
            .send()
            .await
            .expect("GET /executions/{id}")
            .json()
            .await
            .expect("a JSON answer");
        assert_eq!(r["status"], "completed", "{id}: {r}");
    }
    // A repeated hop keeps its Idempotency-Key: one key per execution and step.
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in api.calls() {
        keys.entry(c.path)
            .or_default()
            .insert(c.idempotency_key.unwrap_or_default());
    }
    for step in 1..=STEPS {
        let path = format!("/step/{step}");
        assert_eq!(
            keys.get(&path).map_or(0, BTreeSet::len),
            EXECUTIONS,
            "{path}: one idempotency key per execution"
        );
    }
    // The killed container's held hop ran again on another one.
    let step3 = api.counts().get("/step/3").copied().unwrap_or(0);
    assert!(
        step3 > EXECUTIONS,
        "{step3} calls to /step/3: the hop {owner} held was not run again"
    );
    eprintln!(
        "killed {owner} with a hop in flight; /step/3 called {step3} times for {EXECUTIONS} executions"
    );
    let state = podman(&[
        "inspect",
        "--format",
        "{{.State.Running}}",
        &pool.container(&owner),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&state.stdout).trim(),
        "false",
        "the killed container stays down"
    );
    drop(pool);
}
