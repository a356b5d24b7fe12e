//! `baton worker [--config FILE]`: the stateless worker service. JSON logs (set
//! `BATON_LOG_FORMAT=human` for a terminal), health and metrics on `BATON_HTTP_PORT`, graceful
//! drain on SIGTERM/SIGINT, exit 0 (after flushing the spans still buffered, when traces are
//! exported: `OTEL_EXPORTER_OTLP_ENDPOINT`).

use std::path::PathBuf;

use baton_worker::{Settings, Worker, health};
use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// TOML configuration file (fields as in `BATON_*` variables, lower-case, without prefix).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<u8> {
    let settings = Settings::load(args.config.as_deref())?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if settings.worker_threads > 0 {
        rt.worker_threads(settings.worker_threads);
    }
    let rt = rt.enable_all().build()?;
    let telemetry = crate::logging::telemetry(&rt, "baton-worker")?;
    crate::logging::init_service(&settings.log_format, telemetry.as_ref());
    let result = rt.block_on(async move {
        let metrics = health::install_metrics()?;
        let shutdown = CancellationToken::new();
        super::signals::spawn_signal_handler(shutdown.clone());
        let port = settings.http_port;
        let http_policy = baton_nodes::http::HttpPolicy {
            egress: settings.egress_policy()?,
            ..baton_nodes::http::HttpPolicy::production()
        };
        let registry = baton_nodes::registry_for(http_policy, &settings.code_settings());
        let worker = Worker::connect(settings, registry).await?;
        let admin_stop = CancellationToken::new();
        let admin = tokio::spawn(health::serve(
            worker.clone(),
            metrics,
            port,
            admin_stop.clone(),
        ));
        // On the runtime's workers, not this thread's `block_on`: each delivery the loop
        // takes wakes the task that spawns its hop, and a wake inside the pool is cheaper
        // than one that crosses to the main thread and back (RFC 0011, thread crossings).
        let result = tokio::spawn(worker.run(shutdown))
            .await
            .map_err(|e| anyhow::anyhow!("the worker's consume loop panicked: {e}"))?;
        admin_stop.cancel();
        let _ = admin.await;
        result?;
        tracing::info!("worker stopped");
        Ok(0)
    });
    // After the drain: the spans of the last hops are exported before the process exits.
    rt.block_on(crate::logging::flush(telemetry));
    result
}
