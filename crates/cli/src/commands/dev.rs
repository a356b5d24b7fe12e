//! `baton dev [--listen ADDR] [--state FILE] [--concurrency N]`: the master and a pool of
//! workers in one process on the in-memory runtime — the API and the dashboard with no
//! RabbitMQ or Redis. Auth is off. With `--state FILE` workflows, history, schedules and
//! webhooks survive a restart (saved every second and at exit, in a file only its owner may
//! read). Webhook secrets are sealed with `BATON_CREDENTIALS_KEY`; without it a key is
//! generated for the run, so signed webhooks must be enabled again after a restart.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// JSON file to load the state from and save it to.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Hops in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

pub fn run(args: DevArgs) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        super::signals::spawn_signal_handler(shutdown.clone());
        let key = std::env::var("BATON_CREDENTIALS_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty());
        if args.state.is_some() && key.is_none() {
            eprintln!(
                "baton dev: BATON_CREDENTIALS_KEY is not set: signed webhooks are sealed with a \
                 key for this run only and must be enabled again after a restart"
            );
        }
        let embedded =
            baton_master::embedded(args.concurrency, args.state.as_deref(), key.as_deref()).await?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
        eprintln!(
            "baton dev: API and dashboard on http://{} (auth off{})",
            args.listen,
            args.state
                .as_ref()
                .map(|s| format!(", state in {}", s.display()))
                .unwrap_or_default()
        );
        let saver = embedded.keep_saved(shutdown.clone());
        let server = baton_master::serve(embedded.master.clone(), listener, shutdown.clone());
        let (served, ()) = tokio::join!(server, saver);
        served?;
        Ok(0)
    })
}
