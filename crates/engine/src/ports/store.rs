//! The state ports: per-execution state (`ExecutionStore`), signal waiters (`SignalStore`), the
//! final status and the sending of completions (`CompletionLedger`), and the named values they
//! take and return. `StatePorts` is one object implementing all three, as both adapters do.

use async_trait::async_trait;
use baton_core::message::{ExecutionStatus, HopMessage};
use baton_core::wire::NodeCancel;
use serde_json::{Map, Value};

use super::PortError;

/// Everything an execution starts with.
#[derive(Debug, Clone)]
pub struct ExecutionStart {
    pub execution_id: String,
    pub workflow_id: String,
    pub workflow_ref: String,
    /// Initial context (`$input`, `$trigger`, keys seeded by a master).
    pub seed: Map<String, Value>,
    /// Number of messages the execution starts with.
    pub initial_tokens: i64,
    pub started_at_ms: u64,
    /// When the workflow's `timeout_ms` ends it (unix ms): a store that expires keys keeps
    /// those of the running execution about that long (plus its finished-execution
    /// retention) instead of forever. `None`: no deadline, kept until it finishes.
    pub deadline_at_ms: Option<u64>,
}

/// Where an existing execution's start stands (see [`ExecutionStore::start_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartState {
    pub started_at_ms: u64,
    /// Its first messages are published (a duplicate start has nothing left to do).
    pub first_messages_published: bool,
}

/// Which workflow an execution runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionIdentity {
    pub workflow_id: String,
    /// The content hash of the definition it is pinned to.
    pub workflow_ref: String,
}

/// Where an execution stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Lifecycle {
    /// Unknown execution (never started, or expired).
    Unknown,
    Running,
    /// Reached a final status; `completion_sent` is false while an `on_failure` node runs.
    Finished {
        status: ExecutionStatus,
        reason: Option<String>,
        completion_sent: bool,
    },
}

/// One context entry's address: a key in a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedKey {
    pub scope: String,
    pub key: String,
}

/// A context value a hop writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextWrite {
    pub scope: String,
    pub key: String,
    pub value: Value,
}

impl ContextWrite {
    pub fn new(scope: impl Into<String>, key: impl Into<String>, value: Value) -> Self {
        Self {
            scope: scope.into(),
            key: key.into(),
            value,
        }
    }
}

/// The messages a hop hands on, kept with its commit so that a redelivery of the hop
/// re-publishes exactly them instead of running the node again. Stored as JSON
/// (`{"now": [...], "later": [[delay_ms, message], ...]}`, empty lists left out): that shape is
/// durable, a rolling upgrade reads what the previous version wrote.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Handoff {
    /// Published at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub now: Vec<HopMessage>,
    /// Published after a delay (timers, retry backoff): `(delay_ms, message)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later: Vec<(u64, HopMessage)>,
}

impl Handoff {
    /// The stored form.
    pub fn encode(&self) -> Result<String, PortError> {
        serde_json::to_string(self)
            .map_err(|e| PortError::permanent(format!("cannot encode successors: {e}"), e))
    }

    /// Reads the stored form.
    pub fn decode(stored: &str) -> Result<Self, PortError> {
        serde_json::from_str(stored).map_err(|e| {
            PortError::permanent(format!("recorded successors are not readable: {e}"), e)
        })
    }
}

/// One hop's durable effects, applied atomically and at most once per `hop_id`.
#[derive(Debug, Clone, Default)]
pub struct HopCommit {
    pub hop_id: String,
    /// The context values this hop writes.
    pub outputs: Vec<ContextWrite>,
    /// Messages this hop hands on (each one is a token of the execution).
    pub tokens_out: i64,
    /// Those messages, recorded for a redelivery to replay (`None`: not recorded, for a store
    /// that never redelivers).
    pub handoff: Option<Handoff>,
}

/// A hop found already committed (a redelivery).
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedHop {
    /// What it handed on (`None` when not recorded).
    pub handoff: Option<Handoff>,
    /// The execution's pending tokens.
    pub pending: i64,
}

/// A worker's request to run one hop alone for a while (see [`ExecutionStore::claim_hop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopClaim<'a> {
    /// Who runs it: one id per worker process (`Engine::with_worker_id`).
    pub owner: &'a str,
    /// The claimer's clock (ms): the claim holds until `now_ms + lease_ms`.
    pub now_ms: u64,
    pub lease_ms: u64,
}

/// Another worker's live claim on a hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldClaim {
    pub owner: String,
    /// When it expires unless renewed (ms, the claimer's clock).
    pub expires_at_ms: u64,
}

/// The answer to [`ExecutionStore::claim_hop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopClaimOutcome {
    /// Yours until `now_ms + lease_ms` (taken, renewed, or taken over from an expired claim).
    Claimed,
    /// Another owner holds a live claim: do not run the hop.
    Held(HeldClaim),
    /// The hop already committed: nothing to run (replay what it handed on).
    Committed,
}

/// What a hop finds when it begins (see [`ExecutionStore::begin_hop`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HopStart {
    pub lifecycle: Lifecycle,
    /// The requested context keys (empty unless running, not yet committed and not held).
    pub context: Map<String, Value>,
    /// Set when this very hop already committed (a redelivery, or a duplicate).
    pub committed: Option<CommittedHop>,
    /// Set when a claim was asked for and another worker holds a live one (then nothing else
    /// is read).
    pub held: Option<HeldClaim>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommitOutcome {
    /// Applied; `pending` tokens remain in the execution (0 = it is complete).
    Applied { pending: i64 },
    /// This hop was committed before (a redelivery): re-publish its messages, change nothing.
    /// `pending` lets a redelivery finish an execution whose first attempt died before it could.
    Duplicate { pending: i64 },
}

/// The answer to [`ExecutionStore::run_commit`]: a hop's commit with the checks `begin_hop`
/// would have made before the run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunCommitOutcome {
    /// No such execution (never started, or expired): nothing written.
    Unknown,
    /// The execution finished (completed, halted, cancelled): nothing written. Always a
    /// [`Lifecycle::Finished`].
    Ended(Lifecycle),
    /// This hop committed before (a duplicate or a redelivery): nothing written; what it
    /// handed on, for a replay.
    Duplicate(CommittedHop),
    /// Applied; `pending` tokens remain in the execution (0 = it is complete).
    Applied { pending: i64 },
}

/// The answer to [`CompletionLedger::claim_completion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionClaim {
    /// Yours to send: publish it, then mark it sent.
    Claimed,
    /// Another sender claimed it less than a lease ago.
    Held,
    /// Already sent.
    Sent,
    /// No such execution.
    Unknown,
}

/// The answer to [`CompletionLedger::adopt_completion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionAdoption {
    /// The first sender to ask: the completion is yours to send (then mark it sent).
    Adopted,
    /// This sender adopted it before (it asks again: a redelivery of its request, or a copy).
    Again,
    /// Another sender adopted it: it sends it, drop this request.
    Another,
    /// Already sent.
    Sent,
    /// No such execution, or not finished.
    Unknown,
}

/// One arrival at a join.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinArrival {
    /// The arrival key (which branch arrived).
    pub key: String,
    pub value: Value,
}

/// A join arrival result.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinOutcome {
    /// Still waiting; `arrived` of `expected` so far.
    Waiting { arrived: usize, expected: usize },
    /// This arrival released the join (exactly one arrival gets this). Arrivals in arrival order.
    Released { arrivals: Vec<JoinArrival> },
    /// The join had already released (a late `wait_for_any` arrival or a duplicate).
    AlreadyReleased,
}

/// A node waiting for a signal, taken by [`SignalStore::deliver_signal`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SignalWaiter {
    pub waiter_id: String,
    /// What the engine registered to resume it with.
    pub resume: String,
}

/// What a finished execution's completion carries.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalContext {
    /// The union of every top-level node output.
    pub context: Map<String, Value>,
    pub started_at_ms: u64,
}

/// Per-execution state: lifecycle, context, hop commits, joins.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Creates the execution. Returns false if it already exists (a duplicate start) or was
    /// cancelled before it started (then it exists, halted, and its completion is due).
    async fn start(&self, start: &ExecutionStart) -> Result<bool, PortError>;
    /// Remembers a cancel that arrived before the execution's start (messages on different
    /// workers race): that start then creates the execution already halted.
    async fn cancel_unstarted(&self, execution_id: &str) -> Result<(), PortError>;
    /// Records that the execution's first messages are published: a duplicate start then has
    /// nothing left to do.
    async fn mark_started(&self, execution_id: &str) -> Result<(), PortError>;
    /// Where an existing execution's start stands.
    async fn start_state(&self, execution_id: &str) -> Result<Option<StartState>, PortError>;
    async fn lifecycle(&self, execution_id: &str) -> Result<Lifecycle, PortError>;
    /// Which workflow an execution runs, if it exists.
    async fn identity(&self, execution_id: &str) -> Result<Option<ExecutionIdentity>, PortError>;
    /// Reads `keys`, each from the innermost scope of `scope_chain` that has it.
    async fn read(
        &self,
        execution_id: &str,
        scope_chain: &[String],
        keys: &[String],
    ) -> Result<Map<String, Value>, PortError>;
    /// The execution's lifecycle, whether hop `hop_id` already committed, with `claim` the
    /// claim on running it (see [`claim_hop`](Self::claim_hop); only while running and not
    /// committed), and the context keys the hop needs: in one round trip where the store can
    /// (the Redis store overrides this).
    async fn begin_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
        scope_chain: &[String],
        keys: &[String],
        claim: Option<HopClaim<'_>>,
    ) -> Result<HopStart, PortError> {
        let lifecycle = self.lifecycle(execution_id).await?;
        let mut start = HopStart {
            lifecycle,
            context: Map::new(),
            committed: None,
            held: None,
        };
        if start.lifecycle != Lifecycle::Running {
            return Ok(start);
        }
        let committed = match claim {
            Some(claim) => match self.claim_hop(execution_id, hop_id, claim).await? {
                HopClaimOutcome::Claimed => None,
                HopClaimOutcome::Held(held) => {
                    start.held = Some(held);
                    return Ok(start);
                }
                HopClaimOutcome::Committed => self.committed_hop(execution_id, hop_id).await?,
            },
            // Nothing recorded to replay: skip the lookup.
            None if !self.replays_hops() => None,
            None => self.committed_hop(execution_id, hop_id).await?,
        };
        if committed.is_some() {
            start.committed = committed;
            return Ok(start);
        }
        start.context = self.read(execution_id, scope_chain, keys).await?;
        Ok(start)
    }
    /// Claims the running of hop `hop_id` for `claim.owner` until `now_ms + lease_ms`, unless
    /// it committed or another owner holds a claim that has not expired. The same owner
    /// claiming again renews its claim (what a running hop does every third of its lease); a
    /// commit releases it. So two copies of one message never run its node side by side, and
    /// a copy whose claimer died runs once the claim expires.
    async fn claim_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
        claim: HopClaim<'_>,
    ) -> Result<HopClaimOutcome, PortError>;
    /// Records that what hop `hop_id` handed on is published (confirmed): its recorded handoff
    /// becomes empty, so a later replay of the hop publishes nothing again. Does nothing if the
    /// hop did not commit.
    async fn mark_handoff_published(
        &self,
        execution_id: &str,
        hop_id: &str,
    ) -> Result<(), PortError>;
    /// Whether commits should carry a `handoff` (a store whose messages are never redelivered,
    /// like the embedded one, saves the encoding).
    fn replays_hops(&self) -> bool {
        true
    }
    /// What hop `hop_id` handed on and the pending tokens, if it committed.
    async fn committed_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
    ) -> Result<Option<CommittedHop>, PortError>;
    /// Reads exact entries.
    async fn read_exact(
        &self,
        execution_id: &str,
        entries: &[ScopedKey],
    ) -> Result<Vec<Option<Value>>, PortError>;
    async fn commit(
        &self,
        execution_id: &str,
        commit: HopCommit,
    ) -> Result<CommitOutcome, PortError>;
    /// A hop that ran without `begin_hop` (a pure node with no reads: RFC 0011, "one round
    /// trip"), committed with `begin_hop`'s checks, atomically: an unknown execution is
    /// `Unknown`, a finished one `Ended`, a hop that already committed `Duplicate` (with what
    /// it handed on, as `committed_hop` says), and only a running execution's first commit of
    /// the hop is applied, as [`commit`](Self::commit) applies it (it releases any claim on the
    /// hop too). Unlike `commit`, it never writes into a finished execution. The default is
    /// those steps one after the other, not atomic: both adapters override it.
    async fn run_commit(
        &self,
        execution_id: &str,
        commit: HopCommit,
    ) -> Result<RunCommitOutcome, PortError> {
        match self.lifecycle(execution_id).await? {
            Lifecycle::Unknown => return Ok(RunCommitOutcome::Unknown),
            Lifecycle::Running => {}
            ended @ Lifecycle::Finished { .. } => return Ok(RunCommitOutcome::Ended(ended)),
        }
        let hop_id = commit.hop_id.clone();
        Ok(match self.commit(execution_id, commit).await? {
            CommitOutcome::Applied { pending } => RunCommitOutcome::Applied { pending },
            CommitOutcome::Duplicate { pending } => RunCommitOutcome::Duplicate(
                self.committed_hop(execution_id, &hop_id)
                    .await?
                    .unwrap_or(CommittedHop {
                        handoff: None,
                        pending,
                    }),
            ),
        })
    }
    /// Records an arrival at a join. Duplicate `arrival_key`s are ignored.
    async fn join(
        &self,
        execution_id: &str,
        join_key: &str,
        arrival_key: &str,
        arrival: Value,
        expected: usize,
        release_on_first_real: bool,
    ) -> Result<JoinOutcome, PortError>;
    /// Top-level context (the union of every top-level node output) and the start time.
    async fn final_context(&self, execution_id: &str) -> Result<FinalContext, PortError>;
    /// Tells every process running hops of this execution to cancel the runs of some of its
    /// nodes (a race's losers). Best effort, like the execution cancel broadcast: the
    /// cancellation markers the release committed are what drops the losers' later messages;
    /// this only interrupts runs already in flight elsewhere. A store whose hops all run in
    /// one process (the embedded one) has nobody to tell.
    async fn broadcast_node_cancel(&self, cancel: &NodeCancel) -> Result<(), PortError>;
}

/// Nodes waiting for signals, and signals waiting for nodes.
#[async_trait]
pub trait SignalStore: Send + Sync {
    /// A wait node starts waiting for signal `name`. If that signal already arrived (buffered),
    /// it is consumed and returned instead of registering the waiter.
    async fn await_signal(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
        payload: String,
    ) -> Result<Option<Value>, PortError>;
    /// Delivers signal `name`: takes every waiter (a timeout no longer finds it) and returns
    /// them, with the waiters an earlier delivery took and did not report resumed (it failed
    /// or died half way: this one finishes them). With none, the signal is buffered for the
    /// next waiter.
    async fn deliver_signal(
        &self,
        execution_id: &str,
        name: &str,
        data: Value,
    ) -> Result<Vec<SignalWaiter>, PortError>;
    /// A waiter [`deliver_signal`](Self::deliver_signal) took is resumed (its resume committed
    /// and published): no later delivery returns it.
    async fn signal_resumed(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
    ) -> Result<(), PortError>;
    /// Removes a waiter (its timeout fired); true if it was still waiting.
    async fn remove_signal_waiter(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
    ) -> Result<bool, PortError>;
}

/// The final status of an execution and the sending of its completion, exactly once.
#[async_trait]
pub trait CompletionLedger: Send + Sync {
    /// Sets the final status; only the first caller gets `true`.
    async fn finish(
        &self,
        execution_id: &str,
        status: ExecutionStatus,
        reason: Option<String>,
    ) -> Result<bool, PortError> {
        self.finish_by(execution_id, status, reason, "").await
    }
    /// `finish` by hop `hop_id` (empty: not by a hop), which the store remembers (see
    /// `finished_by`): a redelivery of the hop that halted an execution can then tell that it
    /// did, and re-publish what its first delivery may have lost (the `on_failure` message).
    async fn finish_by(
        &self,
        execution_id: &str,
        status: ExecutionStatus,
        reason: Option<String>,
        hop_id: &str,
    ) -> Result<bool, PortError>;
    /// The hop id given to the `finish_by` call that finished the execution (none if it was
    /// finished by no hop).
    async fn finished_by(&self, execution_id: &str) -> Result<Option<String>, PortError>;
    /// Claims the sending of a finished execution's completion for `lease_ms`: the claimer
    /// publishes it, then marks it sent. A claim older than the lease (its holder died between
    /// the two) can be taken over, so a completion is never lost; it is repeated only if a
    /// holder dies after the broker confirmed it and before it marked it sent.
    async fn claim_completion(
        &self,
        execution_id: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<CompletionClaim, PortError>;
    /// Gives the sending of a finished execution's completion to `sender` for good (no lease):
    /// the first sender to ask adopts it, every other one is told `Another`. For a relay whose
    /// requests are redelivered until they are settled together with the completion's publish
    /// (an AMQP transaction): the adopter's request comes back until it is sent, so dropping
    /// the others loses nothing and never repeats it.
    async fn adopt_completion(
        &self,
        execution_id: &str,
        sender: &str,
    ) -> Result<CompletionAdoption, PortError>;
    /// Marks the completion as sent (after its publish is confirmed); only the first caller
    /// gets `true`.
    async fn mark_completion_sent(&self, execution_id: &str) -> Result<bool, PortError>;
}

/// All the state ports in one object (what the engine takes); every type implementing the
/// three is one.
pub trait StatePorts: ExecutionStore + SignalStore + CompletionLedger {}

impl<T: ExecutionStore + SignalStore + CompletionLedger + ?Sized> StatePorts for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(node: &str) -> HopMessage {
        serde_json::from_value(json!({
            "execution_id": "e", "workflow_id": "w", "workflow_ref": "r",
            "node_id": node, "kind": "run"
        }))
        .expect("hop message")
    }

    /// Redis keeps handoffs across a rolling upgrade: the stored shape must not change.
    #[test]
    fn a_handoff_is_stored_in_the_shape_earlier_versions_wrote_and_read() {
        assert_eq!(Handoff::default().encode().expect("encodes"), "{}");
        let now_only = Handoff {
            now: vec![message("b")],
            later: Vec::new(),
        };
        let stored: Value = serde_json::from_str(&now_only.encode().expect("encodes")).unwrap();
        assert_eq!(
            stored,
            json!({"now": [serde_json::to_value(message("b")).unwrap()]})
        );
        let later_only = Handoff {
            now: Vec::new(),
            later: vec![(500, message("c"))],
        };
        let stored: Value = serde_json::from_str(&later_only.encode().expect("encodes")).unwrap();
        assert_eq!(
            stored,
            json!({"later": [[500, serde_json::to_value(message("c")).unwrap()]]})
        );
        let old = format!(
            r#"{{"later":[[500,{}]]}}"#,
            serde_json::to_string(&message("c")).unwrap()
        );
        assert_eq!(Handoff::decode(&old).expect("decodes"), later_only);
    }
}
