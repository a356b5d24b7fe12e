//! `WorkerProcess` against stand-in processes (`sleep`, `sh`) and a stand-in `/readyz`, so the
//! lifecycle is tested without building `baton`.

use std::process::Command;
use std::time::Duration;

use baton_testkit::{WorkerError, WorkerProcess, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn log_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}-{name}.log",
        baton_testkit::unique_id("testkit-")
    ))
}

fn sleeper() -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    cmd
}

/// Answers every request on `port` with `status` (an HTTP/1.1 status line's code and reason).
fn serve(port: u16, status: &'static str) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let response = format!("HTTP/1.1 {status}\r\nContent-Length: 12\r\n\r\nbaton_up 1\n\n");
            let _ = s.write_all(response.as_bytes()).await;
        }
    });
}

#[tokio::test]
async fn ready_when_readyz_answers_200_and_metrics_are_read() {
    let port = free_port();
    let mut worker = WorkerProcess::spawn(sleeper(), port, log_path("ready")).unwrap();
    serve(port, "200 OK");
    worker
        .wait_ready(Instant::now() + Duration::from_secs(10))
        .await
        .expect("ready");
    assert_eq!(worker.readyz().await, Some(200));
    assert_eq!(worker.metric("baton_up").await, Some(1.0));
    assert_eq!(worker.exited(), None);
}

#[tokio::test]
async fn not_ready_while_readyz_answers_503() {
    let port = free_port();
    let mut worker = WorkerProcess::spawn(sleeper(), port, log_path("unready")).unwrap();
    serve(port, "503 Service Unavailable");
    let err = worker
        .wait_ready(Instant::now() + Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, WorkerError::NotReady { .. }), "{err}");
}

#[tokio::test]
async fn a_process_that_exits_is_reported_with_its_log() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo \"port $BATON_HTTP_PORT\"; exit 3"]);
    let port = free_port();
    let mut worker = WorkerProcess::spawn(cmd, port, log_path("exits")).unwrap();
    let err = worker
        .wait_ready(Instant::now() + Duration::from_secs(10))
        .await
        .unwrap_err();
    match err {
        WorkerError::Exited { status, .. } => assert_eq!(status.code(), Some(3)),
        other => panic!("expected Exited, got {other}"),
    }
    assert_eq!(worker.log_tail(5), format!("port {port}"));
}

#[tokio::test]
async fn stop_ends_the_process_with_sigterm() {
    let mut worker = WorkerProcess::spawn(sleeper(), free_port(), log_path("stop")).unwrap();
    worker.stop(Duration::from_secs(10)).await;
    let status = worker.exited().expect("exited");
    assert!(!status.success());
}

#[tokio::test]
async fn drop_kills_the_process() {
    let worker = WorkerProcess::spawn(sleeper(), free_port(), log_path("drop")).unwrap();
    let proc_dir = format!("/proc/{}", worker.pid());
    assert!(std::path::Path::new(&proc_dir).exists());
    drop(worker);
    // Killed and reaped: the pid is gone (not a zombie).
    assert!(!std::path::Path::new(&proc_dir).exists());
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    let err = WorkerProcess::spawn(
        Command::new("/nonexistent/baton"),
        free_port(),
        log_path("missing"),
    )
    .unwrap_err();
    assert!(matches!(err, WorkerError::Spawn { .. }), "{err}");
}
