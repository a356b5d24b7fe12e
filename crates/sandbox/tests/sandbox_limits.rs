//! The sandbox children's hard limits, seen from the parent: memory and CPU caps, kill on
//! cancel and on an abandoned run, a crashed or missing child.

use std::time::Duration;

use baton_core::ErrorCode;
use baton_engine::NodeError;
use baton_sandbox::engine::Budget;
use baton_sandbox::protocol::Request;
use baton_sandbox::{SandboxConfig, SandboxPool};
use baton_testkit::eventually;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn pool(sandboxes: usize) -> SandboxPool {
    SandboxPool::new(SandboxConfig {
        program: env!("CARGO_BIN_EXE_baton-sandbox").into(),
        args: vec![],
        memory_mb: 64,
        sandboxes,
    })
}

fn request(script: &str, timeout_ms: u64) -> Request {
    Request {
        script: script.into(),
        inputs: json!({}),
        budget: Budget {
            timeout: Duration::from_millis(timeout_ms),
            max_operations: 1_000_000_000,
        },
        cpu_secs: timeout_ms.div_ceil(1000),
    }
}

async fn run(pool: &SandboxPool, req: Request) -> Result<Value, NodeError> {
    pool.run(req, &CancellationToken::new())
        .await
        .map(|(v, _)| v)
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Peak resident memory of this (test) process, KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// 300 live one-MiB strings: each is under the 1 MiB string limit, together 300 MiB.
fn memory_bomb() -> String {
    let mut s = String::from("let base = \"\"; base.pad(1048000, 'x');\n");
    for i in 0..300 {
        s.push_str(&format!("let v{i} = base + \"{i}\";\n"));
    }
    s.push_str("v0.len()");
    s
}

#[tokio::test]
async fn three_hundred_one_mib_strings_exceed_the_memory_cap_and_the_parent_stays_small() {
    let pool = pool(1);
    let e = run(&pool, request(&memory_bomb(), 10_000))
        .await
        .expect_err("300 MiB fit under a 64 MiB cap");
    assert_eq!(e.code, ErrorCode::CodeLimitExceeded, "{e:?}");
    assert!(e.message.contains("64 MiB of memory"), "{}", e.message);
    assert!(!e.retryable);
    let peak = peak_rss_kib();
    assert!(peak < 100 * 1024, "the parent peaked at {peak} KiB");
    // A fresh child serves the next script.
    assert_eq!(run(&pool, request("40 + 2", 1_000)).await, Ok(json!(42)));
}

#[tokio::test]
async fn a_script_over_its_cpu_seconds_is_stopped_by_the_kernel() {
    let pool = pool(1);
    let mut req = request("let x = 0; loop { x += 1; }", 60_000);
    req.cpu_secs = 1;
    let e = run(&pool, req).await.expect_err("an endless loop ended");
    assert_eq!(e.code, ErrorCode::CodeLimitExceeded, "{e:?}");
    assert!(e.message.contains("CPU time"), "{}", e.message);
}

#[tokio::test]
async fn a_cancelled_endless_loop_leaves_no_child_behind() {
    let pool = pool(1);
    let cancel = CancellationToken::new();
    let req = request("loop { }", 30_000);
    let (result, (busy, pids)) = tokio::join!(pool.run(req, &cancel), async {
        let busy = eventually(
            Duration::from_secs(30),
            Duration::from_millis(10),
            async || !pool.pids().is_empty(),
        )
        .await;
        let pids = pool.pids();
        cancel.cancel();
        (busy, pids)
    });
    let e = result.expect_err("an endless loop ended");
    assert_eq!(e.code, ErrorCode::Cancelled, "{e:?}");
    assert!(busy && pids.len() == 1, "{pids:?}");
    assert!(
        !alive(pids[0]),
        "child {} still alive after cancel",
        pids[0]
    );
    assert_eq!(run(&pool, request("1 + 1", 1_000)).await, Ok(json!(2)));
}

#[tokio::test]
async fn dropping_a_run_kills_its_child_even_though_nobody_polls_it_any_more() {
    let pool = pool(1);
    let cancel = CancellationToken::new();
    let req = request("loop { }", 30_000);
    let started = tokio::select! {
        r = pool.run(req, &cancel) => panic!("an endless loop ended: {r:?}"),
        busy = eventually(Duration::from_secs(30), Duration::from_millis(10), async || {
            !pool.pids().is_empty()
        }) => busy,
    };
    assert!(started);
    let pid = pool.pids()[0];
    // The run's future is gone; its exchange task notices and kills the child.
    assert!(
        eventually(
            Duration::from_secs(10),
            Duration::from_millis(10),
            async || { !alive(pid) }
        )
        .await,
        "child {pid} kept running"
    );
}

#[tokio::test]
async fn a_crashed_child_fails_its_node_and_the_next_script_gets_a_new_child() {
    let pool = pool(1);
    let (result, crashed) = tokio::join!(run(&pool, request("loop { }", 30_000)), async {
        assert!(
            eventually(
                Duration::from_secs(30),
                Duration::from_millis(10),
                async || { !pool.pids().is_empty() }
            )
            .await
        );
        let pid = pool.pids()[0];
        let raw = Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
        kill_process(raw, Signal::ABORT).unwrap();
        pid
    });
    let e = result.expect_err("an endless loop ended");
    assert_eq!(e.code, ErrorCode::Internal, "{e:?}");
    assert!(
        e.message.contains("code sandbox process failed"),
        "{}",
        e.message
    );
    assert_eq!(run(&pool, request("6 * 7", 1_000)).await, Ok(json!(42)));
    assert!(!pool.pids().contains(&crashed));
}

#[tokio::test]
async fn a_child_is_reused_from_script_to_script() {
    let pool = pool(1);
    pool.warm();
    assert!(
        eventually(
            Duration::from_secs(30),
            Duration::from_millis(10),
            async || { pool.pids().len() == 1 }
        )
        .await
    );
    let warm = pool.pids();
    for i in 0..5 {
        assert_eq!(
            run(&pool, request(&format!("{i} + 1"), 1_000)).await,
            Ok(json!(i + 1))
        );
    }
    assert_eq!(pool.pids(), warm);
}

#[tokio::test]
async fn a_missing_sandbox_program_is_an_internal_error_naming_it() {
    let pool = SandboxPool::new(SandboxConfig {
        program: "/nonexistent/baton-sandbox".into(),
        args: vec![],
        memory_mb: 64,
        sandboxes: 1,
    });
    let e = run(&pool, request("1", 1_000))
        .await
        .expect_err("ran without a child");
    assert_eq!(e.code, ErrorCode::Internal, "{e:?}");
    assert!(
        e.message.contains("/nonexistent/baton-sandbox"),
        "{}",
        e.message
    );
}
