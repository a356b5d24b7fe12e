//! The `code` node's sandbox, black-box: a `baton worker` whose address space is capped
//! (`prlimit --as`, room for a few tens of MiB more than it uses) survives a script that
//! builds 300 one-MiB strings — the script's node fails with `CODE_LIMIT_EXCEEDED` in the
//! sandbox child — and completes the next execution.

mod common;

use std::process::Command;

use common::distributed::{Cluster, completion_of};
use serde_json::{Value, json};

fn one_code_node(script: &str) -> Value {
    json!({"name": "code-sandbox", "version": 1,
        "nodes": [
            {"id": "calc", "name": "Calc", "type": "code",
             "parameters": {"script": script, "timeout_ms": 10_000}}
        ],
        "edges": []})
}

fn memory_bomb() -> String {
    let mut s = String::from("let base = \"\"; base.pad(1048000, 'x');\n");
    for i in 0..300 {
        s.push_str(&format!("let v{i} = base + \"{i}\";\n"));
    }
    s.push_str("v0.len()");
    s
}

fn vm_size_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("the worker's VmSize")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_fails_its_node_and_the_capped_worker_completes_the_next_execution() {
    let mut cluster = Cluster::new();
    let w = cluster.spawn_worker(&[("BATON_CODE_SANDBOXES", "1")]).await;
    let pid = cluster.worker(w).pid();
    // 128 MiB more address space than the worker has now: far less than the bomb's 300 MiB.
    let cap = (vm_size_kib(pid) + 128 * 1024) * 1024;
    let status = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--as={cap}"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit failed: {status}");

    let bomb = cluster.workflow_file("bomb.json", &one_code_node(&memory_bomb()));
    let out = cluster
        .submit(&bomb, &json!({}), &["--wait", "--timeout-secs", "120"])
        .await;
    let failed = completion_of(&out, &cluster);
    assert_ne!(failed["status"], "completed", "{failed:#}");
    let reason = failed.to_string();
    assert!(reason.contains("CODE_LIMIT_EXCEEDED"), "{failed:#}");
    assert!(reason.contains("MiB of memory"), "{failed:#}");

    let ok = cluster.workflow_file("ok.json", &one_code_node("40 + 2"));
    let out = cluster
        .submit(&ok, &json!({}), &["--wait", "--timeout-secs", "120"])
        .await;
    let done = completion_of(&out, &cluster);
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["final_context"]["$Calc"]["result"], 42, "{done:#}");
    assert_eq!(cluster.running(), vec![w], "the worker died");
    assert_eq!(cluster.worker(w).pid(), pid);
}
