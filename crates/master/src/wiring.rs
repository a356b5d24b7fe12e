//! Building a master: distributed (RabbitMQ + Redis: `baton master`) or embedded (`baton dev`),
//! and serving it: the HTTP API, the event intake and the scheduler until shutdown.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use baton_engine::ports::{CredentialVault, WorkflowCatalog};
use baton_engine::{Clock, SystemClock};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::Master;
use crate::backend::BackendError;
use crate::backend::amqp::AmqpBackend;
use crate::backend::embedded::EmbeddedBackend;
use crate::backend::stored_refs::StoredRefs;
use crate::fanout::{LocalFanout, RedisFanout};
use crate::history::memory::MemoryHistory;
use crate::history::redis::RedisHistory;
use crate::server::HttpLimits;
use crate::settings::MasterSettings;

/// A master that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("RabbitMQ: {0}")]
    Broker(#[source] BackendError),
    #[error("Redis: {0}")]
    Redis(#[from] baton_redis::Error),
    #[error("{0}")]
    Config(String),
    #[error("state file: {0}")]
    State(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("HTTP listener: {0}")]
    Http(String),
}

fn vault_key(settings: &MasterSettings) -> Result<Option<baton_vault::VaultKey>, MasterError> {
    settings
        .credentials_key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
        .map(|k| {
            baton_vault::VaultKey::from_base64(k).map_err(|e| MasterError::Config(e.to_string()))
        })
        .transpose()
}

/// The distributed master: RabbitMQ backend, Redis history, catalog, vault and fan-out.
pub async fn distributed(
    settings: &MasterSettings,
    shutdown: CancellationToken,
) -> Result<Arc<Master>, MasterError> {
    let target = baton_redis::RedisTarget::parse(
        &settings.connection.redis_url,
        settings.connection.redis_cluster,
    )?;
    let conn = baton_redis::connect(&target, baton_redis::Timeouts::default()).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let history = RedisHistory::new(
        conn.clone(),
        &settings.master_key_prefix,
        settings.master_max_executions,
        settings.master_retention_secs,
        settings.connection.redis_buckets,
    )
    .with_clock(clock.clone());
    let catalog: Arc<dyn WorkflowCatalog> = Arc::new(baton_redis::RedisCatalog::new(
        conn.clone(),
        &settings.connection.key_prefix,
    ));
    let sealing_key = vault_key(settings)?;
    let vault: Option<Arc<dyn CredentialVault>> = match sealing_key.clone() {
        Some(key) => {
            let vault =
                baton_vault::RedisVault::new(conn.clone(), &settings.connection.key_prefix, key);
            // A master whose key cannot open the vault refuses to start (it would store
            // credentials no worker can read).
            let key_id = vault
                .check_key()
                .await
                .map_err(|e| MasterError::Config(e.to_string()))?;
            tracing::info!(key_id, "credentials key opens the vault");
            Some(Arc::new(vault))
        }
        None => None,
    };
    let definitions_conn = conn.clone();
    let fanout = RedisFanout::start(
        target,
        conn,
        format!("{}events", settings.master_key_prefix),
        shutdown,
    );
    let mut backend = AmqpBackend::connect(&settings.connection)
        .await
        .map_err(MasterError::Broker)?;
    if settings.master_start_by_reference {
        let definitions =
            baton_redis::DefinitionStore::new(definitions_conn, &settings.connection.key_prefix);
        backend = backend.with_starts_by_reference(StoredRefs::new(definitions, clock.clone()));
    }
    let tokens = (!settings.master_insecure_no_auth).then(|| settings.tokens());
    Ok(Arc::new(Master {
        catalog,
        vault,
        sealing_key,
        history: Arc::new(history),
        backend: Arc::new(backend),
        fanout: Arc::new(fanout),
        tokens,
        registry: baton_nodes::registry(),
        metrics: crate::metrics_names::handle(),
        clock,
        limits: settings.definition_limits(),
    }))
}

/// Why `baton dev --state` fails the executions its state file shows running: their
/// in-memory state (context, tokens, timers, waits) did not survive the restart.
pub const INTERRUPTED_BY_RESTART: &str = "interrupted by a restart of baton dev";

/// The embedded master of `baton dev`: what it needs to save its state.
pub struct Embedded {
    pub master: Arc<Master>,
    history: Arc<MemoryHistory>,
    catalog: Arc<baton_memory::MemoryCatalog>,
}

/// An embedded master: `concurrency` hops in flight, auth off, state in memory (loaded from
/// and saved to `state` when given).
pub async fn embedded(
    concurrency: usize,
    state: Option<&Path>,
    credentials_key: Option<&str>,
) -> Result<Embedded, MasterError> {
    let defaults = MasterSettings::default();
    let history = match state {
        Some(file) => MemoryHistory::open(
            file,
            defaults.master_max_executions,
            defaults.master_retention_secs,
        )
        .map_err(|e| MasterError::State(Box::new(e)))?,
        None => MemoryHistory::new(
            defaults.master_max_executions,
            defaults.master_retention_secs,
        ),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let history = Arc::new(history.with_clock(clock.clone()));
    let interrupted = history.fail_interrupted(INTERRUPTED_BY_RESTART);
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "executions running when baton dev stopped are failed: {INTERRUPTED_BY_RESTART}"
        );
    }
    let catalog = Arc::new(baton_memory::MemoryCatalog::new());
    for (id, versions) in history.saved_catalog() {
        for definition in versions {
            catalog
                .put(&id, &definition)
                .await
                .map_err(|e| MasterError::State(Box::new(e)))?;
        }
    }
    let key = match credentials_key.filter(|k| !k.trim().is_empty()) {
        Some(k) => {
            baton_vault::VaultKey::from_base64(k).map_err(|e| MasterError::Config(e.to_string()))?
        }
        None => baton_vault::VaultKey::generate(),
    };
    warn_unopenable_webhooks(&history, &key);
    let vault: Arc<dyn CredentialVault> = Arc::new(baton_vault::MemoryVault::new(key.clone()));
    let master = Arc::new(Master {
        catalog: catalog.clone(),
        vault: Some(vault.clone()),
        sealing_key: Some(key),
        history: history.clone(),
        backend: Arc::new(EmbeddedBackend::start(
            concurrency,
            Some(vault),
            catalog.clone(),
        )),
        fanout: Arc::new(LocalFanout::default()),
        tokens: None,
        registry: baton_nodes::registry(),
        metrics: crate::metrics_names::handle(),
        clock,
        limits: baton_core::limits::DefinitionLimits::default(),
    });
    Ok(Embedded {
        master,
        history,
        catalog,
    })
}

/// Logs the saved signed webhooks whose secret this key does not open (another
/// `BATON_CREDENTIALS_KEY`, or none: a key generated per run). Their calls answer 503.
fn warn_unopenable_webhooks(history: &MemoryHistory, key: &baton_vault::VaultKey) {
    for (workflow_id, hook) in history.webhooks() {
        if let Some(sealed) = &hook.sealed_secret
            && crate::webhook::open(key, &workflow_id, sealed).is_err()
        {
            tracing::warn!(
                %workflow_id,
                "the webhook's secret was sealed with another key: set the BATON_CREDENTIALS_KEY \
                 it was enabled with, or enable the webhook again"
            );
        }
    }
}

impl Embedded {
    /// The memory history (tests read its counters).
    pub fn history(&self) -> &Arc<MemoryHistory> {
        &self.history
    }

    /// Saves the state file (if any) now.
    pub async fn save(&self) -> Result<(), MasterError> {
        let mut snapshot = BTreeMap::new();
        let err = |e: baton_engine::ports::PortError| MasterError::State(Box::new(e));
        for latest in self.catalog.list().await.map_err(err)? {
            let mut versions = Vec::new();
            for v in self
                .catalog
                .versions(&latest.workflow_id)
                .await
                .map_err(err)?
            {
                if let Some((_, d)) = self
                    .catalog
                    .get(&latest.workflow_id, v.version)
                    .await
                    .map_err(err)?
                {
                    versions.push(d);
                }
            }
            snapshot.insert(latest.workflow_id, versions);
        }
        self.history.set_catalog(snapshot);
        self.history
            .save()
            .map_err(|e| MasterError::State(Box::new(e)))
    }

    /// Saves the state once a second until `shutdown`, then once more.
    pub async fn keep_saved(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = self.save().await {
                tracing::error!(error = %e, "cannot save the state");
            }
        }
        if let Err(e) = self.save().await {
            tracing::error!(error = %e, "cannot save the state");
        }
    }
}

/// Serves `master` on `listener` with its intake and scheduler until `shutdown`, with the
/// default HTTP limits.
pub async fn serve(
    master: Arc<Master>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), MasterError> {
    serve_with(master, listener, &HttpLimits::default(), shutdown).await
}

/// Serves `master` on `listener` with its intake and scheduler until `shutdown`; the HTTP
/// server enforces `limits` (RFC 0008).
pub async fn serve_with(
    master: Arc<Master>,
    listener: TcpListener,
    limits: &HttpLimits,
    shutdown: CancellationToken,
) -> Result<(), MasterError> {
    let intake = {
        let master = master.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let backend = master.backend.clone();
            backend.run_intake(master, stop).await
        })
    };
    let scheduler = tokio::spawn(crate::scheduler::run(master.clone(), shutdown.clone()));
    let upkeep = {
        let metrics = master.metrics.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => metrics.run_upkeep(),
                }
            }
        })
    };
    let app = crate::api::router_with(master, limits);
    crate::server::run(listener, app, limits, shutdown.clone()).await;
    shutdown.cancel();
    let _ = tokio::join!(intake, scheduler, upkeep);
    Ok(())
}
