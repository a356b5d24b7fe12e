//! Shared harness for the engine semantics tests: the embedded runtime with a recorder of every
//! status and completion event, and a local axum server whose endpoints fail, stall, count
//! calls or wait for the test to open a gate. Nothing is mocked: real workflows run through
//! `EmbeddedRuntime` with the built-in node registry.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use baton_core::CompiledWorkflow;
use baton_core::message::{Completion, NodeStatus, StatusEvent};
use baton_memory::{EmbeddedRuntime, Event};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

/// Upper bound for anything a test awaits. Never an assertion of speed: only a guard so a
/// broken engine fails the test instead of hanging it.
pub const BOUND: Duration = Duration::from_secs(30);

/// How long to keep listening after a completion before asserting that something did NOT
/// happen (a second completion, a cancelled branch's successor).
pub const GRACE: Duration = Duration::from_millis(400);

pub fn compile(doc: &Value) -> Arc<CompiledWorkflow> {
    let registry = baton_nodes::registry();
    match CompiledWorkflow::compile(doc, &registry) {
        Ok(wf) => Arc::new(wf),
        Err(e) => panic!("test workflow does not compile: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Workflow building blocks
// ---------------------------------------------------------------------------------------------

pub fn log(id: &str, message: &str) -> Value {
    json!({"id": id, "name": id, "type": "log", "parameters": {"message": message}})
}

pub fn http(id: &str, url: &str) -> Value {
    json!({"id": id, "name": id, "type": "http", "parameters": {"url": url}})
}

/// An http node that fails on 5xx responses (`raise_on_status: "5xx"`).
pub fn http_raising(id: &str, url: &str) -> Value {
    json!({"id": id, "name": id, "type": "http", "parameters": {"url": url, "raise_on_status": "5xx"}})
}

pub fn wait_ms(id: &str, amount: Value) -> Value {
    json!({"id": id, "name": id, "type": "wait", "parameters": {"amount": amount, "unit": "milliseconds"}})
}

pub fn conditional(id: &str, expression: &str) -> Value {
    json!({"id": id, "name": id, "type": "conditional", "parameters": {"expression": expression}})
}

pub fn merge(id: &str, mode: &str) -> Value {
    json!({"id": id, "name": id, "type": "merge", "parameters": {"wait_mode": mode}})
}

pub fn split(id: &str, input_array: &str) -> Value {
    json!({"id": id, "name": id, "type": "split", "parameters": {"input_array": input_array}})
}

pub fn aggregator(id: &str) -> Value {
    json!({"id": id, "name": id, "type": "aggregator", "parameters": {}})
}

pub fn edge(src: &str, dst: &str) -> Value {
    json!({"id": format!("{src}->{dst}"), "src": src, "dst": dst})
}

pub fn edge_on(src: &str, dst: &str, on: &str) -> Value {
    json!({"id": format!("{src}->{dst}"), "src": src, "dst": dst, "on": on})
}

pub fn workflow(nodes: Vec<Value>, edges: Vec<Value>) -> Value {
    json!({"name": "semantics", "nodes": nodes, "edges": edges})
}

/// Adds (or replaces) a top-level field of a node object.
pub fn with(mut node: Value, key: &str, value: Value) -> Value {
    node.as_object_mut()
        .expect("node object")
        .insert(key.to_string(), value);
    node
}

// ---------------------------------------------------------------------------------------------
// Runtime harness
// ---------------------------------------------------------------------------------------------

/// An embedded runtime plus a recorder of every event it emits, in emission order.
pub struct Harness {
    pub runtime: EmbeddedRuntime,
    events: Arc<Mutex<Vec<Event>>>,
    lagged: Arc<Mutex<u64>>,
    seen: watch::Receiver<usize>,
}

impl Harness {
    /// Must be called inside a tokio runtime.
    pub fn new() -> Self {
        Self::with_runtime(EmbeddedRuntime::start(baton_nodes::registry(), 64))
    }

    /// Records the events of `runtime` (e.g. one started with a test's clock).
    pub fn with_runtime(runtime: EmbeddedRuntime) -> Self {
        let mut rx = runtime.events().subscribe();
        let events = Arc::new(Mutex::new(Vec::new()));
        let lagged = Arc::new(Mutex::new(0));
        let (tx, seen) = watch::channel(0usize);
        let (sink, lag) = (events.clone(), lagged.clone());
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        let n = {
                            let mut v = sink.lock().unwrap();
                            v.push(ev);
                            v.len()
                        };
                        tx.send_replace(n);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => *lag.lock().unwrap() += n,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Self {
            runtime,
            events,
            lagged,
            seen,
        }
    }

    /// Runs a workflow to its completion (bounded by [`BOUND`]) and waits until the recorder has
    /// seen that completion, so every event emitted before it is recorded.
    pub async fn run(&self, doc: &Value, execution_id: &str, input: Value) -> Completion {
        self.run_within(BOUND, compile(doc), execution_id, input)
            .await
    }

    pub async fn run_within(
        &self,
        bound: Duration,
        wf: Arc<CompiledWorkflow>,
        execution_id: &str,
        input: Value,
    ) -> Completion {
        let completion = tokio::time::timeout(bound, self.runtime.run(wf, execution_id, input))
            .await
            .unwrap_or_else(|_| {
                panic!("execution `{execution_id}` did not complete within {bound:?}")
            })
            .expect("runtime error");
        self.completion_event(execution_id).await;
        completion
    }

    /// Waits (bounded) until the recorder has seen the completion of `execution_id`.
    pub async fn completion_event(&self, execution_id: &str) -> Completion {
        match self
            .until(|e| matches!(e, Event::Completion(c) if c.execution_id == execution_id))
            .await
        {
            Event::Completion(c) => c,
            Event::Status(_) => unreachable!(),
        }
    }

    /// Waits (bounded) for the first recorded event matching `pred`.
    pub async fn until(&self, pred: impl Fn(&Event) -> bool) -> Event {
        let mut seen = self.seen.clone();
        let wait = async {
            loop {
                seen.borrow_and_update();
                if let Some(e) = self
                    .events
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|e| pred(e))
                    .cloned()
                {
                    return e;
                }
                seen.changed().await.expect("event recorder stopped");
            }
        };
        tokio::time::timeout(BOUND, wait)
            .await
            .expect("awaited event did not arrive within 30 s")
    }

    /// Waits (bounded) for a status of `node_id` in `execution_id` with `status`.
    pub async fn until_status(
        &self,
        execution_id: &str,
        node_id: &str,
        status: NodeStatus,
    ) -> StatusEvent {
        match self
            .until(|e| matches!(e, Event::Status(s) if s.execution_id == execution_id && s.node_id == node_id && s.status == status))
            .await
        {
            Event::Status(s) => s,
            Event::Completion(_) => unreachable!(),
        }
    }

    pub fn events(&self) -> Vec<Event> {
        assert_eq!(
            *self.lagged.lock().unwrap(),
            0,
            "the event recorder lagged and lost events"
        );
        self.events.lock().unwrap().clone()
    }

    /// Every status event of an execution, in emission order.
    pub fn statuses(&self, execution_id: &str) -> Vec<StatusEvent> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Status(s) if s.execution_id == execution_id => Some(s),
                _ => None,
            })
            .collect()
    }

    pub fn statuses_of(&self, execution_id: &str, node_id: &str) -> Vec<StatusEvent> {
        self.statuses(execution_id)
            .into_iter()
            .filter(|s| s.node_id == node_id)
            .collect()
    }

    /// The statuses a node went through, in order.
    pub fn sequence(&self, execution_id: &str, node_id: &str) -> Vec<NodeStatus> {
        self.statuses_of(execution_id, node_id)
            .iter()
            .map(|s| s.status)
            .collect()
    }

    /// How many times the node started running (its `running` statuses).
    pub fn runs(&self, execution_id: &str, node_id: &str) -> usize {
        self.sequence(execution_id, node_id)
            .iter()
            .filter(|s| **s == NodeStatus::Running)
            .count()
    }

    pub fn ran(&self, execution_id: &str, node_id: &str) -> bool {
        self.runs(execution_id, node_id) > 0
    }

    /// Index in the event log of the first event matching `pred`.
    pub fn position(&self, pred: impl Fn(&Event) -> bool) -> Option<usize> {
        self.events().iter().position(pred)
    }

    pub fn status_position(
        &self,
        execution_id: &str,
        node_id: &str,
        status: NodeStatus,
    ) -> Option<usize> {
        self.position(|e| matches!(e, Event::Status(s) if s.execution_id == execution_id && s.node_id == node_id && s.status == status))
    }

    pub fn completion_position(&self, execution_id: &str) -> Option<usize> {
        self.position(|e| matches!(e, Event::Completion(c) if c.execution_id == execution_id))
    }

    pub fn completions(&self, execution_id: &str) -> Vec<Completion> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Completion(c) if c.execution_id == execution_id => Some(c),
                _ => None,
            })
            .collect()
    }
}

/// Panics with the failure reason if the execution did not complete.
pub fn assert_completed(c: &Completion) {
    assert_eq!(
        c.status.as_str(),
        "completed",
        "expected `completed`, got `{}`: {:?}",
        c.status.as_str(),
        c.failure_reason
    );
}

pub fn assert_halted(c: &Completion) -> String {
    assert_eq!(
        c.status.as_str(),
        "halted",
        "expected `halted`; final context: {:?}",
        c.final_context
    );
    c.failure_reason
        .clone()
        .expect("a halted completion has a failure reason")
}

/// A node's output in the final context (`$<name>`).
pub fn out<'a>(c: &'a Completion, name: &str) -> &'a Value {
    c.final_context.get(&format!("${name}")).unwrap_or_else(|| {
        panic!(
            "`${name}` is not in the final context: {:?}",
            keys(&c.final_context)
        )
    })
}

pub fn keys(m: &Map<String, Value>) -> Vec<String> {
    m.keys().cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Local HTTP server
// ---------------------------------------------------------------------------------------------

struct ServerState {
    hits: Mutex<HashMap<String, usize>>,
    open: Mutex<HashSet<String>>,
    changed: watch::Sender<u64>,
}

impl ServerState {
    fn hit(&self, key: &str) -> usize {
        let n = {
            let mut hits = self.hits.lock().unwrap();
            let n = hits.entry(key.to_string()).or_default();
            *n += 1;
            *n
        };
        self.changed.send_modify(|v| *v += 1);
        n
    }

    fn hits(&self, key: &str) -> usize {
        self.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn is_open(&self, key: &str) -> bool {
        self.open.lock().unwrap().contains(key)
    }

    async fn until(&self, cond: impl Fn(&Self) -> bool) {
        let mut rx = self.changed.subscribe();
        loop {
            if cond(self) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A real HTTP server on 127.0.0.1 (random port), alive for the test's duration.
///
/// - `GET /ok/{key}` → 200 `{"key", "hit"}`
/// - `GET /code/{code}` → that status, `{"code"}`
/// - `GET /sleep/{ms}` → sleeps, then 200 `{"slept"}`
/// - `GET /flaky/{key}/{failures}` → 503 for the first `failures` calls, then 200 `{"calls"}`
/// - `GET /gate/{key}` → waits until the test opens the gate, then 200 `{"key"}`
/// - `GET /after/{key}/{code}` → waits until `key` has been hit once, then that status
///
/// Every endpoint counts its calls under its key (`/code` and `/sleep` under `code:<code>`
/// and `sleep`).
#[derive(Clone)]
pub struct Server {
    pub base: String,
    state: Arc<ServerState>,
}

impl Server {
    pub async fn start() -> Self {
        let state = Arc::new(ServerState {
            hits: Mutex::new(HashMap::new()),
            open: Mutex::new(HashSet::new()),
            changed: watch::Sender::new(0),
        });
        let app = Router::new()
            .route("/ok/{key}", get(ok))
            .route("/code/{code}", get(code))
            .route("/sleep/{ms}", get(sleep))
            .route("/flaky/{key}/{failures}", get(flaky))
            .route("/gate/{key}", get(gate))
            .route("/after/{key}/{code}", get(after))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test server");
        let addr = listener.local_addr().expect("test server address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}"),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn hits(&self, key: &str) -> usize {
        self.state.hits(key)
    }

    /// Lets every request waiting on `/gate/{key}` (now or later) through.
    pub fn open(&self, key: &str) {
        self.state.open.lock().unwrap().insert(key.to_string());
        self.state.changed.send_modify(|v| *v += 1);
    }

    /// Waits (bounded) until `key` has been called at least `n` times.
    pub async fn until_hits(&self, key: &str, n: usize) {
        tokio::time::timeout(BOUND, self.state.until(|s| s.hits(key) >= n))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "`{key}` was not called {n} times within 30 s (got {})",
                    self.hits(key)
                )
            });
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn ok(State(s): State<Arc<ServerState>>, Path(key): Path<String>) -> Json<Value> {
    let hit = s.hit(&key);
    Json(json!({"key": key, "hit": hit}))
}

async fn code(State(s): State<Arc<ServerState>>, Path(code): Path<u16>) -> impl IntoResponse {
    s.hit(&format!("code:{code}"));
    (status(code), Json(json!({"code": code})))
}

async fn sleep(State(s): State<Arc<ServerState>>, Path(ms): Path<u64>) -> Json<Value> {
    s.hit("sleep");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"slept": ms}))
}

async fn flaky(
    State(s): State<Arc<ServerState>>,
    Path((key, failures)): Path<(String, usize)>,
) -> impl IntoResponse {
    let n = s.hit(&key);
    if n <= failures {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"calls": n})))
    } else {
        (StatusCode::OK, Json(json!({"calls": n})))
    }
}

async fn gate(State(s): State<Arc<ServerState>>, Path(key): Path<String>) -> Json<Value> {
    s.hit(&key);
    s.until(|st| st.is_open(&key)).await;
    Json(json!({"key": key}))
}

async fn after(
    State(s): State<Arc<ServerState>>,
    Path((key, code)): Path<(String, u16)>,
) -> impl IntoResponse {
    s.until(|st| st.hits(&key) >= 1).await;
    (status(code), Json(json!({"after": key})))
}
