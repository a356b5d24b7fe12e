//! The hop: take one message, run (or skip, or join at) its node, store the output, and hand
//! the baton on — successor messages, status events and, at the end, exactly one completion.
//!
//! Order of effects, so a crash at any point is recoverable by redelivery: read context → run
//! the node → commit output and token count atomically (deduplicated by hop id) → status →
//! successor messages → completion. A redelivered message whose hop was committed re-publishes
//! the same successors without re-running the node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baton_core::graph::{CompiledNode, CompiledWorkflow, RouteOutcome};
use baton_core::message::{
    Completion, ErrorInfo, ExecutionStatus, Frame, HopKind, HopMessage, NodeStatus, StatusEvent,
    scope_chain, scope_of,
};
use baton_core::spec::NodeClass;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::node::{NodeError, NodeInput, NodeRegistry};
use crate::ports::WorkflowCatalog;

mod subworkflow;
use crate::ports::{
    CommitOutcome, CompletionClaim, CredentialVault, DefinitionCache, EventSink, ExecutionStart,
    ExecutionStore, HopCommit, HopQueue, JoinOutcome, Lifecycle, PortError, RevealError,
};
pub use subworkflow::{
    CHILD_KEY_PREFIX, DEFAULT_MAX_WORKFLOW_DEPTH, PARENT_KEY, SUBWORKFLOW_TYPE, child_execution_id,
};

/// How long a claim to send a completion holds before another worker may take it over (its
/// holder died between claiming and marking it sent).
pub const COMPLETION_LEASE_MS: u64 = 15_000;

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

/// The engine: ports plus the node registry. Cheap to share (`Arc`).
pub struct Engine {
    store: Arc<dyn ExecutionStore>,
    queue: Arc<dyn HopQueue>,
    events: Arc<dyn EventSink>,
    definitions: Arc<dyn DefinitionCache>,
    nodes: Arc<NodeRegistry>,
    cancels: Mutex<HashMap<String, CancellationToken>>,
    /// Where `workflow` nodes find the workflows they start; `None`: such nodes fail.
    catalog: Option<Arc<dyn WorkflowCatalog>>,
    /// How deep sub-workflows may nest.
    max_workflow_depth: u32,
    /// Where `{"$credential": id}` references are revealed; `None`: nodes using one fail.
    vault: Option<Arc<dyn CredentialVault>>,
    completion_lease_ms: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A node run's result before routing.
/// How long a duplicate start waits for the first one to publish the execution's first
/// messages before it presumes that one dead and publishes them itself.
const START_GRACE_MS: u64 = 3_000;

/// The messages a committed hop handed on, as recorded for a redelivery to replay: published
/// at once (`now`) and after a delay (`later`: timers, retry backoff).
#[derive(serde::Deserialize)]
struct Handoff {
    #[serde(default)]
    now: Vec<HopMessage>,
    #[serde(default)]
    later: Vec<(u64, HopMessage)>,
}

#[derive(serde::Serialize)]
struct HandoffRef<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    now: &'a [HopMessage],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    later: &'a [(u64, &'a HopMessage)],
}

enum RunResult {
    Ok(Value),
    Failed(NodeError),
}

impl Engine {
    pub fn new(
        store: Arc<dyn ExecutionStore>,
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
            catalog: None,
            max_workflow_depth: DEFAULT_MAX_WORKFLOW_DEPTH,
            vault: None,
            completion_lease_ms: COMPLETION_LEASE_MS,
        }
    }

    /// How long a claim to send a completion holds (default [`COMPLETION_LEASE_MS`]).
    pub fn with_completion_lease_ms(mut self, lease_ms: u64) -> Self {
        self.completion_lease_ms = lease_ms;
        self
    }

    /// Reveals nodes' `{"$credential": "<id>"}` references from `vault` right before they run.
    pub fn with_vault(mut self, vault: Arc<dyn CredentialVault>) -> Self {
        self.vault = Some(vault);
        self
    }

    pub fn registry(&self) -> &NodeRegistry {
        &self.nodes
    }

    fn cancel_token(&self, execution_id: &str) -> CancellationToken {
        let mut map = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(execution_id.to_string()).or_default().clone()
    }

    fn forget_execution(&self, execution_id: &str) {
        let mut map = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.remove(execution_id) {
            t.cancel();
        }
    }

    /// Starts an execution of `workflow` (already in the definition cache under its
    /// reference).
    pub async fn start(
        &self,
        workflow: &CompiledWorkflow,
        request: StartRequest,
    ) -> Result<(), PortError> {
        let StartRequest {
            workflow_id,
            execution_id,
            seed,
            start_at,
            traceparent,
        } = request;
        let (workflow_id, execution_id) = (workflow_id.as_str(), execution_id.as_str());
        let workflow_ref = workflow.reference.as_str();
        let starts: Vec<&CompiledNode> = match start_at.as_deref() {
            Some(id) => workflow.node(id).into_iter().collect(),
            None => workflow.start.iter().map(|i| &workflow.nodes[*i]).collect(),
        };
        let start = ExecutionStart {
            execution_id: execution_id.to_string(),
            workflow_id: workflow_id.to_string(),
            workflow_ref: workflow_ref.to_string(),
            seed,
            initial_tokens: starts.len() as i64,
            started_at_ms: now_ms(),
        };
        if !self.store.start(&start).await? {
            // A duplicate start. The first one may still be publishing (give it a moment) or
            // may have died between creating the execution and publishing its first messages:
            // then publish them now (a start node whose hop already committed is not run twice,
            // `begin_hop` sees the commit).
            loop {
                let Some((started_at, published)) = self.store.start_state(execution_id).await?
                else {
                    return Ok(());
                };
                if published {
                    return Ok(());
                }
                match self.store.lifecycle(execution_id).await? {
                    Lifecycle::Running => {}
                    // Never published, yet finished: cancelled before it started. No hop ever
                    // ran (no `on_failure` either), so its completion is due now.
                    Lifecycle::Finished {
                        completion_sent: false,
                        ..
                    } => return self.emit_completion_inner(workflow_id, execution_id).await,
                    _ => return Ok(()),
                }
                if now_ms() >= started_at + START_GRACE_MS {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if !matches!(
                self.store.lifecycle(execution_id).await?,
                Lifecycle::Running
            ) {
                return Ok(());
            }
            tracing::warn!(
                execution_id,
                "execution created but never started: publishing its first messages"
            );
        } else if starts.is_empty() {
            return self
                .complete(
                    workflow,
                    workflow_id,
                    execution_id,
                    ExecutionStatus::Completed,
                    None,
                )
                .await;
        }
        let messages = starts
            .iter()
            .map(|n| HopMessage {
                execution_id: execution_id.to_string(),
                workflow_id: workflow_id.to_string(),
                workflow_ref: workflow_ref.to_string(),
                node_id: n.id.clone(),
                kind: HopKind::Run,
                from_node: None,
                from_edge: None,
                lineage: Vec::new(),
                attempt: 1,
                traceparent: traceparent.clone(),
            })
            .collect();
        self.queue.publish(messages).await?;
        self.store.mark_started(execution_id).await
    }

    /// Cancels a running execution: it halts with reason "cancelled", running nodes are aborted
    /// and queued messages are dropped when they arrive. False if it was not running (or its
    /// definition is not loaded in this process).
    pub async fn cancel(&self, execution_id: &str) -> Result<bool, PortError> {
        let Some((workflow_id, workflow_ref)) = self.store.identity(execution_id).await? else {
            // Its start may still be on its way (on another worker): it will start halted.
            self.store.cancel_unstarted(execution_id).await?;
            return Ok(false);
        };
        let Some(wf) = self.definitions.load(&workflow_ref).await? else {
            return Ok(false);
        };
        self.halt(
            &wf,
            &workflow_id,
            execution_id,
            ExecutionStatus::Halted,
            "execution cancelled by request".into(),
            "",
        )
        .await
    }

    /// Fails an execution the engine cannot run (poison input): final status `failed`.
    pub async fn fail_execution(
        &self,
        workflow_id: &str,
        execution_id: &str,
        reason: String,
    ) -> Result<bool, PortError> {
        if !matches!(
            self.store.lifecycle(execution_id).await?,
            Lifecycle::Running
        ) {
            return Ok(false);
        }
        if !self
            .store
            .finish(execution_id, ExecutionStatus::Failed, Some(reason))
            .await?
        {
            return Ok(false);
        }
        self.forget_execution(execution_id);
        self.emit_completion_inner(workflow_id, execution_id)
            .await?;
        Ok(true)
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

    /// Processes one message.
    pub async fn handle(&self, msg: HopMessage) -> Result<HopOutcome, PortError> {
        let Some(wf) = self.definitions.get(&msg.workflow_ref) else {
            return Ok(HopOutcome::Poison(format!(
                "unknown workflow_ref `{}`",
                msg.workflow_ref
            )));
        };
        let Some(node) = wf.node(&msg.node_id) else {
            return Ok(HopOutcome::Poison(format!(
                "node `{}` is not in workflow `{}`",
                msg.node_id, msg.workflow_ref
            )));
        };
        // The common case (an ordinary node run) reads lifecycle and context in one round trip.
        // (Not `OnFailure`: it runs after the execution finished, when `begin_hop` reads nothing.)
        let plain_run =
            msg.kind == HopKind::Run && !node.is_join && node.class != NodeClass::Aggregator;
        let (lifecycle, preloaded) = if plain_run {
            let begun = self
                .store
                .begin_hop(
                    &msg.execution_id,
                    &msg.hop_id(),
                    &scope_chain(&msg.lineage),
                    &node.reads,
                )
                .await?;
            if let Some((handed_on, pending)) = begun.committed
                && !handed_on.is_empty()
            {
                return Box::pin(self.replay(&wf, &msg, &handed_on, pending)).await;
            }
            (begun.lifecycle, Some(begun.context))
        } else {
            (self.store.lifecycle(&msg.execution_id).await?, None)
        };
        match lifecycle {
            Lifecycle::Unknown => {
                return Ok(HopOutcome::Poison(format!(
                    "unknown execution `{}`",
                    msg.execution_id
                )));
            }
            Lifecycle::Finished {
                status,
                completion_sent,
                ..
            } if msg.kind != HopKind::OnFailure => {
                // The hop that finished the execution may have died before its completion went
                // out: a redelivery that finds it unsent sends it (claimed: once), unless the
                // `on_failure` node will (it runs after a failure and sends it itself): then,
                // if this hop is the one that halted the execution, it re-publishes the
                // `on_failure` message its first delivery may have lost. Only where messages
                // are redelivered (the embedded runtime never loses a hop).
                let on_failure_sends =
                    wf.on_failure.is_some() && status != ExecutionStatus::Completed;
                if !completion_sent && self.store.replays_hops() {
                    if on_failure_sends {
                        Box::pin(self.recover_on_failure(&wf, &msg)).await?;
                    } else {
                        self.emit_completion_inner(&msg.workflow_id, &msg.execution_id)
                            .await?;
                    }
                }
                return Ok(HopOutcome::Dropped);
            }
            _ => {}
        }
        match msg.kind {
            HopKind::Skip => Box::pin(self.on_skip(&wf, node, &msg)).await,
            HopKind::EmptySplit => {
                Box::pin(self.release_aggregator(&wf, node, &msg, &msg.lineage, 0, Vec::new()))
                    .await
            }
            HopKind::Resume => Box::pin(self.on_resume(&wf, node, &msg)).await,
            HopKind::SignalTimeout => Box::pin(self.on_signal_timeout(&wf, node, &msg)).await,
            HopKind::OnFailure => {
                // A redelivered (or re-published) `on_failure` message whose node already ran
                // does not run it again: it only makes sure the completion went out.
                if self.store.replays_hops()
                    && self
                        .store
                        .committed_hop(&msg.execution_id, &msg.hop_id())
                        .await?
                        .is_some()
                {
                    self.emit_completion_inner(&msg.workflow_id, &msg.execution_id)
                        .await?;
                    return Ok(HopOutcome::Dropped);
                }
                self.execute(&wf, node, &msg, preloaded).await
            }
            HopKind::Run if node.class == NodeClass::Aggregator => {
                Box::pin(self.arrive_aggregator(&wf, node, &msg, true)).await
            }
            HopKind::Run if node.is_join => Box::pin(self.arrive_join(&wf, node, &msg, true)).await,
            HopKind::Run => self.execute(&wf, node, &msg, preloaded).await,
        }
    }

    fn child(
        &self,
        msg: &HopMessage,
        from: &CompiledNode,
        wf: &CompiledWorkflow,
        edge: usize,
        kind: HopKind,
        lineage: Vec<Frame>,
    ) -> HopMessage {
        let e = &wf.edges[edge];
        HopMessage {
            execution_id: msg.execution_id.clone(),
            workflow_id: msg.workflow_id.clone(),
            workflow_ref: msg.workflow_ref.clone(),
            node_id: wf.nodes[e.dst].id.clone(),
            kind,
            from_node: Some(from.id.clone()),
            from_edge: Some(e.id.clone()),
            lineage,
            attempt: 1,
            traceparent: msg.traceparent.clone(),
        }
    }

    /// Successor messages for a routing decision: runs on taken edges, skips on the others.
    fn successors(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        lineage: &[Frame],
        outcome: RouteOutcome<'_>,
    ) -> Vec<HopMessage> {
        let (taken, untaken) = wf.route(node.idx, outcome);
        let mut out = Vec::with_capacity(taken.len() + untaken.len());
        for e in taken {
            out.push(self.child(msg, node, wf, e, HopKind::Run, lineage.to_vec()));
        }
        for e in untaken {
            out.push(self.child(msg, node, wf, e, HopKind::Skip, lineage.to_vec()));
        }
        out
    }

    fn status(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        status: NodeStatus,
    ) -> StatusEvent {
        let _ = wf;
        if !self.events.wants_status() {
            // Nobody observes statuses: an empty event (no allocation), never sent.
            return StatusEvent {
                workflow_id: String::new(),
                execution_id: String::new(),
                node_id: String::new(),
                node_name: String::new(),
                node_type: String::new(),
                status,
                parameters: None,
                output: None,
                error: None,
                executed_at: String::new(),
                duration_ms: 0,
                branch_id: None,
                split_node_id: None,
                item_index: None,
                total_items: None,
                lineage_stack: Vec::new(),
                attempt: None,
            };
        }
        let top = msg.lineage.last();
        StatusEvent {
            workflow_id: msg.workflow_id.clone(),
            execution_id: msg.execution_id.clone(),
            node_id: node.id.clone(),
            node_name: node.name.clone(),
            node_type: node.node_type.clone(),
            status,
            parameters: None,
            output: None,
            error: None,
            executed_at: rfc3339_now(),
            duration_ms: 0,
            branch_id: top.map(|f| f.branch_id.clone()),
            split_node_id: top.map(|f| f.split_node_id.clone()),
            item_index: top.map(|f| f.item_index),
            total_items: top.map(|f| f.total_items),
            lineage_stack: msg.lineage.clone(),
            attempt: (msg.attempt > 1).then_some(msg.attempt),
        }
    }

    async fn emit(&self, ev: StatusEvent) {
        if !self.events.wants_status() {
            return;
        }
        // A lost status is a monitoring gap, not lost work: log and continue.
        if let Err(e) = self.events.status(ev).await {
            tracing::warn!(error = %e, "status event not delivered");
        }
    }

    /// A redelivered hop that already committed: the node does not run again; the messages
    /// it handed on are published again (their own hops deduplicate them) and, if nothing is
    /// pending, the completion its first delivery may not have sent goes out.
    async fn replay(
        &self,
        wf: &CompiledWorkflow,
        msg: &HopMessage,
        handed_on: &str,
        pending: i64,
    ) -> Result<HopOutcome, PortError> {
        let handoff: Handoff = serde_json::from_str(handed_on)
            .map_err(|e| PortError(format!("recorded successors are not readable: {e}")))?;
        tracing::debug!(execution_id = %msg.execution_id, node_id = %msg.node_id, now = handoff.now.len(), later = handoff.later.len(), "hop already committed: replaying its successors");
        if !handoff.now.is_empty() {
            self.queue.publish(handoff.now).await?;
        }
        // Timers have deterministic ids: one still pending is not scheduled twice.
        for (delay_ms, message) in handoff.later {
            self.queue.publish_delayed(message, delay_ms).await?;
        }
        if pending == 0 {
            self.complete(
                wf,
                &msg.workflow_id,
                &msg.execution_id,
                ExecutionStatus::Completed,
                None,
            )
            .await?;
        }
        Ok(HopOutcome::Done)
    }

    /// The output this node stored in this message's scope (a parked node reads what its
    /// first hop, or the delivery that resumed it, left there).
    async fn own_output(
        &self,
        node: &CompiledNode,
        msg: &HopMessage,
    ) -> Result<Option<Value>, PortError> {
        let stored = self
            .store
            .read_exact(&msg.execution_id, &[(msg.scope(), node.key.clone())])
            .await?;
        Ok(stored.into_iter().next().flatten())
    }

    /// What a hop hands on, recorded with its commit for a redelivery to replay (empty when
    /// the store never redelivers).
    fn handoff(
        &self,
        now: &[HopMessage],
        later: &[(u64, &HopMessage)],
    ) -> Result<String, PortError> {
        if !self.store.replays_hops() {
            return Ok(String::new());
        }
        serde_json::to_string(&HandoffRef { now, later })
            .map_err(|e| PortError(format!("cannot encode successors: {e}")))
    }

    /// Commits, then publishes successors; completes the execution when no token remains.
    async fn hand_on(
        &self,
        wf: &CompiledWorkflow,
        msg: &HopMessage,
        outputs: Vec<(String, String, Value)>,
        children: Vec<HopMessage>,
        status: Option<StatusEvent>,
    ) -> Result<HopOutcome, PortError> {
        let handed_on = self.handoff(&children, &[])?;
        let commit = HopCommit {
            hop_id: msg.hop_id().into(),
            outputs,
            tokens_out: children.len() as i64,
            handed_on,
        };
        let outcome = self.store.commit(&msg.execution_id, commit).await?;
        if let (Some(ev), CommitOutcome::Applied { .. }) = (status, &outcome) {
            self.emit(ev).await;
        }
        if !children.is_empty() {
            self.queue.publish(children).await?;
        }
        if let CommitOutcome::Applied { pending: 0 } | CommitOutcome::Duplicate { pending: 0 } =
            outcome
        {
            self.complete(
                wf,
                &msg.workflow_id,
                &msg.execution_id,
                ExecutionStatus::Completed,
                None,
            )
            .await?;
        }
        Ok(HopOutcome::Done)
    }

    async fn complete(
        &self,
        wf: &CompiledWorkflow,
        workflow_id: &str,
        execution_id: &str,
        status: ExecutionStatus,
        reason: Option<String>,
    ) -> Result<(), PortError> {
        if self.store.finish(execution_id, status, reason).await? {
            Box::pin(self.emit_completion(wf, workflow_id, execution_id)).await?;
        }
        Ok(())
    }

    async fn emit_completion(
        &self,
        _wf: &CompiledWorkflow,
        workflow_id: &str,
        execution_id: &str,
    ) -> Result<(), PortError> {
        self.emit_completion_inner(workflow_id, execution_id).await
    }

    async fn emit_completion_inner(
        &self,
        workflow_id: &str,
        execution_id: &str,
    ) -> Result<(), PortError> {
        let Lifecycle::Finished {
            status,
            reason,
            completion_sent,
        } = self.store.lifecycle(execution_id).await?
        else {
            return Ok(());
        };
        if completion_sent {
            return Ok(());
        }
        match self
            .store
            .claim_completion(execution_id, now_ms(), self.completion_lease_ms)
            .await?
        {
            CompletionClaim::Claimed => {}
            CompletionClaim::Sent | CompletionClaim::Unknown => return Ok(()),
            CompletionClaim::Held => {
                return Err(PortError(format!(
                    "the completion of `{execution_id}` is being sent elsewhere (claimed less \
                     than {} ms ago): retry once it is sent or its claim expires",
                    self.completion_lease_ms
                )));
            }
        }
        let (mut final_context, started) = self.store.final_context(execution_id).await?;
        subworkflow::without_child_records(&mut final_context);
        // Before the completion is sent, so a crash here tells the parent again (its signal is
        // delivered once per waiter; a repeat with no waiter is kept and unused).
        if final_context.contains_key(PARENT_KEY) {
            self.notify_parent(
                workflow_id,
                execution_id,
                status,
                reason.as_deref(),
                &final_context,
            )
            .await?;
        }
        let completion = Completion {
            workflow_id: workflow_id.to_string(),
            execution_id: execution_id.to_string(),
            status,
            final_context,
            completed_at: rfc3339_now(),
            total_duration_ms: now_ms().saturating_sub(started),
            failure_reason: reason,
        };
        // Sent (confirmed), then marked: a crash in between repeats it, never loses it.
        self.events.completion(completion).await?;
        self.store.mark_completion_sent(execution_id).await?;
        self.forget_execution(execution_id);
        Ok(())
    }

    /// Stops the execution: first caller wins; running nodes are cancelled; the `on_failure`
    /// node (if any) runs before the completion is emitted. `by`: the hop that halts it (empty
    /// if none); the store remembers it, so that a redelivery of that hop re-publishes the
    /// `on_failure` message its first delivery may have lost.
    async fn halt(
        &self,
        wf: &CompiledWorkflow,
        workflow_id: &str,
        execution_id: &str,
        status: ExecutionStatus,
        reason: String,
        by: &str,
    ) -> Result<bool, PortError> {
        if !self
            .store
            .finish_by(execution_id, status, Some(reason), by)
            .await?
        {
            return Ok(false);
        }
        if let Some(t) = self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(execution_id)
        {
            t.cancel();
        }
        self.halt_children(wf, execution_id).await;
        match self.on_failure_message(wf, workflow_id, execution_id) {
            Some(msg) => self.queue.publish(vec![msg]).await?,
            None => self.emit_completion(wf, workflow_id, execution_id).await?,
        }
        Ok(true)
    }

    /// The message that runs the workflow's `on_failure` node after a halt (always the same
    /// one, so a re-published copy is deduplicated like any other hop).
    fn on_failure_message(
        &self,
        wf: &CompiledWorkflow,
        workflow_id: &str,
        execution_id: &str,
    ) -> Option<HopMessage> {
        let i = wf.on_failure?;
        Some(HopMessage {
            execution_id: execution_id.to_string(),
            workflow_id: workflow_id.to_string(),
            workflow_ref: wf.reference.clone(),
            node_id: wf.nodes[i].id.clone(),
            kind: HopKind::OnFailure,
            from_node: None,
            from_edge: None,
            lineage: Vec::new(),
            attempt: 1,
            traceparent: None,
        })
    }

    /// A hop that finds its execution finished without a completion sent, and the `on_failure`
    /// node due to send it: if this very hop halted the execution (its first delivery died or
    /// failed before the `on_failure` message was confirmed), publish that message again,
    /// unless the `on_failure` node already ran.
    async fn recover_on_failure(
        &self,
        wf: &CompiledWorkflow,
        msg: &HopMessage,
    ) -> Result<(), PortError> {
        if self.store.finished_by(&msg.execution_id).await?.as_deref() != Some(&msg.hop_id()) {
            return Ok(());
        }
        let Some(on_failure) = self.on_failure_message(wf, &msg.workflow_id, &msg.execution_id)
        else {
            return Ok(());
        };
        if self
            .store
            .committed_hop(&msg.execution_id, &on_failure.hop_id())
            .await?
            .is_some()
        {
            return Ok(());
        }
        tracing::info!(execution_id = %msg.execution_id, node_id = %on_failure.node_id, "re-publishing the on_failure message of a redelivered halting hop");
        self.queue.publish(vec![on_failure]).await
    }

    async fn on_skip(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
    ) -> Result<HopOutcome, PortError> {
        if node.class == NodeClass::Aggregator {
            return self.arrive_aggregator(wf, node, msg, false).await;
        }
        if node.is_join {
            return self.arrive_join(wf, node, msg, false).await;
        }
        self.propagate_skip(wf, node, msg).await
    }

    async fn propagate_skip(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
    ) -> Result<HopOutcome, PortError> {
        let mut children: Vec<HopMessage> = Vec::new();
        if node.class == NodeClass::Split {
            // The whole split scope is skipped: tell the aggregator that closes it directly.
            if let Some(closer) = node.split_closer {
                let mut m = msg.clone();
                m.node_id = wf.nodes[closer].id.clone();
                m.from_node = Some(node.id.clone());
                m.from_edge = Some(format!("skip:{}", node.id));
                m.kind = HopKind::Skip;
                children.push(m);
            }
            for e in &node.out_edges {
                let dst = wf.edges[*e].dst;
                if node.split_closer != Some(dst) && !self.inside_scope(wf, node, dst) {
                    children.push(self.child(
                        msg,
                        node,
                        wf,
                        *e,
                        HopKind::Skip,
                        msg.lineage.clone(),
                    ));
                }
            }
        } else {
            for e in &node.out_edges {
                children.push(self.child(msg, node, wf, *e, HopKind::Skip, msg.lineage.clone()));
            }
        }
        self.hand_on(wf, msg, Vec::new(), children, None).await
    }

    /// Whether `dst` lies inside the scope a split opens (it reaches the split's closer).
    fn inside_scope(&self, wf: &CompiledWorkflow, split: &CompiledNode, dst: usize) -> bool {
        let Some(closer) = split.split_closer else {
            return true;
        };
        let mut stack = vec![dst];
        let mut seen = vec![false; wf.nodes.len()];
        while let Some(i) = stack.pop() {
            if i == closer {
                return true;
            }
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(wf.nodes[i].out_edges.iter().map(|e| wf.edges[*e].dst));
        }
        // Nodes inside the scope that never reach the closer still run per item.
        true
    }

    async fn arrive_join(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        real: bool,
    ) -> Result<HopOutcome, PortError> {
        let scope = msg.scope();
        let join_key = format!("join|{}|{}", node.id, scope);
        let arrival_key = msg
            .from_edge
            .clone()
            .unwrap_or_else(|| format!("start|{}", msg.hop_id()));
        let from_name = msg
            .from_node
            .as_deref()
            .and_then(|id| wf.node(id))
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let arrival = json!({"from": from_name, "real": real});
        let expected = node.in_edges.len().max(1);
        // `waiting` is reported before the arrival is recorded: once recorded, another arrival
        // may release the join and run it, and a `waiting` sent after that would read as the
        // node's latest status. A wait_for_any join releases on its first real arrival (later
        // ones are ignored), so it never reports `waiting`.
        if real && !node.wait_for_any {
            let mut ev = self.status(wf, node, msg, NodeStatus::Waiting);
            ev.output = Some(json!({"_merge_waiting": true, "_merge_expected": expected}));
            self.emit(ev).await;
        }
        match self
            .store
            .join(
                &msg.execution_id,
                &join_key,
                &arrival_key,
                arrival,
                expected,
                node.wait_for_any,
            )
            .await?
        {
            JoinOutcome::Waiting { .. } => {
                self.hand_on(wf, msg, Vec::new(), Vec::new(), None).await
            }
            JoinOutcome::AlreadyReleased => {
                self.hand_on(wf, msg, Vec::new(), Vec::new(), None).await
            }
            JoinOutcome::Released { mut arrivals } => {
                // wait_for_all: report arrivals in the order of the incoming edges, not of
                // message timing, so the output (and what templates make of it) is the same on
                // every run. wait_for_any keeps arrival order: its first run is the winner.
                if !node.wait_for_any {
                    let rank = |key: &str| {
                        node.in_edges
                            .iter()
                            .position(|e| wf.edges[*e].id == key)
                            .unwrap_or(usize::MAX)
                    };
                    arrivals.sort_by_key(|(key, _)| rank(key));
                }
                let reals: Vec<String> = arrivals
                    .iter()
                    .filter(|(_, v)| v.get("real").and_then(Value::as_bool).unwrap_or(false))
                    .map(|(_, v)| {
                        v.get("from")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect();
                if reals.is_empty() {
                    return self.propagate_skip(wf, node, msg).await;
                }
                if node.class != NodeClass::Merge {
                    return self.execute(wf, node, msg, None).await;
                }
                let skipped: Vec<String> = arrivals
                    .iter()
                    .filter(|(_, v)| !v.get("real").and_then(Value::as_bool).unwrap_or(false))
                    .map(|(_, v)| {
                        v.get("from")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect();
                let keys: Vec<String> = reals.iter().map(|n| format!("${n}")).collect();
                let merged = self
                    .store
                    .read(&msg.execution_id, &scope_chain(&msg.lineage), &keys)
                    .await?;
                let mut output = json!({
                    "merged_context": merged,
                    "arrived": reals,
                    "skipped": skipped,
                    "wait_mode": if node.wait_for_any { "wait_for_any" } else { "wait_for_all" },
                    "_merge_expected": expected,
                });
                if node.wait_for_any
                    && let Some(obj) = output.as_object_mut()
                {
                    obj.insert("_merge_winner".into(), json!(reals[0]));
                }
                let started = Instant::now();
                self.emit(self.status(wf, node, msg, NodeStatus::Running))
                    .await;
                self.finish_success(wf, node, msg, output, started, None)
                    .await
            }
        }
    }

    async fn arrive_aggregator(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        real: bool,
    ) -> Result<HopOutcome, PortError> {
        // A skip sent straight from a skipped split: the whole scope never ran.
        let from_split = msg
            .from_node
            .as_deref()
            .and_then(|id| wf.node(id))
            .filter(|n| n.class == NodeClass::Split);
        if let Some(split) = from_split
            && msg
                .lineage
                .last()
                .is_none_or(|f| f.split_node_id != split.id)
        {
            return self.propagate_skip(wf, node, msg).await;
        }
        let Some(frame) = msg.lineage.last() else {
            if !real {
                return self.propagate_skip(wf, node, msg).await;
            }
            let err = NodeError::invalid(format!(
                "aggregator `{}` must run inside a split (no split lineage)",
                node.name
            ));
            let started = Instant::now();
            return self.fail(wf, node, msg, err, started).await;
        };
        let parent = &msg.lineage[..msg.lineage.len() - 1];
        let join_key = format!(
            "agg|{}|{}|{}",
            node.id,
            scope_of(parent),
            frame.split_node_id
        );
        let arrival_key = format!(
            "{}|{}",
            frame.item_index,
            msg.from_edge.as_deref().unwrap_or("")
        );
        let from = msg
            .from_node
            .as_deref()
            .and_then(|id| wf.node(id))
            .map(|n| n.key.clone())
            .unwrap_or_default();
        let arrival = json!({"item": frame.item_index, "from": from, "real": real});
        let expected = frame.total_items * node.in_edges.len().max(1);
        // Reported before the arrival is recorded, for the same reason as in `arrive_join`.
        if real {
            let mut ev = self.status(wf, node, msg, NodeStatus::Waiting);
            ev.output = Some(json!({"_aggregator_expected": expected}));
            self.emit(ev).await;
        }
        match self
            .store
            .join(
                &msg.execution_id,
                &join_key,
                &arrival_key,
                arrival,
                expected,
                false,
            )
            .await?
        {
            JoinOutcome::Waiting { .. } => {
                self.hand_on(wf, msg, Vec::new(), Vec::new(), None).await
            }
            JoinOutcome::AlreadyReleased => {
                self.hand_on(wf, msg, Vec::new(), Vec::new(), None).await
            }
            JoinOutcome::Released { arrivals } => {
                let total = frame.total_items;
                let split_id = frame.split_node_id.clone();
                let mut item_sources: Vec<Option<String>> = vec![None; total];
                for (_, v) in &arrivals {
                    let item = v.get("item").and_then(Value::as_u64).unwrap_or(0) as usize;
                    if v.get("real").and_then(Value::as_bool).unwrap_or(false) && item < total {
                        item_sources[item] =
                            v.get("from").and_then(Value::as_str).map(str::to_string);
                    }
                }
                let mut entries = Vec::new();
                let mut positions = Vec::new();
                for (i, src) in item_sources.iter().enumerate() {
                    if let Some(key) = src {
                        let mut lineage = parent.to_vec();
                        lineage.push(Frame {
                            split_node_id: split_id.clone(),
                            branch_id: String::new(),
                            item_index: i,
                            total_items: total,
                        });
                        entries.push((scope_of(&lineage), key.clone()));
                        positions.push(i);
                    }
                }
                let values = self.store.read_exact(&msg.execution_id, &entries).await?;
                let mut aggregated = vec![Value::Null; total];
                for (pos, v) in positions.into_iter().zip(values) {
                    aggregated[pos] = v.unwrap_or(Value::Null);
                }
                self.release_aggregator(
                    wf,
                    node,
                    msg,
                    parent,
                    total,
                    aggregated
                        .into_iter()
                        .zip(item_sources.iter().map(Option::is_some))
                        .collect(),
                )
                .await
            }
        }
    }

    async fn release_aggregator(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        parent: &[Frame],
        total: usize,
        items: Vec<(Value, bool)>,
    ) -> Result<HopOutcome, PortError> {
        let skipped: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, (_, ran))| !ran)
            .map(|(i, _)| i)
            .collect();
        let aggregated: Vec<Value> = items.into_iter().map(|(v, _)| v).collect();
        let output = json!({"aggregated": aggregated, "count": total, "skipped": skipped});
        let started = Instant::now();
        let mut released = msg.clone();
        released.lineage = parent.to_vec();
        self.emit(self.status(wf, node, &released, NodeStatus::Running))
            .await;
        let mut ev_msg = msg.clone();
        ev_msg.lineage = parent.to_vec();
        self.finish_success(
            wf,
            node,
            &ev_msg,
            output,
            started,
            Some(msg.hop_id().into()),
        )
        .await
    }

    /// A wait node in `signal` mode: consume an already delivered signal, or register as a
    /// waiter (holding the branch's token) with an optional timeout.
    async fn await_signal(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        output: &Value,
        mut ev: StatusEvent,
    ) -> Result<HopOutcome, PortError> {
        let name = output
            .get("signal")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let timeout = output.get("timeout_ms").and_then(Value::as_u64);
        let mut resume = msg.clone();
        resume.kind = HopKind::Resume;
        resume.attempt = 1;
        let payload = serde_json::to_string(&resume).map_err(|e| PortError(e.to_string()))?;
        let scope = msg.scope();
        if let Some(data) = self
            .store
            .await_signal(&msg.execution_id, &name, &msg.hop_id(), payload)
            .await?
        {
            let out = json!({"signal": name, "data": data});
            let children =
                self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Success(&out));
            ev.output = Some(out.clone());
            return self
                .hand_on(
                    wf,
                    msg,
                    vec![(scope, node.key.clone(), out)],
                    children,
                    Some(ev),
                )
                .await;
        }
        let out = json!({"signal": name, "waiting": true, "timeout_ms": timeout});
        ev.status = NodeStatus::Waiting;
        ev.output = Some(out.clone());
        // One token for the waiter, one for its timeout message.
        let tokens_out = if timeout.is_some() { 2 } else { 1 };
        let timer = timeout.map(|ms| {
            let mut t = msg.clone();
            t.kind = HopKind::SignalTimeout;
            t.attempt = 1;
            (ms, t)
        });
        let later: Vec<(u64, &HopMessage)> = timer.iter().map(|(ms, t)| (*ms, t)).collect();
        let commit = HopCommit {
            hop_id: msg.hop_id().into(),
            outputs: vec![(scope, node.key.clone(), out)],
            tokens_out,
            handed_on: self.handoff(&[], &later)?,
        };
        if let CommitOutcome::Applied { .. } = self.store.commit(&msg.execution_id, commit).await? {
            self.emit(ev).await;
        }
        if let Some((ms, t)) = timer {
            self.queue.publish_delayed(t, ms).await?;
        }
        Ok(HopOutcome::Done)
    }

    /// Delivers a named signal to an execution: every branch waiting for it resumes with
    /// `{signal, data}` as the wait node's output; with none waiting, it is kept for the next.
    /// Returns the number of branches resumed.
    pub async fn signal(
        &self,
        execution_id: &str,
        name: &str,
        data: Value,
    ) -> Result<usize, PortError> {
        if !matches!(
            self.store.lifecycle(execution_id).await?,
            Lifecycle::Running
        ) {
            return Ok(0);
        }
        let waiters = self
            .store
            .deliver_signal(execution_id, name, data.clone())
            .await?;
        let mut resumed = 0;
        for (waiter_id, payload) in waiters {
            let Ok(msg) = serde_json::from_str::<HopMessage>(&payload) else {
                tracing::error!(waiter_id, "signal waiter payload is not a hop message");
                continue;
            };
            let Some(wf) = self.definitions.get(&msg.workflow_ref) else {
                continue;
            };
            let Some(node) = wf.node(&msg.node_id) else {
                continue;
            };
            let out = json!({"signal": name, "data": data});
            let commit = HopCommit {
                hop_id: format!("signal|{waiter_id}"),
                outputs: vec![(msg.scope(), node.key.clone(), out)],
                tokens_out: 1,
                handed_on: String::new(),
            };
            self.store.commit(execution_id, commit).await?;
            self.queue.publish(vec![msg]).await?;
            resumed += 1;
        }
        Ok(resumed)
    }

    async fn on_signal_timeout(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
    ) -> Result<HopOutcome, PortError> {
        let name = self
            .own_output(node, msg)
            .await?
            .and_then(|v| v.get("signal").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        let mut waiter = msg.clone();
        waiter.kind = HopKind::Run;
        let waiter_id = waiter.hop_id();
        if !self
            .store
            .remove_signal_waiter(&msg.execution_id, &name, &waiter_id)
            .await?
        {
            // The signal came first: this timeout's token just ends.
            return self.hand_on(wf, msg, Vec::new(), Vec::new(), None).await;
        }
        // The waiter's token ends here; the timeout's token carries the failure's routing.
        let expired = HopCommit {
            hop_id: format!("expired|{waiter_id}"),
            outputs: Vec::new(),
            tokens_out: 0,
            handed_on: String::new(),
        };
        self.store.commit(&msg.execution_id, expired).await?;
        let err = NodeError {
            message: format!("signal `{name}` did not arrive in time"),
            code: "SIGNAL_TIMEOUT".into(),
            retryable: false,
        };
        self.fail(wf, node, msg, err, Instant::now()).await
    }

    async fn on_resume(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
    ) -> Result<HopOutcome, PortError> {
        if self.is_subworkflow(node) {
            return self.resume_subworkflow(wf, node, msg).await;
        }
        let output = self.own_output(node, msg).await?.unwrap_or(Value::Null);
        let children = self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Success(&output));
        let mut ev = self.status(wf, node, msg, NodeStatus::Success);
        ev.output = Some(output);
        self.hand_on(wf, msg, Vec::new(), children, Some(ev)).await
    }

    /// Runs the node itself: resolve parameters, run with timeout and cancellation, route.
    async fn execute(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        preloaded: Option<Map<String, Value>>,
    ) -> Result<HopOutcome, PortError> {
        let started = Instant::now();
        let ctx = match preloaded {
            Some(ctx) => ctx,
            None => {
                self.store
                    .read(&msg.execution_id, &scope_chain(&msg.lineage), &node.reads)
                    .await?
            }
        };
        let mut running = self.status(wf, node, msg, NodeStatus::Running);
        let params = match node.params.resolve(&wf.templates, &ctx, "") {
            Ok(mut p) => {
                // Raw parameters reach the node as written; it evaluates them itself.
                if !node.raw_params.is_empty()
                    && let Some(obj) = p.as_object_mut()
                {
                    obj.extend(node.raw_params.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                p
            }
            Err(e) => {
                self.emit(running).await;
                let err = NodeError {
                    message: e.to_string(),
                    code: "TEMPLATE_ERROR".into(),
                    retryable: false,
                };
                return Box::pin(self.fail(wf, node, msg, err, started)).await;
            }
        };
        if self.events.wants_status() {
            running.parameters = Some(params.clone());
        }
        self.emit(running).await;
        let result = self.run_node(wf, node, msg, &params, &ctx).await;
        if msg.kind == HopKind::OnFailure {
            let outputs = match &result {
                RunResult::Ok(v) => vec![(String::new(), node.key.clone(), v.clone())],
                RunResult::Failed(_) => Vec::new(),
            };
            let mut ev = self.status(
                wf,
                node,
                msg,
                if matches!(result, RunResult::Ok(_)) {
                    NodeStatus::Success
                } else {
                    NodeStatus::Failed
                },
            );
            ev.duration_ms = started.elapsed().as_millis() as u64;
            match result {
                RunResult::Ok(v) => ev.output = Some(v),
                RunResult::Failed(e) => {
                    ev.error = Some(ErrorInfo {
                        message: e.message,
                        code: e.code,
                        details: None,
                    })
                }
            }
            self.store
                .commit(
                    &msg.execution_id,
                    HopCommit {
                        hop_id: msg.hop_id().into(),
                        outputs,
                        tokens_out: 0,
                        handed_on: String::new(),
                    },
                )
                .await?;
            self.emit(ev).await;
            self.emit_completion(wf, &msg.workflow_id, &msg.execution_id)
                .await?;
            return Ok(HopOutcome::Done);
        }
        match result {
            RunResult::Ok(output) => {
                self.finish_success(wf, node, msg, output, started, None)
                    .await
            }
            RunResult::Failed(err) => Box::pin(self.fail(wf, node, msg, err, started)).await,
        }
    }

    async fn run_node(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        params: &Value,
        ctx: &Map<String, Value>,
    ) -> RunResult {
        let _ = wf;
        if node.class == NodeClass::Conditional {
            let Some(expr) = &node.condition else {
                return RunResult::Failed(NodeError::invalid(
                    "parameter `expression` is required: expected a condition",
                ));
            };
            return match expr.eval_bool(ctx) {
                Ok(result) => RunResult::Ok(json!({"result": result, "expression": expr.source()})),
                Err(e) => RunResult::Failed(NodeError {
                    message: e.to_string(),
                    code: "EXPRESSION_ERROR".into(),
                    retryable: false,
                }),
            };
        }
        let Some(imp) = self.nodes.get(&node.node_type) else {
            return RunResult::Failed(NodeError {
                message: format!("node type `{}` is not registered", node.node_type),
                code: "NODE_CREATION_FAILED".into(),
                retryable: false,
            });
        };
        // The `on_failure` node runs after the halt that cancelled the execution's token: it gets
        // its own, or it would be aborted before it starts.
        let cancel = if msg.kind == HopKind::OnFailure {
            CancellationToken::new()
        } else {
            self.cancel_token(&msg.execution_id)
        };
        let idempotency_key = format!("{}:{}:{}", msg.execution_id, node.id, msg.scope());
        // Revealed here and only here: the secret lives for this run, in this frame, and is
        // never part of a message, a status, the context or an error.
        let revealed = match self.reveal_credentials(node).await {
            Ok(revealed) => revealed,
            Err(e) => return RunResult::Failed(e),
        };
        let input = NodeInput {
            params,
            context: ctx,
            credentials: revealed.as_ref().or(node.credentials.as_ref()),
            execution_id: &msg.execution_id,
            node_id: &node.id,
            node_name: &node.name,
            attempt: msg.attempt,
            idempotency_key: &idempotency_key,
            cancel: &cancel,
        };
        let run = imp.run(input);
        let guarded = async {
            tokio::select! {
                r = run => r,
                () = cancel.cancelled() => Err(NodeError { message: "cancelled: the execution stopped".into(), code: "CANCELLED".into(), retryable: false }),
            }
        };
        let result = match node.timeout_ms {
            Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), guarded).await {
                Ok(r) => r,
                Err(_) => Err(NodeError::new(
                    "NODE_TIMEOUT",
                    format!("node `{}` timed out after {ms} ms", node.name),
                )),
            },
            None => guarded.await,
        };
        match result {
            Ok(v) => RunResult::Ok(v),
            Err(e) => RunResult::Failed(e),
        }
    }

    /// The decrypted fields of the vault credential `node` references, if it references one.
    async fn reveal_credentials(
        &self,
        node: &CompiledNode,
    ) -> Result<Option<Map<String, Value>>, NodeError> {
        let Some(reference) = node.credentials.as_ref().and_then(credential_reference) else {
            return Ok(None);
        };
        let fail = |code: &str, message: String, retryable: bool| NodeError {
            message,
            code: code.into(),
            retryable,
        };
        let Some(vault) = &self.vault else {
            return Err(fail(
                "CREDENTIAL_VAULT_MISSING",
                format!(
                    "node `{}` ({}) uses credential `{reference}`, but this runtime has no \
                     credential vault (the workers, the master and `baton dev` get one from \
                     BATON_CREDENTIALS_KEY)",
                    node.name, node.id
                ),
                false,
            ));
        };
        match vault.reveal(reference).await {
            Ok(Some(fields)) => Ok(Some(fields)),
            Ok(None) => Err(fail(
                "CREDENTIAL_NOT_FOUND",
                format!(
                    "node `{}` ({}) uses credential `{reference}`, which is not in the vault",
                    node.name, node.id
                ),
                false,
            )),
            Err(RevealError::Unreadable(e)) => Err(fail(
                "CREDENTIAL_UNREADABLE",
                format!(
                    "node `{}` ({}): credential `{reference}` cannot be used: {e}",
                    node.name, node.id
                ),
                false,
            )),
            // A vault outage may pass: retryable, like any node failure.
            Err(RevealError::Unavailable(e)) => Err(fail(
                "CREDENTIAL_UNAVAILABLE",
                format!(
                    "node `{}` ({}): credential `{reference}` could not be read: {e}",
                    node.name, node.id
                ),
                true,
            )),
        }
    }

    async fn finish_success(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        output: Value,
        started: Instant,
        _released_by: Option<String>,
    ) -> Result<HopOutcome, PortError> {
        let scope = msg.scope();
        let mut outputs = vec![(scope.clone(), node.key.clone(), output.clone())];
        // Data-shaping nodes (edit, filter, sort, limit) hand their result on as `$json`.
        if node.class == NodeClass::Action
            && let Some(json_out) = output.get("$json")
        {
            outputs.push((scope.clone(), "$json".into(), json_out.clone()));
        }
        let mut ev = self.status(wf, node, msg, NodeStatus::Success);
        ev.duration_ms = started.elapsed().as_millis() as u64;
        if node.class == NodeClass::Action && self.is_subworkflow(node) {
            return Box::pin(self.start_subworkflow(wf, node, msg, &output, ev, started)).await;
        }
        let children = match node.class {
            NodeClass::Wait if output.get("signal").is_some() => {
                return Box::pin(self.await_signal(wf, node, msg, &output, ev)).await;
            }
            NodeClass::Wait => {
                let delay = output.get("delay_ms").and_then(Value::as_u64).unwrap_or(0);
                let resume_at = now_ms() + delay;
                let out = json!({"resume_at": resume_at, "delay_ms": delay});
                outputs = vec![(scope, node.key.clone(), out.clone())];
                ev.status = NodeStatus::Waiting;
                ev.output = Some(out);
                let mut resume = msg.clone();
                resume.kind = HopKind::Resume;
                resume.attempt = 1;
                let commit = HopCommit {
                    hop_id: msg.hop_id().into(),
                    outputs,
                    tokens_out: 1,
                    handed_on: self.handoff(&[], &[(delay, &resume)])?,
                };
                if let CommitOutcome::Applied { .. } =
                    self.store.commit(&msg.execution_id, commit).await?
                {
                    self.emit(ev).await;
                }
                self.queue.publish_delayed(resume, delay).await?;
                return Ok(HopOutcome::Done);
            }
            NodeClass::Split => {
                let items = output
                    .get("_split_items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let total = items.len();
                let (taken, untaken) = wf.route(node.idx, RouteOutcome::Success(&output));
                let mut children = Vec::new();
                if total == 0 {
                    children.extend(self.empty_split(wf, node, msg));
                } else {
                    for (i, item) in items.into_iter().enumerate() {
                        let mut lineage = msg.lineage.clone();
                        lineage.push(Frame {
                            split_node_id: node.id.clone(),
                            branch_id: format!("{}_{}_{}", msg.execution_id, node.id, i),
                            item_index: i,
                            total_items: total,
                        });
                        outputs.push((scope_of(&lineage), "$item".into(), item));
                        for e in &taken {
                            children.push(self.child(
                                msg,
                                node,
                                wf,
                                *e,
                                HopKind::Run,
                                lineage.clone(),
                            ));
                        }
                    }
                }
                for e in untaken {
                    children.push(self.child(msg, node, wf, e, HopKind::Skip, msg.lineage.clone()));
                }
                ev.output = Some(json!({"_split_items_count": total}));
                children
            }
            _ => {
                let children =
                    self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Success(&output));
                ev.output = Some(output);
                children
            }
        };
        self.hand_on(wf, msg, outputs, children, Some(ev)).await
    }

    /// The message that releases the aggregator closing `split` with an empty result.
    fn empty_split(
        &self,
        wf: &CompiledWorkflow,
        split: &CompiledNode,
        msg: &HopMessage,
    ) -> Option<HopMessage> {
        let closer = split.split_closer?;
        let mut m = msg.clone();
        m.node_id = wf.nodes[closer].id.clone();
        m.kind = HopKind::EmptySplit;
        m.from_node = Some(split.id.clone());
        m.from_edge = Some(format!("empty:{}", split.id));
        m.attempt = 1;
        Some(m)
    }

    async fn fail(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        err: NodeError,
        started: Instant,
    ) -> Result<HopOutcome, PortError> {
        let info = ErrorInfo {
            message: err.message.clone(),
            code: err.code.clone(),
            details: None,
        };
        if err.code == "CANCELLED" {
            // The execution was stopped elsewhere; this branch just ends.
            return Ok(HopOutcome::Dropped);
        }
        if err.retryable && msg.attempt < node.retry.max_attempts {
            let delay = node.retry.delay_ms(msg.attempt + 1, rand::random::<f64>());
            let mut retry = msg.clone();
            retry.attempt += 1;
            // A node that failed on resuming (a sub-workflow whose child failed) runs again.
            if retry.kind == HopKind::Resume {
                retry.kind = HopKind::Run;
            }
            let mut ev = self.status(wf, node, msg, NodeStatus::Waiting);
            ev.duration_ms = started.elapsed().as_millis() as u64;
            ev.error = Some(info);
            ev.output = Some(
                json!({"retry": {"next_attempt": retry.attempt, "max_attempts": node.retry.max_attempts, "delay_ms": delay}}),
            );
            let commit = HopCommit {
                hop_id: msg.hop_id().into(),
                outputs: Vec::new(),
                tokens_out: 1,
                handed_on: self.handoff(&[], &[(delay, &retry)])?,
            };
            if let CommitOutcome::Applied { .. } =
                self.store.commit(&msg.execution_id, commit).await?
            {
                self.emit(ev).await;
            }
            self.queue.publish_delayed(retry, delay).await?;
            return Ok(HopOutcome::Done);
        }
        let mut ev = self.status(wf, node, msg, NodeStatus::Failed);
        ev.duration_ms = started.elapsed().as_millis() as u64;
        ev.error = Some(info.clone());
        let error_value = json!({"node_id": node.id, "node_name": node.name, "message": info.message, "code": info.code});
        let attempts = if msg.attempt > 1 {
            format!(" after {} attempts", msg.attempt)
        } else {
            String::new()
        };
        match node.error_policy {
            baton_core::ErrorKind::Halt => {
                self.emit(ev).await;
                let reason = format!(
                    "node `{}` ({}) failed{attempts}: {} [{}]",
                    node.name, node.id, err.message, err.code
                );
                self.halt(
                    wf,
                    &msg.workflow_id,
                    &msg.execution_id,
                    ExecutionStatus::Halted,
                    reason,
                    &msg.hop_id(),
                )
                .await?;
                Ok(HopOutcome::Done)
            }
            baton_core::ErrorKind::Ignore => {
                let mut children =
                    self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Ignored);
                if node.class == NodeClass::Split {
                    // A failed split has no items: continue as an empty split (its aggregator
                    // releases an empty result); the per-item successors must not run outside
                    // any item.
                    children.retain(|m| m.kind != HopKind::Run);
                    children.extend(self.empty_split(wf, node, msg));
                }
                self.hand_on(
                    wf,
                    msg,
                    vec![(msg.scope(), "$error".into(), error_value)],
                    children,
                    Some(ev),
                )
                .await
            }
            baton_core::ErrorKind::Branch => {
                let children =
                    self.successors(wf, node, msg, &msg.lineage, RouteOutcome::ErrorBranch);
                self.hand_on(
                    wf,
                    msg,
                    vec![(msg.scope(), "$error".into(), error_value)],
                    children,
                    Some(ev),
                )
                .await
            }
        }
    }
}

/// The vault id in a node's `"credentials": {"$credential": "<id>"}`, if it is a reference.
pub fn credential_reference(credentials: &Map<String, Value>) -> Option<&str> {
    credentials.get(CREDENTIAL_REF_KEY).and_then(Value::as_str)
}

/// The key that makes a node's `credentials` a reference to a vault credential.
pub const CREDENTIAL_REF_KEY: &str = "$credential";
