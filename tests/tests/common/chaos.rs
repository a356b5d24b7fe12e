//! The chaos tests' instruments: an HTTP API that counts side effects per (execution, node)
//! ([`FxApi`]), chains of slow `http` nodes that report both in their URL, a tally of the
//! completions per execution ([`Tally`]), the figures every chaos test prints and asserts on
//! ([`Figures`]). Broker outages are in `outage.rs`.
//!
//! Side effects are counted by the API, not read from the engine: a node "ran" when its request
//! reached the API, so a run the engine forgot (a worker killed after the call, before the
//! commit) still counts.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::any;
use baton_amqp::{Broker, Outgoing};
use serde_json::{Value, json};

use super::distributed::{Cluster, Observer, rune_start};

// ---------------------------------------------------------------------------------------------
// A small random source (no `rand` in this crate; reproducible from a printed seed)
// ---------------------------------------------------------------------------------------------

/// xorshift64*. `BATON_CHAOS_SEED` replays a run; otherwise seeded from a fresh UUID.
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Self {
        let seed = std::env::var("BATON_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
        eprintln!("chaos: seed={seed} (BATON_CHAOS_SEED replays it)");
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// The side-effect counting API
// ---------------------------------------------------------------------------------------------

struct FxState {
    /// When each call per (execution, node) arrived.
    calls: Mutex<HashMap<(String, String), Vec<Instant>>>,
    total: AtomicUsize,
    in_flight: AtomicUsize,
    /// Calls whose `Idempotency-Key` does not start with `<execution>:<node>:`.
    foreign_keys: AtomicUsize,
    delay_ms: (u64, u64),
    /// Spreads the delays over `delay_ms` without a lock.
    tick: AtomicU64,
}

/// Decrements the in-flight count also when the caller hangs up mid-request.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A local API on its own thread: `/fx/{execution}/{node}` (any method) counts one side effect
/// of that node in that execution, waits a delay spread over `delay_ms` (a slow external call)
/// and answers `{"node": node}`.
pub struct FxApi {
    pub url: String,
    state: Arc<FxState>,
}

impl FxApi {
    pub fn start(delay_ms: (u64, u64)) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(FxState {
            calls: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            foreign_keys: AtomicUsize::new(0),
            delay_ms,
            tick: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/fx/{execution}/{node}", any(effect))
            .with_state(state.clone());
        std::thread::spawn(move || {
            // Two threads: hundreds of concurrent slow calls must not queue behind each other.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the API's runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
                .expect("serve the API");
            });
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Calls so far, all executions.
    pub fn total(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Calls being served right now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    pub fn foreign_keys(&self) -> usize {
        self.state.foreign_keys.load(Ordering::SeqCst)
    }

    /// When each call per (execution, node) arrived, in order.
    pub fn per_node(&self) -> HashMap<(String, String), Vec<Instant>> {
        self.state.calls.lock().expect("calls lock").clone()
    }
}

async fn effect(
    State(state): State<Arc<FxState>>,
    UrlPath((execution, node)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> axum::Json<Value> {
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(&state.in_flight);
    state.total.fetch_add(1, Ordering::SeqCst);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !key.starts_with(&format!("{execution}:{node}:")) {
        state.foreign_keys.fetch_add(1, Ordering::SeqCst);
    }
    state
        .calls
        .lock()
        .expect("calls lock")
        .entry((execution, node.clone()))
        .or_default()
        .push(Instant::now());
    let (lo, hi) = state.delay_ms;
    let n = state.tick.fetch_add(1, Ordering::Relaxed);
    // A fixed spread (multiplicative hash of the call number): reproducible, no shared RNG.
    let delay = lo + n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (hi - lo + 1);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    axum::Json(json!({ "node": node }))
}

/// A chain of `n` `http` nodes `Step 1` … `Step n` (ids `s1` … `sn`), each POSTing to
/// `{{$input.base_url}}/fx/{{$input.run}}/s<i>`: the input's `run` is the execution id.
pub fn fx_chain_workflow(name: &str, n: usize) -> Value {
    let nodes: Vec<Value> = (1..=n)
        .map(|i| {
            json!({"id": format!("s{i}"), "name": format!("Step {i}"), "type": "http",
                   "parameters": {"method": "POST",
                                  "url": format!("{{{{$input.base_url}}}}/fx/{{{{$input.run}}}}/s{i}"),
                                  "body": {"step": i}, "timeout": 300}})
        })
        .collect();
    let edges: Vec<Value> = (1..n)
        .map(|i| json!({"id": format!("e{i}"), "src": format!("s{i}"), "dst": format!("s{}", i + 1)}))
        .collect();
    json!({"name": name, "version": 1, "nodes": nodes, "edges": edges})
}

/// Publishes one start message per execution id (what `baton submit` publishes, without a
/// process per execution), with the input `{"base_url": api, "run": <execution id>}`.
pub async fn start_executions(
    cluster: &Cluster,
    broker: &Broker,
    workflow: &Value,
    ids: &[String],
    api: &FxApi,
) {
    let queue = cluster.topology.execution_queue.clone();
    for chunk in ids.chunks(50) {
        let batch = chunk
            .iter()
            .map(|id| {
                let input = json!({"base_url": api.url, "run": id});
                let body = serde_json::to_vec(&rune_start(workflow, id, &input))
                    .expect("serialise a start message");
                Outgoing::new(queue.clone(), body)
            })
            .collect();
        broker.publish(batch).await.expect("publish the starts");
    }
}

/// Starts workers (with `env`) until `want` run, as an orchestrator restarts the ones that
/// exited (a worker may exit on purpose when it cannot rebuild its broker session). Returns
/// how many it started.
pub async fn replace_exited(cluster: &mut Cluster, want: usize, env: &[(&str, &str)]) -> usize {
    let mut started = 0;
    while cluster.running().len() < want {
        let i = cluster.spawn_worker(env).await;
        eprintln!(
            "started {} to replace a worker that exited",
            cluster.worker(i).name
        );
        started += 1;
    }
    started
}

// ---------------------------------------------------------------------------------------------
// Completions per execution
// ---------------------------------------------------------------------------------------------

/// Every completion seen, per execution id.
#[derive(Default)]
pub struct Tally {
    pub completions: HashMap<String, Vec<Value>>,
}

impl Tally {
    /// What is wrong with the pool after a chaos run: executions left incomplete
    /// (`all_completed` false), workers not ready, or the normal execution `probe` started
    /// afterwards not completed.
    pub fn aftermath(&self, all_completed: bool, not_ready: &[String], probe: &str) -> Vec<String> {
        let mut failed = Vec::new();
        if !all_completed {
            failed.push("not every execution completed within the bound".into());
        }
        if !not_ready.is_empty() {
            failed.push(format!("workers not ready afterwards: {not_ready:?}"));
        }
        let probe_status = self.completions.get(probe).map(|c| c[0]["status"].clone());
        if probe_status.as_ref().is_none_or(|s| s != "completed") {
            failed.push(format!("the normal execution afterwards: {probe_status:?}"));
        }
        failed
    }

    /// Reads completions for `wait` (a quiet queue returns earlier only at the deadline).
    pub async fn absorb_for(&mut self, observer: &mut Observer, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match observer.next(left).await {
                Some(seen) => self.add(seen.json()),
                None => return,
            }
        }
    }

    /// Reads completions until every one of `ids` has one, or `bound` passes. True if all did.
    pub async fn wait_all(
        &mut self,
        observer: &mut Observer,
        ids: &[String],
        bound: Duration,
    ) -> bool {
        let deadline = Instant::now() + bound;
        while !self.all_done(ids) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match observer.next(left.min(Duration::from_secs(1))).await {
                Some(seen) => self.add(seen.json()),
                None => continue,
            }
        }
        true
    }

    /// Like [`wait_all`](Tally::wait_all), restarting exited workers (see [`replace_exited`])
    /// every second meanwhile. Returns whether all completed, and how many workers it started.
    pub async fn wait_all_restarting(
        &mut self,
        observer: &mut Observer,
        ids: &[String],
        bound: Duration,
        cluster: &mut Cluster,
        workers: usize,
        env: &[(&str, &str)],
    ) -> (bool, usize) {
        let deadline = Instant::now() + bound;
        let mut restarts = 0;
        while !self.all_done(ids) {
            if Instant::now() >= deadline {
                return (false, restarts);
            }
            self.absorb_for(observer, Duration::from_secs(1)).await;
            restarts += replace_exited(cluster, workers, env).await;
        }
        (true, restarts)
    }

    /// Reads until the queue has been quiet for `quiet`: late (duplicate) completions.
    pub async fn drain(&mut self, observer: &mut Observer, quiet: Duration) {
        for seen in observer.drain(quiet).await {
            self.add(seen.json());
        }
    }

    fn add(&mut self, v: Value) {
        let id = v["execution_id"].as_str().unwrap_or_default().to_string();
        self.completions.entry(id).or_default().push(v);
    }

    pub fn all_done(&self, ids: &[String]) -> bool {
        ids.iter().all(|id| self.completions.contains_key(id))
    }

    pub fn done(&self, ids: &[String]) -> usize {
        ids.iter()
            .filter(|id| self.completions.contains_key(*id))
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// The figures
// ---------------------------------------------------------------------------------------------

/// What a chaos run measured. `repeats` counts calls beyond the first per (execution, node).
#[derive(Debug, Default)]
pub struct Figures {
    pub executions: usize,
    pub nodes: usize,
    pub faults: usize,
    pub calls: usize,
    pub repeats: usize,
    /// The most repeats within one execution.
    pub max_repeats_per_execution: usize,
    /// Executions with at least one repeat.
    pub executions_with_repeats: usize,
    /// Repeats with no fault between the call and the one before it: a repeat no kill or
    /// outage can explain (a duplicate running on down the chain).
    pub unexplained_repeats: usize,
    /// Executions with no completion.
    pub lost: usize,
    /// Completions beyond the first, summed over executions.
    pub dup_completions: usize,
    /// Completions whose status is not `completed`, by status.
    pub not_completed: BTreeMap<String, usize>,
    /// Failed completions that do not name the delivery budget (`crashed or stalled`), the one
    /// failure a kill may cause.
    pub unexplained_failures: usize,
    /// Nodes of completed executions that the API never saw called.
    pub missing_calls: usize,
    /// Calls whose `Idempotency-Key` did not name their execution and node.
    pub foreign_keys: usize,
}

impl Figures {
    /// `faults`: the windows (first, last instant) in which a fault struck: a kill is one
    /// instant (taken once the process is gone), an outage from going down to coming back.
    pub fn measure(
        api: &FxApi,
        tally: &Tally,
        ids: &[String],
        nodes: usize,
        faults: &[(Instant, Instant)],
    ) -> Self {
        let per_node = api.per_node();
        let mut f = Figures {
            executions: ids.len(),
            nodes,
            faults: faults.len(),
            calls: per_node.values().map(Vec::len).sum(),
            foreign_keys: api.foreign_keys(),
            ..Figures::default()
        };
        for id in ids {
            let mut repeats = 0;
            for i in 1..=nodes {
                let starts = per_node
                    .get(&(id.clone(), format!("s{i}")))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let n = starts.len();
                repeats += n.saturating_sub(1);
                // A repeat is explained by a fault that struck after the earlier call began and
                // before the repeat began (the node was in flight at the fault).
                f.unexplained_repeats += starts
                    .windows(2)
                    .filter(|w| !faults.iter().any(|&(from, to)| w[0] <= to && from <= w[1]))
                    .count();
                let completed = tally
                    .completions
                    .get(id)
                    .is_some_and(|c| c.iter().any(|c| c["status"] == "completed"));
                if completed && n == 0 {
                    f.missing_calls += 1;
                }
            }
            f.repeats += repeats;
            f.max_repeats_per_execution = f.max_repeats_per_execution.max(repeats);
            f.executions_with_repeats += usize::from(repeats > 0);
            match tally.completions.get(id) {
                None => f.lost += 1,
                Some(c) => {
                    f.dup_completions += c.len() - 1;
                    for c in c {
                        if c["status"] != "completed" {
                            let status = c["status"].as_str().unwrap_or("?").to_string();
                            *f.not_completed.entry(status).or_default() += 1;
                            if !c.to_string().contains("crashed or stalled") {
                                f.unexplained_failures += 1;
                            }
                        }
                    }
                }
            }
        }
        f
    }

    /// The line every chaos test prints (grep `^chaos:`).
    pub fn summary(&self, test: &str) -> String {
        format!(
            "chaos: test={test} executions={} nodes={} kills={} calls={} repeats={} \
             max_repeats_per_execution={} executions_with_repeats={} unexplained_repeats={} \
             lost={} dup_completions={} not_completed={:?} missing_calls={} foreign_keys={}",
            self.executions,
            self.nodes,
            self.faults,
            self.calls,
            self.repeats,
            self.max_repeats_per_execution,
            self.executions_with_repeats,
            self.unexplained_repeats,
            self.lost,
            self.dup_completions,
            self.not_completed,
            self.missing_calls,
            self.foreign_keys,
        )
    }

    /// The failures of the bounds every chaos test shares, one line each (empty: all held).
    /// `max_repeats`: the repeats allowed in total.
    pub fn violations(
        &self,
        max_repeats: usize,
        max_repeats_per_execution: Option<usize>,
    ) -> Vec<String> {
        let mut v = Vec::new();
        if self.lost > 0 {
            v.push(format!("{} executions lost (no completion)", self.lost));
        }
        if self.dup_completions > 0 {
            v.push(format!("{} duplicated completions", self.dup_completions));
        }
        if self.repeats > max_repeats {
            v.push(format!(
                "{} repeated side effects, more than the bound {max_repeats}",
                self.repeats
            ));
        }
        if self.unexplained_repeats > 0 {
            v.push(format!(
                "{} repeated side effects with no fault while their node was in flight",
                self.unexplained_repeats
            ));
        }
        if let Some(bound) = max_repeats_per_execution
            && self.max_repeats_per_execution > bound
        {
            v.push(format!(
                "an execution repeated {} side effects, more than {bound}",
                self.max_repeats_per_execution
            ));
        }
        if self.unexplained_failures > 0 {
            v.push(format!(
                "{} executions failed for another reason than the delivery budget: {:?}",
                self.unexplained_failures, self.not_completed
            ));
        }
        if self.missing_calls > 0 {
            v.push(format!(
                "{} nodes of completed executions were never called",
                self.missing_calls
            ));
        }
        if self.foreign_keys > 0 {
            v.push(format!(
                "{} calls without their execution's idempotency key",
                self.foreign_keys
            ));
        }
        v
    }
}
