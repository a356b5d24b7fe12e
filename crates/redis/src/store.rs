//! `RedisStore`: the production `ExecutionStore`. Same semantics as `baton_memory::MemoryStore`;
//! every operation that touches several keys is one Lua script, and every key it touches is
//! passed in `KEYS[]` and carries the execution's hash tag, so it runs unchanged on a cluster.
//!
//! Keys of execution `E` (prefix `P`):
//!
//! | Key | Type | Holds |
//! |---|---|---|
//! | `P:{E}:meta` | hash | `workflow_id`, `workflow_ref`, `started_at`, `published` (first messages out), `pending`, `status`, `reason`, `completion_claimed_at`, `completion_sent` |
//! | `P:{E}:ctx` | hash | context: field `scope ␟ key` (U+001F) → JSON text |
//! | `P:{E}:top` | list | top-level context keys in first-write order (the `final_context` order) |
//! | `P:{E}:cancelled` | string | set when a cancel arrives before the start: the start then creates the execution halted |
//! | `P:{E}:hops` | hash | committed hop id → the messages it handed on (JSON; `{}` once published), replayed on redelivery; `␟` hop id → the claim on running it (`owner|expires_at_ms`), until its commit |
//! | `P:{E}:join:<join key>` | hash | one join's arrivals (in order) and its releaser |
//! | `P:{E}:keys` | set | every dynamic (`join:`) key, so `finish` can put the TTL on all of them |
//!
//! `finish` sets `completed_ttl_secs` on every key; a write after `finish` (an `on_failure`
//! node) copies the remaining TTL onto the keys it touches, so nothing outlives the execution.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use baton_engine::ports::{
    CommitOutcome, CommittedHop, ExecutionIdentity, ExecutionStart, ExecutionStore, FinalContext,
    HeldClaim, HopClaim, HopClaimOutcome, HopCommit, HopStart, JoinArrival, JoinOutcome, Lifecycle,
    PortError, RunCommitOutcome, ScopedKey, StartState,
};
use redis::{ScriptInvocation, Value as R};
use serde_json::{Map, Value};

use crate::connect::{RedisConnection, RedisTarget, Timeouts};
use crate::fence::{Fence, FenceCounts};
use crate::reply;
use crate::{DefinitionStore, Error, RedisCatalog, TimerStore};

mod cancels;
mod decode;
mod options;
mod run_commit;
mod scripts;

pub(crate) use decode::status_name;
use decode::{LIFECYCLE_FIELDS, field, handoff_of, lifecycle_of, pending_of, running_ttl_secs};
pub use options::RedisOptions;
pub(crate) use scripts::{ExecKeys, SCRIPTS};

/// Separates the scope from the context key in a `ctx` field.
const SEP: char = '\u{1f}';
/// How often `finish` re-reads the dynamic keys when joins keep arriving while it runs.
pub(crate) const FINISH_ATTEMPTS: usize = 16;

/// The Redis execution store; cheap to clone (one shared, self-reconnecting connection).
#[derive(Clone)]
pub struct RedisStore {
    target: RedisTarget,
    pub(crate) conn: RedisConnection,
    prefix: Arc<str>,
    pub(crate) ttl_secs: u64,
    buckets: u32,
    /// Cluster mode with a wait bound: confirms writes on a replica (`fence.rs`).
    fence: Option<Fence>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects (fails if Redis is unreachable now); later drops are reconnected in the
    /// background, and the command that hit a drop fails with a `PortError`.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, Error> {
        let prefix = options.key_prefix;
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(Error::InvalidPrefix(prefix));
        }
        let target = RedisTarget::parse(url, options.cluster)?;
        let timeouts = Timeouts {
            response: Duration::from_millis(options.response_timeout_ms),
            connect: Duration::from_millis(options.connect_timeout_ms),
        };
        let conn = crate::connect::connect(&target, timeouts).await?;
        let fence = match (target.is_cluster(), options.replication_wait_ms) {
            (true, wait_ms) if wait_ms > 0 => Some(Fence::new(
                conn.clone(),
                &target.urls()[0],
                &prefix,
                wait_ms,
                timeouts,
            )?),
            _ => None,
        };
        Ok(Self {
            target,
            conn,
            prefix: prefix.into(),
            ttl_secs: options.completed_ttl_secs,
            buckets: options.buckets.max(1),
            fence,
        })
    }

    /// Cluster mode: returns once the writes acknowledged so far by `key`'s primary are on a
    /// replica (see `fence.rs`). Single node, or no wait bound: at once, nothing sent.
    pub(crate) async fn replicated(&self, key: &str) -> Result<(), Error> {
        match &self.fence {
            Some(fence) => fence.confirm(key).await,
            None => Ok(()),
        }
    }

    /// What this store's replication fences did; `None` when it has none (a single node, or
    /// `replication_wait_ms` 0).
    pub fn fence_counts(&self) -> Option<FenceCounts> {
        self.fence.as_ref().map(Fence::counts)
    }

    pub(crate) async fn signal_op(
        &self,
        execution_id: &str,
        args: &[&str],
        fence: bool,
    ) -> Result<(String, Vec<redis::Value>), PortError> {
        let k = self.keys(execution_id);
        let mut inv = SCRIPTS.signal.prepare_invoke();
        inv.key(&k.meta)
            .key(self.exec_key(execution_id, "signals"))
            .key(&k.keys);
        for a in args {
            inv.arg(*a);
        }
        let (tag, rest) = reply::tagged(self.invoke(&inv, false).await?)?;
        if fence {
            self.replicated(&k.meta).await?;
        }
        if tag == "unknown" {
            return Err(Error::UnknownExecution(execution_id.into()).into());
        }
        Ok((tag, rest))
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Workflow definitions by reference, on the same connection.
    pub fn definitions(&self) -> DefinitionStore {
        DefinitionStore::fenced(self.conn.clone(), &self.prefix, self.fence.clone())
    }

    /// Named, versioned workflow definitions, on the same connection and key prefix.
    pub fn catalog(&self) -> RedisCatalog {
        RedisCatalog::new(self.conn.clone(), &self.prefix)
    }

    /// Durable timers, on the same connection.
    pub fn timers(&self) -> TimerStore {
        TimerStore::new(
            self.conn.clone(),
            &self.prefix,
            self.buckets,
            self.fence.clone(),
        )
    }

    /// Durable delivery counts (the crash budget), on the same connection and key prefix.
    pub fn deliveries(&self) -> crate::DeliveryCounts {
        crate::DeliveryCounts::new(self.conn.clone(), &self.prefix)
    }

    /// The shared connection (single node or cluster), for adapters of other crates that
    /// should not open one of their own (the master's history, the vault).
    pub fn connection(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// Where this store connects.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// Readiness: one `PING`.
    pub async fn ping(&self) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    pub(crate) fn exec_key(&self, execution_id: &str, part: &str) -> String {
        format!("{}:{{{execution_id}}}:{part}", self.prefix)
    }

    pub(crate) fn keys(&self, execution_id: &str) -> ExecKeys {
        ExecKeys {
            meta: self.exec_key(execution_id, "meta"),
            ctx: self.exec_key(execution_id, "ctx"),
            top: self.exec_key(execution_id, "top"),
            hops: self.exec_key(execution_id, "hops"),
            keys: self.exec_key(execution_id, "keys"),
        }
    }

    /// Runs a script. `idempotent` scripts (reads) are retried once if the connection dropped
    /// under them (the manager has reconnected by then).
    pub(crate) async fn invoke(
        &self,
        inv: &ScriptInvocation<'_>,
        idempotent: bool,
    ) -> Result<R, Error> {
        let mut conn = self.conn.clone();
        match inv.invoke_async(&mut conn).await {
            Err(e) if idempotent && (e.is_connection_dropped() || e.is_io_error()) => {
                Ok(inv.invoke_async(&mut conn).await?)
            }
            r => Ok(r?),
        }
    }

    /// Runs a read-only pipeline, once more if the connection dropped under it (the manager
    /// has reconnected by then).
    pub(crate) async fn read_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, Error> {
        let mut conn = self.conn.clone();
        match pipe.query_async(&mut conn).await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                Ok(pipe.query_async(&mut conn).await?)
            }
            r => Ok(r?),
        }
    }

    /// `read.lua`.
    async fn read_script(
        &self,
        execution_id: &str,
        scope_chain: &[String],
        keys: &[String],
    ) -> Result<(String, Vec<R>), Error> {
        let mut inv = SCRIPTS.read.prepare_invoke();
        inv.key(self.exec_key(execution_id, "meta"))
            .key(self.exec_key(execution_id, "ctx"))
            .arg(scope_chain.len())
            .arg(scope_chain)
            .arg(keys);
        reply::tagged(self.invoke(&inv, true).await?)
    }
}

#[async_trait]
impl ExecutionStore for RedisStore {
    /// On the cancellation channel, next to execution ids (`subscribe_cancels` yields both).
    async fn broadcast_node_cancel(
        &self,
        cancel: &baton_core::wire::NodeCancel,
    ) -> Result<(), PortError> {
        self.publish_cancel(&cancel.to_payload())
            .await
            .map_err(PortError::from)
    }

    async fn start(&self, start: &ExecutionStart) -> Result<bool, PortError> {
        let k = self.keys(&start.execution_id);
        let mut inv = SCRIPTS.start.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.ctx)
            .key(&k.top)
            .key(self.exec_key(&start.execution_id, "cancelled"))
            .arg(&start.workflow_id)
            .arg(&start.workflow_ref)
            .arg(start.started_at_ms)
            .arg(start.initial_tokens)
            .arg(self.ttl_secs)
            .arg(running_ttl_secs(
                start.deadline_at_ms,
                start.started_at_ms,
                self.ttl_secs,
            ));
        for (key, value) in &start.seed {
            inv.arg(key).arg(value.to_string());
        }
        let created = reply::int(&self.invoke(&inv, false).await?)?;
        self.replicated(&k.meta).await?;
        Ok(created == 1)
    }

    async fn cancel_unstarted(&self, execution_id: &str) -> Result<(), PortError> {
        let mut conn = self.conn.clone();
        // Kept as long as a finished execution, at least an hour: a start that late is a
        // redelivery long after anyone waited for it.
        let ttl = self.ttl_secs.max(3_600);
        let key = self.exec_key(execution_id, "cancelled");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("1")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(self.replicated(&key).await?)
    }

    async fn mark_started(&self, execution_id: &str) -> Result<(), PortError> {
        let mut inv = SCRIPTS.mark_started.prepare_invoke();
        inv.key(self.exec_key(execution_id, "meta"));
        self.invoke(&inv, true).await?;
        Ok(())
    }

    async fn start_state(&self, execution_id: &str) -> Result<Option<StartState>, PortError> {
        let mut conn = self.conn.clone();
        let (started, published): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.exec_key(execution_id, "meta"))
            .arg(&["started_at", "published"])
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(started.map(|at| StartState {
            started_at_ms: at,
            first_messages_published: published.is_some(),
        }))
    }

    async fn lifecycle(&self, execution_id: &str) -> Result<Lifecycle, PortError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(self.exec_key(execution_id, "meta"))
            .arg(&LIFECYCLE_FIELDS);
        let (fields,): (Vec<Option<String>>,) = self.read_pipe(&pipe).await?;
        Ok(lifecycle_of(&fields)?)
    }

    async fn identity(&self, execution_id: &str) -> Result<Option<ExecutionIdentity>, PortError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("HMGET")
            .arg(self.exec_key(execution_id, "meta"))
            .arg(&["workflow_id", "workflow_ref"])
            .to_owned();
        let fields: Vec<Option<String>> = cmd.query_async(&mut conn).await.map_err(Error::from)?;
        Ok(match fields.as_slice() {
            [Some(id), Some(r)] => Some(ExecutionIdentity {
                workflow_id: id.clone(),
                workflow_ref: r.clone(),
            }),
            _ => None,
        })
    }

    async fn read(
        &self,
        execution_id: &str,
        scope_chain: &[String],
        keys: &[String],
    ) -> Result<Map<String, Value>, PortError> {
        match self.read_script(execution_id, scope_chain, keys).await? {
            (tag, _) if tag == "unknown" => {
                Err(Error::UnknownExecution(execution_id.into()).into())
            }
            (_, rest) => Ok(reply::map(&rest)?),
        }
    }

    /// One script (`begin_hop.lua`): the lifecycle, whether this hop already committed, the
    /// claim on running it (when asked for) and the requested keys (and only those), each from
    /// the innermost scope of the chain that has it.
    async fn begin_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
        scope_chain: &[String],
        keys: &[String],
        claim: Option<HopClaim<'_>>,
    ) -> Result<HopStart, PortError> {
        let k = self.keys(execution_id);
        let mut inv = SCRIPTS.begin_hop.prepare_invoke();
        inv.key(&k.meta).key(&k.ctx).key(&k.hops).arg(hop_id);
        let claiming = claim.is_some();
        match claim {
            Some(c) => inv.arg(c.owner).arg(c.now_ms).arg(c.lease_ms),
            None => inv.arg("").arg(0).arg(0),
        };
        inv.arg(scope_chain.len()).arg(scope_chain).arg(keys);
        // Safe to repeat: the same owner claiming again only renews its claim.
        let items = reply::array(self.invoke(&inv, true).await?)?;
        if claiming {
            // The claim, and whatever this hop then relies on (a commit it replays, a finish).
            self.replicated(&k.meta).await?;
        }
        let text = |i: usize| -> Result<Option<String>, Error> {
            match items.get(i) {
                None | Some(R::Nil) => Ok(None),
                Some(v) => reply::text(v).map(Some),
            }
        };
        let meta = (0..4).map(text).collect::<Result<Vec<_>, _>>()?;
        let mut start = HopStart {
            lifecycle: lifecycle_of(&meta)?,
            context: Map::new(),
            committed: None,
            held: None,
        };
        if start.lifecycle != Lifecycle::Running {
            return Ok(start);
        }
        if let Some(handed) = text(5)? {
            start.committed = Some(CommittedHop {
                handoff: handoff_of(&handed)?,
                pending: pending_of(text(4)?.as_deref())?,
            });
            return Ok(start);
        }
        if let (Some(owner), Some(until)) = (text(6)?, text(7)?) {
            let expires_at_ms = until
                .parse()
                .map_err(|_| Error::Protocol(format!("hop claim expiry is `{until}`")))?;
            start.held = Some(HeldClaim {
                owner,
                expires_at_ms,
            });
            return Ok(start);
        }
        let values = items.get(8..).unwrap_or_default();
        for (key, value) in keys.iter().zip(values) {
            if *value != R::Nil {
                start.context.insert(key.clone(), reply::json(key, value)?);
            }
        }
        Ok(start)
    }

    async fn claim_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
        claim: HopClaim<'_>,
    ) -> Result<HopClaimOutcome, PortError> {
        let start = self
            .begin_hop(execution_id, hop_id, &[], &[], Some(claim))
            .await?;
        Ok(match start {
            HopStart {
                lifecycle: Lifecycle::Unknown,
                ..
            } => return Err(Error::UnknownExecution(execution_id.into()).into()),
            HopStart {
                held: Some(held), ..
            } => HopClaimOutcome::Held(held),
            // Committed, or the execution finished: nothing left to run.
            HopStart {
                lifecycle: Lifecycle::Finished { .. },
                ..
            }
            | HopStart {
                committed: Some(_), ..
            } => HopClaimOutcome::Committed,
            _ => HopClaimOutcome::Claimed,
        })
    }

    async fn mark_handoff_published(
        &self,
        execution_id: &str,
        hop_id: &str,
    ) -> Result<(), PortError> {
        let mut inv = SCRIPTS.mark_handoff_published.prepare_invoke();
        inv.key(self.exec_key(execution_id, "hops")).arg(hop_id);
        self.invoke(&inv, true).await?;
        Ok(())
    }

    async fn committed_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
    ) -> Result<Option<CommittedHop>, PortError> {
        // Whatever the lifecycle: a finished execution's hops stay recorded until its TTL.
        let k = self.keys(execution_id);
        let pipe = redis::pipe()
            .cmd("HGET")
            .arg(&k.hops)
            .arg(hop_id)
            .cmd("HGET")
            .arg(&k.meta)
            .arg("pending")
            .to_owned();
        let (handed, pending): (Option<String>, Option<String>) = self.read_pipe(&pipe).await?;
        let Some(handed) = handed else {
            return Ok(None);
        };
        Ok(Some(CommittedHop {
            handoff: handoff_of(&handed)?,
            pending: pending_of(pending.as_deref())?,
        }))
    }

    async fn read_exact(
        &self,
        execution_id: &str,
        entries: &[ScopedKey],
    ) -> Result<Vec<Option<Value>>, PortError> {
        let k = self.keys(execution_id);
        let mut inv = SCRIPTS.read_exact.prepare_invoke();
        inv.key(&k.meta).key(&k.ctx);
        for at in entries {
            inv.arg(field(&at.scope, &at.key));
        }
        let (tag, rest) = reply::tagged(self.invoke(&inv, true).await?)?;
        if tag == "unknown" {
            return Err(Error::UnknownExecution(execution_id.into()).into());
        }
        if rest.len() != entries.len() {
            return Err(Error::Protocol(format!(
                "read_exact answered {} of {} entries",
                rest.len(),
                entries.len()
            ))
            .into());
        }
        let values = entries
            .iter()
            .zip(&rest)
            .map(|(at, v)| match v {
                R::Nil => Ok(None),
                v => reply::json(&at.key, v).map(Some),
            })
            .collect::<Result<_, Error>>()?;
        Ok(values)
    }

    async fn commit(
        &self,
        execution_id: &str,
        commit: HopCommit,
    ) -> Result<CommitOutcome, PortError> {
        let k = self.keys(execution_id);
        let inv = run_commit::commit_invocation(&SCRIPTS.commit, &k, &commit)?;
        let (tag, rest) = reply::tagged(self.invoke(&inv, false).await?)?;
        // A duplicate too: the first commit may be the one not yet on a replica.
        self.replicated(&k.meta).await?;
        Ok(match (tag.as_str(), rest.as_slice()) {
            ("applied", [pending]) => CommitOutcome::Applied {
                pending: reply::int(pending)?,
            },
            ("duplicate", [pending]) => CommitOutcome::Duplicate {
                pending: reply::int(pending)?,
            },
            ("unknown", _) => return Err(Error::UnknownExecution(execution_id.into()).into()),
            _ => return Err(Error::Protocol(format!("commit answered `{tag}` {rest:?}")).into()),
        })
    }

    /// One script (`run_commit.lua`, see `store/run_commit.rs`).
    async fn run_commit(
        &self,
        execution_id: &str,
        commit: HopCommit,
    ) -> Result<RunCommitOutcome, PortError> {
        self.run_commit_script(execution_id, commit).await
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
        let k = self.keys(execution_id);
        let real = arrival
            .get("real")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut inv = SCRIPTS.join.prepare_invoke();
        inv.key(&k.meta)
            .key(self.exec_key(execution_id, &format!("join:{join_key}")))
            .key(&k.keys)
            .arg(arrival_key)
            .arg(arrival.to_string())
            .arg(expected)
            .arg(if release_on_first_real && real {
                "1"
            } else {
                "0"
            });
        let (tag, rest) = reply::tagged(self.invoke(&inv, false).await?)?;
        self.replicated(&k.meta).await?;
        Ok(match (tag.as_str(), rest.as_slice()) {
            ("waiting", [arrived]) => JoinOutcome::Waiting {
                arrived: usize::try_from(reply::int(arrived)?).unwrap_or_default(),
                expected,
            },
            ("released", arrivals) => JoinOutcome::Released {
                arrivals: reply::pairs(arrivals)?
                    .into_iter()
                    .map(|(key, value)| JoinArrival { key, value })
                    .collect(),
            },
            ("already", _) => JoinOutcome::AlreadyReleased,
            ("unknown", _) => return Err(Error::UnknownExecution(execution_id.into()).into()),
            _ => return Err(Error::Protocol(format!("join answered `{tag}` {rest:?}")).into()),
        })
    }

    async fn final_context(&self, execution_id: &str) -> Result<FinalContext, PortError> {
        let k = self.keys(execution_id);
        let mut inv = SCRIPTS.final_context.prepare_invoke();
        inv.key(&k.meta).key(&k.ctx).key(&k.top);
        let items = reply::array(self.invoke(&inv, true).await?)?;
        let Some((started, rest)) = items.split_first() else {
            return Err(Error::UnknownExecution(execution_id.into()).into());
        };
        let started = u64::try_from(reply::int(started)?)
            .map_err(|_| Error::Protocol("negative started_at".into()))?;
        Ok(FinalContext {
            context: reply::map(rest)?,
            started_at_ms: started,
        })
    }
}
