//! The completion ledger on Redis: the final status (first caller wins, `finished_by`), and
//! the claim (a lease, the direct path) or the adoption (for good, the outbox relay) and the
//! mark that let exactly one sender publish the completion.

use async_trait::async_trait;
use baton_engine::ports::{CompletionAdoption, CompletionClaim, CompletionLedger, PortError};

use crate::Error;
use crate::reply;
use crate::store::{FINISH_ATTEMPTS, RedisStore, SCRIPTS, status_name};
use baton_core::message::ExecutionStatus;

#[async_trait]
impl CompletionLedger for RedisStore {
    async fn finished_by(&self, execution_id: &str) -> Result<Option<String>, PortError> {
        let pipe = redis::pipe()
            .cmd("HGET")
            .arg(self.exec_key(execution_id, "meta"))
            .arg("finished_by")
            .to_owned();
        let (by,): (Option<String>,) = self.read_pipe(&pipe).await?;
        Ok(by.filter(|b| !b.is_empty()))
    }

    async fn finish_by(
        &self,
        execution_id: &str,
        status: ExecutionStatus,
        reason: Option<String>,
        hop_id: &str,
    ) -> Result<bool, PortError> {
        let k = self.keys(execution_id);
        let mut conn = self.conn.clone();
        for _ in 0..FINISH_ATTEMPTS {
            // Every key the script expires must be in KEYS[]: read the dynamic ones first; the
            // script refuses (-2) if a join added one in between.
            let dynamic: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&k.keys)
                .query_async(&mut conn)
                .await
                .map_err(Error::from)?;
            let mut inv = SCRIPTS.finish.prepare_invoke();
            inv.key(&k.meta)
                .key(&k.ctx)
                .key(&k.hops)
                .key(&k.top)
                .key(&k.keys);
            for key in &dynamic {
                inv.key(key);
            }
            inv.arg(status_name(status))
                .arg(if reason.is_some() { "1" } else { "0" })
                .arg(reason.as_deref().unwrap_or(""))
                .arg(self.ttl_secs)
                .arg(hop_id);
            let finished = reply::int(&self.invoke(&inv, false).await?)?;
            self.replicated(&k.meta).await?;
            match finished {
                1 => return Ok(true),
                0 => return Ok(false),
                -1 => return Err(Error::UnknownExecution(execution_id.into()).into()),
                -2 => continue,
                other => return Err(Error::Protocol(format!("finish answered {other}")).into()),
            }
        }
        Err(Error::Protocol(format!(
            "finish of `{execution_id}` kept racing with new joins"
        ))
        .into())
    }

    async fn claim_completion(
        &self,
        execution_id: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<CompletionClaim, PortError> {
        let mut inv = SCRIPTS.claim_completion.prepare_invoke();
        inv.key(self.exec_key(execution_id, "meta"))
            .arg(now_ms)
            .arg(lease_ms);
        let claim = reply::text(&self.invoke(&inv, false).await?)?;
        self.replicated(&self.exec_key(execution_id, "meta"))
            .await?;
        Ok(match claim.as_str() {
            "claimed" => CompletionClaim::Claimed,
            "held" => CompletionClaim::Held,
            "sent" => CompletionClaim::Sent,
            "unknown" => CompletionClaim::Unknown,
            other => {
                return Err(Error::Protocol(format!("claim_completion answered `{other}`")).into());
            }
        })
    }

    async fn adopt_completion(
        &self,
        execution_id: &str,
        sender: &str,
    ) -> Result<CompletionAdoption, PortError> {
        let mut inv = SCRIPTS.adopt_completion.prepare_invoke();
        inv.key(self.exec_key(execution_id, "meta")).arg(sender);
        let adoption = reply::text(&self.invoke(&inv, false).await?)?;
        self.replicated(&self.exec_key(execution_id, "meta"))
            .await?;
        Ok(match adoption.as_str() {
            "adopted" => CompletionAdoption::Adopted,
            "again" => CompletionAdoption::Again,
            "another" => CompletionAdoption::Another,
            "sent" => CompletionAdoption::Sent,
            "unknown" => CompletionAdoption::Unknown,
            other => {
                return Err(Error::Protocol(format!("adopt_completion answered `{other}`")).into());
            }
        })
    }

    async fn mark_completion_sent(&self, execution_id: &str) -> Result<bool, PortError> {
        let mut inv = SCRIPTS.mark_completion_sent.prepare_invoke();
        inv.key(self.exec_key(execution_id, "meta"));
        let marked = reply::int(&self.invoke(&inv, false).await?)?;
        self.replicated(&self.exec_key(execution_id, "meta"))
            .await?;
        match marked {
            -1 => Err(Error::UnknownExecution(execution_id.into()).into()),
            n => Ok(n == 1),
        }
    }
}
