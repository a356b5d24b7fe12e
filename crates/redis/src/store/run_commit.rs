//! `run_commit` of [`RedisStore`] (`run_commit.lua`): the one store call of a pure node's hop
//! that ran without `begin_hop` (RFC 0011, "one round trip"): `begin_hop`'s checks and
//! `commit.lua`'s writes in one script, fenced like a commit.

use std::sync::LazyLock;

use baton_engine::ports::{CommittedHop, HopCommit, PortError, RunCommitOutcome};
use redis::{Script, ScriptInvocation, Value as R};

use super::{ExecKeys, RedisStore, field, handoff_of, lifecycle_of};
use crate::{Error, reply};

static RUN_COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/commit_apply.lua"),
        include_str!("../lua/run_commit.lua")
    ))
});

/// What `commit.lua` and `run_commit.lua` both take: the execution's meta, ctx, hops and top
/// keys, then the hop id, its token delta, its handoff (JSON; empty when not recorded) and its
/// outputs as (field, JSON text) pairs.
pub(super) fn commit_invocation<'s>(
    script: &'s Script,
    k: &ExecKeys,
    commit: &HopCommit,
) -> Result<ScriptInvocation<'s>, PortError> {
    let handed_on = match &commit.handoff {
        Some(handoff) => handoff.encode()?,
        None => String::new(),
    };
    let mut inv = script.prepare_invoke();
    inv.key(&k.meta)
        .key(&k.ctx)
        .key(&k.hops)
        .key(&k.top)
        .arg(&commit.hop_id)
        .arg(commit.tokens_out - 1)
        .arg(handed_on);
    for write in &commit.outputs {
        inv.arg(field(&write.scope, &write.key))
            .arg(write.value.to_string());
    }
    Ok(inv)
}

impl RedisStore {
    pub(super) async fn run_commit_script(
        &self,
        execution_id: &str,
        commit: HopCommit,
    ) -> Result<RunCommitOutcome, PortError> {
        let k = self.keys(execution_id);
        let inv = commit_invocation(&RUN_COMMIT, &k, &commit)?;
        // Not repeated on a dropped connection: it writes (the hop's redelivery repeats it).
        let (tag, rest) = reply::tagged(self.invoke(&inv, false).await?)?;
        if tag != "unknown" {
            // As `commit`: a duplicate too (the first commit may be the one not yet on a
            // replica), and a finish this hop then acts on.
            self.replicated(&k.meta).await?;
        }
        let text = |v: &R| -> Result<Option<String>, Error> {
            match v {
                R::Nil => Ok(None),
                v => reply::text(v).map(Some),
            }
        };
        Ok(match (tag.as_str(), rest.as_slice()) {
            ("unknown", _) => RunCommitOutcome::Unknown,
            ("ended", [status, reason, sent]) => {
                // `lifecycle_of` reads (started_at, status, reason, completion_sent).
                let fields = [
                    Some(String::new()),
                    text(status)?,
                    text(reason)?,
                    text(sent)?,
                ];
                RunCommitOutcome::Ended(lifecycle_of(&fields)?)
            }
            ("duplicate", [pending, handed]) => RunCommitOutcome::Duplicate(CommittedHop {
                handoff: match text(handed)? {
                    Some(stored) => handoff_of(&stored)?,
                    None => None,
                },
                pending: reply::int(pending)?,
            }),
            ("applied", [pending]) => RunCommitOutcome::Applied {
                pending: reply::int(pending)?,
            },
            _ => {
                return Err(
                    Error::Protocol(format!("run_commit answered `{tag}` {rest:?}")).into(),
                );
            }
        })
    }
}
