//! `MemoryStore`: the execution store in process memory, with the same atomicity and
//! idempotency contract as the Redis store (one mutex makes every operation atomic).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use baton_core::message::ExecutionStatus;
use baton_engine::ports::{
    CommitOutcome, CommittedHop, CompletionAdoption, CompletionClaim, CompletionLedger,
    ExecutionIdentity, ExecutionStart, ExecutionStore, FinalContext, Handoff, HeldClaim, HopClaim,
    HopClaimOutcome, HopCommit, HopStart, JoinArrival, JoinOutcome, Lifecycle, PortError,
    RunCommitOutcome, ScopedKey, SignalStore, SignalWaiter, StartState,
};
use serde_json::{Map, Value};

#[derive(Debug, Default)]
struct JoinState {
    arrivals: Vec<JoinArrival>,
    keys: HashSet<String>,
    releaser: Option<String>,
}

#[derive(Debug)]
struct Execution {
    /// scope → (context key → value)
    scopes: HashMap<String, Map<String, Value>>,
    pending: i64,
    /// committed hop id → the messages it handed on (when recorded)
    committed: HashMap<String, Option<Handoff>>,
    /// hop id → (owner, expiry ms) of the claim on running it, until it commits
    claims: HashMap<String, (String, u64)>,
    joins: HashMap<String, JoinState>,
    finished: Option<(ExecutionStatus, Option<String>)>,
    completion_sent: bool,
    /// When the completion's sending was claimed (ms).
    completion_claimed_at: Option<u64>,
    /// Who adopted the completion's sending (`adopt_completion`).
    completion_sender: Option<String>,
    /// The hop that finished the execution (`finish_by`).
    finished_by: Option<String>,
    /// `forget` came before `mark_completion_sent`: drop the state at the mark.
    forget_when_marked: bool,
    started_at_ms: u64,
    /// The first messages are published.
    started: bool,
    workflow_id: String,
    workflow_ref: String,
    /// signal name → waiting (id, payload)
    waiters: HashMap<String, Vec<(String, String)>>,
    buffered_signals: HashMap<String, Value>,
    /// Buffered signals taken, by (name, waiter id): a retried await of the same waiter gets
    /// the same signal again.
    taken_signals: HashMap<(String, String), Value>,
    /// signal name → waiters a delivery took and did not report resumed (id, payload)
    delivering_signals: HashMap<String, Vec<(String, String)>>,
}

impl Execution {
    fn lifecycle(&self) -> Lifecycle {
        match &self.finished {
            None => Lifecycle::Running,
            Some((status, reason)) => Lifecycle::Finished {
                status: *status,
                reason: reason.clone(),
                completion_sent: self.completion_sent,
            },
        }
    }

    /// The first value of each key along `scope_chain` (innermost first).
    fn read(&self, scope_chain: &[String], keys: &[String]) -> Map<String, Value> {
        let mut out = Map::new();
        for key in keys {
            for scope in scope_chain {
                if let Some(v) = self.scopes.get(scope).and_then(|m| m.get(key)) {
                    out.insert(key.clone(), v.clone());
                    break;
                }
            }
        }
        out
    }

    fn committed_hop(&self, hop_id: &str) -> Option<CommittedHop> {
        self.committed.get(hop_id).map(|handoff| CommittedHop {
            handoff: handoff.clone(),
            pending: self.pending,
        })
    }

    /// A hop's commit, at most once per hop id.
    fn apply(&mut self, commit: HopCommit) -> CommitOutcome {
        if self.committed.contains_key(&commit.hop_id) {
            return CommitOutcome::Duplicate {
                pending: self.pending,
            };
        }
        // The embedded runtime takes no claims: no lookup then.
        if !self.claims.is_empty() {
            self.claims.remove(&commit.hop_id);
        }
        self.committed.insert(commit.hop_id, commit.handoff);
        for write in commit.outputs {
            self.scopes
                .entry(write.scope)
                .or_default()
                .insert(write.key, write.value);
        }
        self.pending += commit.tokens_out - 1;
        CommitOutcome::Applied {
            pending: self.pending,
        }
    }

    fn claim_hop(&mut self, hop_id: &str, claim: HopClaim<'_>) -> HopClaimOutcome {
        // Committed, or the execution finished: nothing left to run.
        if self.committed.contains_key(hop_id) || self.finished.is_some() {
            return HopClaimOutcome::Committed;
        }
        if let Some((owner, expires_at_ms)) = self.claims.get(hop_id)
            && owner != claim.owner
            && *expires_at_ms > claim.now_ms
        {
            return HopClaimOutcome::Held(HeldClaim {
                owner: owner.clone(),
                expires_at_ms: *expires_at_ms,
            });
        }
        let until = claim.now_ms.saturating_add(claim.lease_ms);
        self.claims
            .insert(hop_id.to_string(), (claim.owner.to_string(), until));
        HopClaimOutcome::Claimed
    }
}

/// In-memory execution store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    executions: Mutex<HashMap<String, Execution>>,
    /// Executions cancelled before they started.
    cancelled_unstarted: Mutex<HashSet<String>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Execution) -> T) -> Result<T, PortError> {
        let mut map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        let exec = map
            .get_mut(id)
            .ok_or_else(|| PortError::permanent_msg(format!("unknown execution `{id}`")))?;
        Ok(f(exec))
    }

    /// Drops a finished execution's state (the Redis store expires it with a TTL instead). The
    /// engine marks a completion sent only after it was delivered, and a caller may forget the
    /// execution as soon as it has the completion: then the state goes when the mark comes, so
    /// the mark never finds the execution unknown.
    pub fn forget(&self, id: &str) {
        let mut map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(id) {
            Some(e) if e.finished.is_some() && !e.completion_sent => e.forget_when_marked = true,
            _ => {
                map.remove(id);
            }
        }
    }

    /// Number of executions held (for tests and leak checks).
    pub fn len(&self) -> usize {
        self.executions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ExecutionStore for MemoryStore {
    /// One process runs every hop: the engine already cancelled its own runs.
    async fn broadcast_node_cancel(
        &self,
        _cancel: &baton_core::wire::NodeCancel,
    ) -> Result<(), PortError> {
        Ok(())
    }

    async fn start(&self, start: &ExecutionStart) -> Result<bool, PortError> {
        let mut map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(&start.execution_id) {
            return Ok(false);
        }
        let mut scopes = HashMap::new();
        scopes.insert(String::new(), start.seed.clone());
        let cancelled = self
            .cancelled_unstarted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&start.execution_id);
        map.insert(
            start.execution_id.clone(),
            Execution {
                scopes,
                pending: if cancelled { 0 } else { start.initial_tokens },
                committed: HashMap::new(),
                claims: HashMap::new(),
                started: false,
                joins: HashMap::new(),
                finished: cancelled.then(|| {
                    (
                        ExecutionStatus::Halted,
                        Some("execution cancelled before it started".to_string()),
                    )
                }),
                completion_sent: false,
                completion_claimed_at: None,
                completion_sender: None,
                finished_by: None,
                forget_when_marked: false,
                started_at_ms: start.started_at_ms,
                workflow_id: start.workflow_id.clone(),
                workflow_ref: start.workflow_ref.clone(),
                waiters: HashMap::new(),
                buffered_signals: HashMap::new(),
                taken_signals: HashMap::new(),
                delivering_signals: HashMap::new(),
            },
        );
        Ok(!cancelled)
    }

    async fn cancel_unstarted(&self, execution_id: &str) -> Result<(), PortError> {
        self.cancelled_unstarted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(execution_id.to_string());
        Ok(())
    }

    async fn lifecycle(&self, execution_id: &str) -> Result<Lifecycle, PortError> {
        let map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map
            .get(execution_id)
            .map_or(Lifecycle::Unknown, Execution::lifecycle))
    }

    /// The default's steps under one lock (it takes one per step).
    async fn begin_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
        scope_chain: &[String],
        keys: &[String],
        claim: Option<HopClaim<'_>>,
    ) -> Result<HopStart, PortError> {
        let mut map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = map.get_mut(execution_id) else {
            return Ok(HopStart {
                lifecycle: Lifecycle::Unknown,
                context: Map::new(),
                committed: None,
                held: None,
            });
        };
        let mut start = HopStart {
            lifecycle: e.lifecycle(),
            context: Map::new(),
            committed: None,
            held: None,
        };
        if start.lifecycle != Lifecycle::Running {
            return Ok(start);
        }
        match claim.map(|claim| e.claim_hop(hop_id, claim)) {
            Some(HopClaimOutcome::Held(held)) => {
                start.held = Some(held);
                return Ok(start);
            }
            Some(HopClaimOutcome::Committed) => start.committed = e.committed_hop(hop_id),
            // Nothing recorded to replay without a claim: skip the lookup (`replays_hops`).
            Some(HopClaimOutcome::Claimed) | None => {}
        }
        if start.committed.is_none() {
            start.context = e.read(scope_chain, keys);
        }
        Ok(start)
    }

    async fn identity(&self, execution_id: &str) -> Result<Option<ExecutionIdentity>, PortError> {
        let map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(execution_id).map(|e| ExecutionIdentity {
            workflow_id: e.workflow_id.clone(),
            workflow_ref: e.workflow_ref.clone(),
        }))
    }

    async fn read(
        &self,
        execution_id: &str,
        scope_chain: &[String],
        keys: &[String],
    ) -> Result<Map<String, Value>, PortError> {
        self.with(execution_id, |e| e.read(scope_chain, keys))
    }

    async fn read_exact(
        &self,
        execution_id: &str,
        entries: &[ScopedKey],
    ) -> Result<Vec<Option<Value>>, PortError> {
        self.with(execution_id, |e| {
            entries
                .iter()
                .map(|at| {
                    e.scopes
                        .get(&at.scope)
                        .and_then(|m| m.get(&at.key))
                        .cloned()
                })
                .collect()
        })
    }

    async fn mark_started(&self, execution_id: &str) -> Result<(), PortError> {
        // Already forgotten (it ran to its end before this): nothing to mark.
        let _ = self.with(execution_id, |e| e.started = true);
        Ok(())
    }

    async fn start_state(&self, execution_id: &str) -> Result<Option<StartState>, PortError> {
        let map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(execution_id).map(|e| StartState {
            started_at_ms: e.started_at_ms,
            first_messages_published: e.started,
        }))
    }

    fn replays_hops(&self) -> bool {
        false
    }

    async fn committed_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
    ) -> Result<Option<CommittedHop>, PortError> {
        self.with(execution_id, |e| e.committed_hop(hop_id))
    }

    async fn claim_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
        claim: HopClaim<'_>,
    ) -> Result<HopClaimOutcome, PortError> {
        self.with(execution_id, |e| e.claim_hop(hop_id, claim))
    }

    async fn mark_handoff_published(
        &self,
        execution_id: &str,
        hop_id: &str,
    ) -> Result<(), PortError> {
        self.with(execution_id, |e| {
            if let Some(handoff) = e.committed.get_mut(hop_id) {
                *handoff = Some(Handoff::default());
            }
        })
    }

    async fn commit(
        &self,
        execution_id: &str,
        commit: HopCommit,
    ) -> Result<CommitOutcome, PortError> {
        self.with(execution_id, |e| e.apply(commit))
    }

    /// `begin_hop`'s checks and `commit`, under one lock.
    async fn run_commit(
        &self,
        execution_id: &str,
        commit: HopCommit,
    ) -> Result<RunCommitOutcome, PortError> {
        let mut map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = map.get_mut(execution_id) else {
            return Ok(RunCommitOutcome::Unknown);
        };
        if e.finished.is_some() {
            return Ok(RunCommitOutcome::Ended(e.lifecycle()));
        }
        if let Some(committed) = e.committed_hop(&commit.hop_id) {
            return Ok(RunCommitOutcome::Duplicate(committed));
        }
        Ok(match e.apply(commit) {
            CommitOutcome::Applied { pending } => RunCommitOutcome::Applied { pending },
            CommitOutcome::Duplicate { pending } => RunCommitOutcome::Duplicate(CommittedHop {
                handoff: None,
                pending,
            }),
        })
    }

    async fn join(
        &self,
        execution_id: &str,
        join_key: &str,
        arrival_key: &str,
        arrival: Value,
        expected: usize,
        release_on_first_real: bool,
    ) -> Result<JoinOutcome, PortError> {
        self.with(execution_id, |e| {
            let j = e.joins.entry(join_key.to_string()).or_default();
            if j.releaser.as_deref() == Some(arrival_key) {
                // The releasing arrival redelivered: release again so its successors go out.
                return JoinOutcome::Released {
                    arrivals: j.arrivals.clone(),
                };
            }
            if j.keys.insert(arrival_key.to_string()) {
                j.arrivals.push(JoinArrival {
                    key: arrival_key.to_string(),
                    value: arrival.clone(),
                });
            }
            if j.releaser.is_some() {
                return JoinOutcome::AlreadyReleased;
            }
            let real = arrival
                .get("real")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if (release_on_first_real && real) || j.keys.len() >= expected {
                j.releaser = Some(arrival_key.to_string());
                return JoinOutcome::Released {
                    arrivals: j.arrivals.clone(),
                };
            }
            JoinOutcome::Waiting {
                arrived: j.keys.len(),
                expected,
            }
        })
    }

    async fn final_context(&self, execution_id: &str) -> Result<FinalContext, PortError> {
        self.with(execution_id, |e| FinalContext {
            context: e.scopes.get("").cloned().unwrap_or_default(),
            started_at_ms: e.started_at_ms,
        })
    }
}

#[async_trait]
impl SignalStore for MemoryStore {
    async fn await_signal(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
        payload: String,
    ) -> Result<Option<Value>, PortError> {
        self.with(execution_id, |e| {
            let taken = (name.to_string(), waiter_id.to_string());
            if let Some(data) = e.taken_signals.get(&taken) {
                return Some(data.clone());
            }
            if let Some(data) = e.buffered_signals.remove(name) {
                e.taken_signals.insert(taken, data.clone());
                return Some(data);
            }
            let list = e.waiters.entry(name.to_string()).or_default();
            if !list.iter().any(|(id, _)| id == waiter_id) {
                list.push((waiter_id.to_string(), payload));
            }
            None
        })
    }

    async fn deliver_signal(
        &self,
        execution_id: &str,
        name: &str,
        data: Value,
    ) -> Result<Vec<SignalWaiter>, PortError> {
        self.with(execution_id, |e| {
            let taken = e.waiters.remove(name).unwrap_or_default();
            let delivering = e.delivering_signals.entry(name.to_string()).or_default();
            for waiter in taken {
                if !delivering.iter().any(|(id, _)| *id == waiter.0) {
                    delivering.push(waiter);
                }
            }
            if delivering.is_empty() {
                e.buffered_signals.insert(name.to_string(), data);
            }
            delivering
                .iter()
                .map(|(waiter_id, resume)| SignalWaiter {
                    waiter_id: waiter_id.clone(),
                    resume: resume.clone(),
                })
                .collect()
        })
    }

    async fn signal_resumed(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
    ) -> Result<(), PortError> {
        self.with(execution_id, |e| {
            if let Some(list) = e.delivering_signals.get_mut(name) {
                list.retain(|(id, _)| id != waiter_id);
            }
        })
    }

    async fn remove_signal_waiter(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
    ) -> Result<bool, PortError> {
        self.with(execution_id, |e| {
            let Some(list) = e.waiters.get_mut(name) else {
                return false;
            };
            let before = list.len();
            list.retain(|(id, _)| id != waiter_id);
            before != list.len()
        })
    }
}

#[async_trait]
impl CompletionLedger for MemoryStore {
    async fn finish_by(
        &self,
        execution_id: &str,
        status: ExecutionStatus,
        reason: Option<String>,
        hop_id: &str,
    ) -> Result<bool, PortError> {
        self.with(execution_id, |e| {
            if e.finished.is_some() {
                return false;
            }
            e.finished = Some((status, reason));
            e.finished_by = (!hop_id.is_empty()).then(|| hop_id.to_string());
            true
        })
    }

    async fn finished_by(&self, execution_id: &str) -> Result<Option<String>, PortError> {
        let map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(execution_id).and_then(|e| e.finished_by.clone()))
    }

    async fn claim_completion(
        &self,
        execution_id: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<CompletionClaim, PortError> {
        let mut map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = map.get_mut(execution_id) else {
            return Ok(CompletionClaim::Unknown);
        };
        Ok(match e.completion_claimed_at {
            _ if e.completion_sent => CompletionClaim::Sent,
            Some(at) if now_ms < at.saturating_add(lease_ms) => CompletionClaim::Held,
            _ => {
                e.completion_claimed_at = Some(now_ms);
                CompletionClaim::Claimed
            }
        })
    }

    async fn adopt_completion(
        &self,
        execution_id: &str,
        sender: &str,
    ) -> Result<CompletionAdoption, PortError> {
        let mut map = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = map.get_mut(execution_id) else {
            return Ok(CompletionAdoption::Unknown);
        };
        Ok(match &e.completion_sender {
            _ if e.finished.is_none() => CompletionAdoption::Unknown,
            _ if e.completion_sent => CompletionAdoption::Sent,
            Some(s) if s == sender => CompletionAdoption::Again,
            Some(_) => CompletionAdoption::Another,
            None => {
                e.completion_sender = Some(sender.to_string());
                CompletionAdoption::Adopted
            }
        })
    }

    async fn mark_completion_sent(&self, execution_id: &str) -> Result<bool, PortError> {
        let (first, forget) = self.with(execution_id, |e| {
            let first = !std::mem::replace(&mut e.completion_sent, true);
            (first, e.forget_when_marked)
        })?;
        if forget {
            self.forget(execution_id);
        }
        Ok(first)
    }
}
