//! `baton submit --execution-id X` on an id already used: where that execution stands, read
//! from the workers' Redis, so that submit neither starts it twice nor waits out its timeout
//! for a completion that was sent long ago.

use std::time::Duration;

use baton_core::wire::ExecutionStatus;
use baton_engine::ports::{ExecutionStore, FinalContext, Lifecycle};
use baton_redis::{RedisOptions, RedisStore};
use baton_worker::Settings;
use serde_json::{Map, Value, json};

/// How long the lookup may take before submit goes on without it.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// An execution found under the id given to `submit`.
#[derive(Debug)]
pub enum Existing {
    /// Still running: follow it instead of starting it again.
    Running,
    /// Finished: its final status, reason and context (what its completion carried).
    Finished {
        status: ExecutionStatus,
        reason: Option<String>,
        workflow_id: String,
        final_context: Map<String, Value>,
    },
}

impl Existing {
    /// The finished execution as printed by `submit --wait` (the completion's fields that the
    /// store keeps; `already_finished` marks that it was not run again).
    pub fn completion_json(&self, execution_id: &str) -> Value {
        match self {
            Existing::Running => json!({"execution_id": execution_id, "status": "running"}),
            Existing::Finished {
                status,
                reason,
                workflow_id,
                final_context,
            } => json!({
                "workflow_id": workflow_id,
                "execution_id": execution_id,
                "status": status.as_str(),
                "final_context": final_context,
                "failure_reason": reason,
                "already_finished": true,
            }),
        }
    }
}

/// Looks `execution_id` up in the workers' Redis. `None`: not known there (never started, or
/// expired), or Redis did not answer in time (then submit goes on as before, with a warning).
pub async fn lookup(settings: &Settings, execution_id: &str) -> Option<Existing> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, read(settings, execution_id)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            eprintln!("warning: cannot check whether execution {execution_id} exists: {e}");
            None
        }
        Err(_) => {
            eprintln!(
                "warning: cannot check whether execution {execution_id} exists: Redis did not answer within {} s",
                LOOKUP_TIMEOUT.as_secs()
            );
            None
        }
    }
}

async fn read(settings: &Settings, execution_id: &str) -> anyhow::Result<Option<Existing>> {
    let options = RedisOptions {
        key_prefix: settings.connection.key_prefix.clone(),
        cluster: settings.connection.redis_cluster,
        buckets: settings.connection.redis_buckets,
        replication_wait_ms: settings.connection.redis_wait_ms,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&settings.connection.redis_url, options).await?;
    Ok(match store.lifecycle(execution_id).await? {
        Lifecycle::Unknown => None,
        Lifecycle::Running => Some(Existing::Running),
        Lifecycle::Finished { status, reason, .. } => {
            let workflow_id = store
                .identity(execution_id)
                .await?
                .map(|i| i.workflow_id)
                .unwrap_or_default();
            let FinalContext { mut context, .. } = store.final_context(execution_id).await?;
            context.retain(|k, _| !k.starts_with(baton_engine::hop::CHILD_KEY_PREFIX));
            Some(Existing::Finished {
                status,
                reason,
                workflow_id,
                final_context: context,
            })
        }
    })
}
