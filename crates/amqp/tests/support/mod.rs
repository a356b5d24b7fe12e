//! Shared helpers for the tests against a real RabbitMQ (`BATON_TEST_AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). Every test uses its own exchange, queues and
//! connection name (uuid-suffixed) and deletes them at the end. When the broker is unreachable
//! the tests are skipped with a message — except under `CI=true`, where that is a failure.
#![allow(dead_code)]

use baton_amqp::{AmqpOptions, Broker, Deliveries, Delivery, Topology};
use futures_util::StreamExt;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn url() -> String {
    std::env::var("BATON_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// host:port of the broker in `url`.
pub fn broker_addr(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).expect("scheme");
    let authority = rest.split('/').next().unwrap();
    let hostport = authority.rsplit('@').next().unwrap();
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5672")
    };
    hostport
        .to_socket_addrs()
        .expect("resolve broker")
        .next()
        .expect("broker address")
}

/// Whether the broker accepts TCP connections; panics under CI when it does not.
pub fn broker_available() -> bool {
    let url = url();
    let up = TcpStream::connect_timeout(&broker_addr(&url), Duration::from_secs(2)).is_ok();
    if !up {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("RabbitMQ is not reachable at {url} (CI=true: run scripts/services)");
        }
        eprintln!("SKIPPED: RabbitMQ is not reachable at {url} (run scripts/services)");
    }
    up
}

/// Skips the test (returns) when no broker is reachable.
#[macro_export]
macro_rules! require_broker {
    () => {
        if !support::broker_available() {
            return;
        }
    };
}

/// Options with unique names: the topology behind the prefix `baton-test.<id>.`.
pub fn unique_options() -> AmqpOptions {
    let id = baton_testkit::unique_id("");
    AmqpOptions {
        url: url(),
        topology: Topology::new(&format!("baton-test.{id}.")),
        connection_name: Some(format!("baton-test-{id}")),
        connect_timeout: Duration::from_secs(10),
        ..AmqpOptions::default()
    }
}

/// Logs to the test output, filtered by `RUST_LOG` (default: warnings).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

pub async fn connect(opts: &AmqpOptions) -> Broker {
    init_tracing();
    Broker::connect(opts.clone()).await.expect("connect")
}

/// The next delivery, or `None` after `within`.
pub async fn next_within(deliveries: &mut Deliveries, within: Duration) -> Option<Delivery> {
    tokio::time::timeout(within, deliveries.next())
        .await
        .ok()
        .flatten()
}

pub async fn expect_delivery(deliveries: &mut Deliveries) -> Delivery {
    next_within(deliveries, Duration::from_secs(10))
        .await
        .expect("a delivery within 10 s")
}

/// Deletes the test's exchange and queues and closes the broker.
pub async fn cleanup(broker: Broker) {
    broker.delete_topology().await.expect("delete topology");
    broker.close().await;
}

/// Waits until `f` holds (polling), or panics after `within`.
pub async fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `url` with its host:port replaced by `127.0.0.1:<port>`.
pub fn url_via_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}127.0.0.1:{port}/{path}")
}

/// A TCP proxy in front of the broker that can simulate outages: `cut` drops every proxied
/// connection and stops listening (new connections are refused, as by a stopped broker);
/// `drop_all` drops every connection and then accepts and immediately closes new ones (as a
/// load balancer without a healthy backend does); `freeze` stops forwarding bytes but keeps
/// every connection open, old and new (a peer that hangs without closing: what lapin sees when
/// its I/O loop is wedged); `restore` forwards again, on the same port.
pub struct Proxy {
    pub port: u16,
    target: SocketAddr,
    kill: tokio::sync::watch::Sender<u64>,
    dropping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    frozen: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            target,
            kill: tokio::sync::watch::Sender::new(0u64),
            dropping: Default::default(),
            frozen: tokio::sync::watch::Sender::new(false),
            task: std::sync::Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let kill = self.kill.clone();
        let target = self.target;
        let dropping = self.dropping.clone();
        let frozen = self.frozen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if dropping.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut killed = kill.subscribe();
                let mut freeze = frozen.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    loop {
                        // Frozen: hold both sockets, forward nothing, until thawed or killed.
                        if *freeze.borrow_and_update() {
                            tokio::select! {
                                _ = freeze.changed() => continue,
                                _ = killed.changed() => return,
                            }
                        }
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => return,
                            _ = killed.changed() => return,
                            _ = freeze.changed() => {}
                        }
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Drops every proxied connection and stops listening.
    pub fn cut(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
        self.kill.send_modify(|g| *g += 1);
    }

    /// Drops every proxied connection; new ones are accepted and closed at once.
    pub fn drop_all(&self) {
        self.dropping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.kill.send_modify(|g| *g += 1);
    }

    /// Stops forwarding bytes; connections stay open and new ones are accepted (and frozen).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Forwards again (listening again on the same port after `cut`).
    pub async fn restore(&self) {
        self.frozen.send_replace(false);
        self.dropping
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if self.task.lock().unwrap().is_some() {
            return;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("rebinding proxy port {}: {e}", self.port);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot rebind proxy port {}: {e}", self.port),
            }
        };
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Runs rabbitmqctl with `args`; `None` when it cannot be run (not installed, no access to the
/// node) — under `CI=true` that is a failure.
pub fn rabbitmqctl(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output();
    match output {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("rabbitmqctl {args:?} failed: {why}");
            }
            eprintln!("rabbitmqctl {args:?} failed: {why}");
            None
        }
    }
}

/// Closes the broker-side connections whose client properties carry `connection_name` (only
/// this test's: the name is unique). Returns how many were closed, `None` if rabbitmqctl is
/// unusable.
pub fn close_connections_named(connection_name: &str) -> Option<usize> {
    let listing = rabbitmqctl(&["-q", "list_connections", "pid", "client_properties"])?;
    let needle = format!("\"{connection_name}\"");
    let pids: Vec<String> = listing
        .lines()
        .filter(|line| {
            line.contains(&needle) || line.contains(&format!("<<\"{connection_name}\">>"))
        })
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    for pid in &pids {
        rabbitmqctl(&["-q", "close_connection", pid, "baton-amqp reconnect test"])?;
    }
    Some(pids.len())
}
