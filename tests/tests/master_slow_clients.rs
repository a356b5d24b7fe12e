//! Slow clients against a real `baton master` process (RFC 0008, issue 15 item 5): thousands of
//! connections that send half a request head and stall neither starve `/healthz` nor keep the
//! master's file descriptors; they are closed at the header deadline.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::distributed::{BOUND, Cluster, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const SLOW_CLIENTS: usize = 2_000;
// Long enough that a flood slowed by a loaded machine is still all held when it ends (at 3 s
// the first connections were already closed by the deadline when CI counted them).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The master's open file descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// One `GET /healthz` on a fresh connection: `Some(200)` when answered.
async fn healthz(addr: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
}

struct Master {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Master {
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

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_half_sent_requests_leave_healthz_answering_and_their_descriptors_are_closed()
{
    let cluster = Cluster::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = cluster.dir.join("master.log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::from(cluster.command());
    // Default limits (1024 connections + the reserve), a short header deadline for the test.
    cmd.arg("master")
        .env("BATON_MASTER_LISTEN", &addr)
        .env("BATON_API_TOKENS", "slow-clients-token")
        .env(
            "BATON_MASTER_KEY_PREFIX",
            format!("{}:master:", cluster.key_prefix),
        )
        .env(
            "BATON_MASTER_HEADER_TIMEOUT_MS",
            HEADER_TIMEOUT.as_millis().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn baton master");
    let mut master = Master { child, log };
    let pid = master.child.id().expect("pid");
    let deadline = Instant::now() + BOUND;
    while healthz(&addr).await != Some(200) {
        assert!(
            master.child.try_wait().ok().flatten().is_none(),
            "the master exited"
        );
        assert!(Instant::now() < deadline, "the master never got healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Settle: the health probes' connections are closed (Connection: close).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = open_fds(pid);

    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    // The most descriptors the master held during and just after the flood.
    let mut peak = 0;
    for i in 0..SLOW_CLIENTS {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            panic!("connection {i} failed: the listener must keep accepting (or closing)");
        };
        // Refused connections are closed by the master: a failed write is fine.
        let _ = s
            .write_all(b"POST /workflows HTTP/1.1\r\nHost: t\r\nContent-Le")
            .await;
        slow.push(s);
        if i % 100 == 99 {
            peak = peak.max(open_fds(pid).saturating_sub(baseline));
        }
    }
    let flooded = Instant::now();
    while healthz(&addr).await != Some(200) {
        assert!(
            flooded.elapsed() < BOUND,
            "/healthz never answered during the flood"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered_after = flooded.elapsed();
    // The master accepts asynchronously: its accept loop may still be catching up.
    let catch_up = Instant::now() + Duration::from_secs(2);
    let mut held = peak.max(open_fds(pid).saturating_sub(baseline));
    while held < 1_000 && Instant::now() < catch_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
        held = held.max(open_fds(pid).saturating_sub(baseline));
    }
    eprintln!(
        "{SLOW_CLIENTS} half-sent requests: the master held {held} descriptors; /healthz answered {answered_after:?} after the flood"
    );
    assert!(
        held >= 1_000,
        "the master held the slow connections up to its limit ({held})"
    );
    assert!(
        held <= 1_024 + 16 + 8,
        "the connection limit and its reserve bound the descriptors ({held})"
    );
    assert!(
        answered_after < Duration::from_secs(1),
        "/healthz answered within 1 s of the flood ({answered_after:?})"
    );

    // Past the header deadline, every slow connection is closed by the master.
    let settle = Instant::now() + HEADER_TIMEOUT + BOUND;
    loop {
        let now = open_fds(pid);
        if now <= baseline + 2 {
            break;
        }
        assert!(
            Instant::now() < settle,
            "descriptors back to the baseline {baseline} after the header deadline: {now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut closed = 0;
    for mut s in slow {
        let mut buf = [0u8; 16];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert_eq!(
        closed, SLOW_CLIENTS,
        "every slow connection was closed by the master"
    );
    assert_eq!(healthz(&addr).await, Some(200));
    drop(master);
    drop(cluster);
}
