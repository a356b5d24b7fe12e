//! The `Engine` (ports, node registry, cancellation tokens) with its constructor and builders,
//! and what the transport sees of a hop: `StartRequest` and `HopOutcome`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use baton_core::message::StatusMode;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::node::NodeRegistry;
use crate::ports::{
    CredentialVault, DefinitionCache, EventSink, HopQueue, StatePorts, WorkflowCatalog,
};

/// How deep sub-workflows nest unless configured otherwise (a top-level execution is depth 0).
pub const DEFAULT_MAX_WORKFLOW_DEPTH: u32 = 8;

/// How long a claim to send a completion holds before another worker may take it over (its
/// holder died between claiming and marking it sent).
pub const COMPLETION_LEASE_MS: u64 = 15_000;

/// How long a worker's claim on running a hop holds unless renewed (the running hop renews it
/// every third of this). A copy of the hop that meets the claim looks again when it expires,
/// so this is also how long a hop whose worker died waits before another runs it: short, so
/// that a dead worker's execution goes on within seconds (renewals are one Redis call a second
/// per hop running that long); a worker stalled for longer than this may see a copy run too.
pub const HOP_LEASE_MS: u64 = 3_000;

/// What starts an execution.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub workflow_id: String,
    pub execution_id: String,
    /// Initial context (`$input`, `$trigger`, keys a Rune master seeds).
    pub seed: Map<String, Value>,
    /// Start at this node instead of the workflow's start nodes (Rune's `current_node`).
    pub start_at: Option<String>,
    pub traceparent: Option<String>,
}

/// What became of a message, for the transport to ack, drop or dead-letter.
#[derive(Debug, Clone, PartialEq)]
pub enum HopOutcome {
    /// Processed (or a harmless duplicate); ack.
    Done,
    /// The execution already finished (halted, cancelled, completed); ack and forget.
    Dropped,
    /// The message can never be processed; dead-letter it with this reason.
    Poison(String),
}

/// The engine: ports plus the node registry. Cheap to share (`Arc`). Its rooms (the sibling
/// modules of `hop`) each add one focused `impl Engine`.
pub struct Engine {
    pub(super) store: Arc<dyn StatePorts>,
    pub(super) queue: Arc<dyn HopQueue>,
    pub(super) events: Arc<dyn EventSink>,
    pub(super) definitions: Arc<dyn DefinitionCache>,
    pub(super) nodes: Arc<NodeRegistry>,
    pub(super) cancels: Mutex<HashMap<String, CancellationToken>>,
    /// The node runs in flight in this process, per execution, for cancelling some of them (a
    /// race's losers) without the rest.
    pub(super) runs: super::runs::RunningNodes,
    /// Where `workflow` nodes find the workflows they start; `None`: such nodes fail.
    pub(super) catalog: Option<Arc<dyn WorkflowCatalog>>,
    /// How deep sub-workflows may nest.
    pub(super) max_workflow_depth: u32,
    /// Where `{"$credential": id}` references are revealed; `None`: nodes using one fail.
    pub(super) vault: Option<Arc<dyn CredentialVault>>,
    pub(super) completion_lease_ms: u64,
    /// Where every hop reads the time and waits for it.
    pub(super) clock: Arc<dyn Clock>,
    /// The most items a split fans out to (a node's `max_items` may lower it).
    pub(super) max_split_items: usize,
    /// This process's id as the owner of hop claims (see `ExecutionStore::claim_hop`).
    pub(super) worker_id: String,
    pub(super) hop_lease_ms: u64,
    /// The hops (`execution_id` ␟ hop id) this process is running now: a second copy of one
    /// arriving here is held off like one meeting another worker's claim (the store cannot
    /// tell two runs of one owner apart).
    pub(super) running: Mutex<HashSet<String>>,
    /// Whether each node attempt runs in a `node` span (on when traces are exported).
    pub(super) node_spans: bool,
    /// How much this process publishes about node runs (a workflow may ask for less).
    pub(super) status_mode: StatusMode,
    /// Whether a hop handles the aggregator and merge arrivals it hands on itself instead of
    /// publishing them (`local.rs`).
    pub(super) local_arrivals: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn StatePorts>,
        queue: Arc<dyn HopQueue>,
        events: Arc<dyn EventSink>,
        definitions: Arc<dyn DefinitionCache>,
        nodes: Arc<NodeRegistry>,
    ) -> Self {
        Self {
            store,
            queue,
            events,
            definitions,
            nodes,
            cancels: Mutex::new(HashMap::new()),
            runs: super::runs::RunningNodes::default(),
            catalog: None,
            max_workflow_depth: DEFAULT_MAX_WORKFLOW_DEPTH,
            vault: None,
            completion_lease_ms: COMPLETION_LEASE_MS,
            clock: Arc::new(SystemClock),
            max_split_items: baton_core::limits::DEFAULT_MAX_SPLIT_ITEMS,
            worker_id: format!("w-{:032x}", rand::random::<u128>()),
            hop_lease_ms: HOP_LEASE_MS,
            running: Mutex::new(HashSet::new()),
            node_spans: false,
            status_mode: StatusMode::Full,
            local_arrivals: true,
        }
    }

    /// Runs each node attempt in a `node` span (node id and type, attempt, outcome): on when
    /// the process exports traces, off (no span built) otherwise.
    pub fn with_node_spans(mut self, on: bool) -> Self {
        self.node_spans = on;
        self
    }

    /// Names this process as the owner of the hop claims it takes (default: a random id; it
    /// must differ between processes).
    pub fn with_worker_id(mut self, worker_id: impl Into<String>) -> Self {
        self.worker_id = worker_id.into();
        self
    }

    /// How long a hop claim holds unless renewed (default [`HOP_LEASE_MS`], at least 300 ms).
    pub fn with_hop_lease_ms(mut self, lease_ms: u64) -> Self {
        self.hop_lease_ms = lease_ms.max(300);
        self
    }

    /// Publishes node statuses in `mode` (default `full`); a workflow's `status_mode` may lower
    /// it for its runs, never raise it (RFC 0011).
    pub fn with_status_mode(mut self, mode: StatusMode) -> Self {
        self.status_mode = mode;
        self
    }

    /// Handles the aggregator and merge arrivals a hop hands on in this process (default) or
    /// publishes them like every other message (RFC 0011).
    pub fn with_local_arrivals(mut self, on: bool) -> Self {
        self.local_arrivals = on;
        self
    }

    /// The id this process claims hops under.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// How long a claim to send a completion holds (default [`COMPLETION_LEASE_MS`]).
    pub fn with_completion_lease_ms(mut self, lease_ms: u64) -> Self {
        self.completion_lease_ms = lease_ms;
        self
    }

    /// Reads the time from `clock` (default [`SystemClock`]): timers, leases, timestamps and
    /// the nodes' `now`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock this engine reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Reveals nodes' `{"$credential": "<id>"}` references from `vault` right before they run.
    pub fn with_vault(mut self, vault: Arc<dyn CredentialVault>) -> Self {
        self.vault = Some(vault);
        self
    }

    /// Lets `workflow` nodes start workflows from `catalog` (without one they fail with a clear
    /// error).
    pub fn with_catalog(mut self, catalog: Arc<dyn WorkflowCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Sets how deep sub-workflows may nest (default [`DEFAULT_MAX_WORKFLOW_DEPTH`]).
    pub fn with_max_workflow_depth(mut self, depth: u32) -> Self {
        self.max_workflow_depth = depth;
        self
    }

    /// Caps every split at `items` (default [`baton_core::limits::DEFAULT_MAX_SPLIT_ITEMS`]);
    /// a message claiming a larger split is poison.
    pub fn with_max_split_items(mut self, items: usize) -> Self {
        self.max_split_items = items;
        self
    }

    /// The workflow catalog, if one is configured.
    pub fn catalog(&self) -> Option<&Arc<dyn WorkflowCatalog>> {
        self.catalog.as_ref()
    }

    pub fn registry(&self) -> &NodeRegistry {
        &self.nodes
    }

    pub(super) fn cancel_token(&self, execution_id: &str) -> CancellationToken {
        let mut map = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up before inserting: the key is copied once per execution, not per hop.
        if let Some(token) = map.get(execution_id) {
            return token.clone();
        }
        map.entry(execution_id.to_string()).or_default().clone()
    }

    pub(super) fn forget_execution(&self, execution_id: &str) {
        self.runs.forget(execution_id);
        let mut map = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.remove(execution_id) {
            t.cancel();
        }
    }

    /// Aborts nodes of `execution_id` running in this process (a cancellation seen elsewhere).
    pub fn cancel_local(&self, execution_id: &str) {
        if let Some(t) = self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(execution_id)
        {
            t.cancel();
        }
    }
}
