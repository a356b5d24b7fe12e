//! `baton master [--listen ADDR] [--config FILE] [--insecure-no-auth]`: the master service on
//! RabbitMQ and Redis (RFC 0006). JSON logs (`BATON_LOG_FORMAT=human` for a terminal), graceful
//! shutdown on SIGTERM/SIGINT, exit 0.

use std::path::PathBuf;

use baton_master::MasterSettings;
use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct MasterArgs {
    /// Address to listen on (API, dashboard, health, metrics) [env: BATON_MASTER_LISTEN].
    #[arg(long)]
    pub listen: Option<String>,
    /// TOML configuration file (fields as in `BATON_*` variables, lower-case, without prefix).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve without authentication (local tests only) [env: BATON_MASTER_INSECURE_NO_AUTH].
    #[arg(long)]
    pub insecure_no_auth: bool,
}

pub fn run(args: MasterArgs) -> anyhow::Result<u8> {
    let mut settings = MasterSettings::load_unchecked(args.config.as_deref())?;
    if let Some(l) = args.listen {
        settings.master_listen = l;
    }
    if args.insecure_no_auth {
        settings.master_insecure_no_auth = true;
    }
    settings.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let telemetry = crate::logging::telemetry(&rt, "baton-master")?;
    crate::logging::init_service(&settings.log_format, telemetry.as_ref());
    let result = rt.block_on(async move {
        let shutdown = CancellationToken::new();
        super::signals::spawn_signal_handler(shutdown.clone());
        let master = baton_master::distributed(&settings, shutdown.clone()).await?;
        let listener = tokio::net::TcpListener::bind(&settings.master_listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.master_listen))?;
        if settings.master_insecure_no_auth {
            tracing::warn!("authentication is OFF (--insecure-no-auth)");
        }
        tracing::info!(listen = %settings.master_listen, "master listening");
        baton_master::serve_with(master, listener, &settings.http_limits(), shutdown).await?;
        tracing::info!("master stopped");
        Ok(0)
    });
    rt.block_on(crate::logging::flush(telemetry));
    result
}
