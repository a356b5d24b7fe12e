//! `baton signal EXECUTION NAME [--data JSON]`: delivers a named signal to an execution on the
//! worker pool (or through a master's API with `--master URL`); wait nodes in `signal` mode
//! waiting for NAME resume with `{signal, data}`.

use std::path::PathBuf;

use baton_amqp::{Broker, Outgoing};
use baton_core::wire::SignalMessage;
use baton_worker::Settings;
use clap::Args;
use serde_json::json;

use super::master_client::{MasterTarget, segment};
use crate::load::read_input;

#[derive(Args, Debug)]
pub struct SignalArgs {
    /// The execution to signal.
    pub execution_id: String,
    /// The signal's name (what `wait` nodes in signal mode wait for).
    pub name: String,
    /// Signal data: inline JSON or `@file.json`.
    #[arg(long)]
    pub data: Option<String>,
    /// Worker configuration file (for the broker URL and queue names).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Deliver through the master's API (`POST /executions/{id}/signals/{name}`).
    #[command(flatten)]
    pub master: MasterTarget,
}

pub fn run(args: SignalArgs) -> anyhow::Result<u8> {
    let data = match read_input(args.data.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    if args.master.is_set() {
        let client = args.master.required()?;
        let path = format!(
            "/executions/{}/signals/{}",
            segment(&args.execution_id),
            segment(&args.name)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(client.post(&path, &json!({"data": data}), &[]))?;
        eprintln!("signal `{}` sent to {}", args.name, args.execution_id);
        return Ok(0);
    }
    let settings = Settings::load(args.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let broker = Broker::connect(crate::commands::submit::amqp_options(
            &settings,
            "baton-signal",
        ))
        .await?;
        let body = SignalMessage::new(args.execution_id.clone(), args.name.clone(), data);
        broker
            .publish(vec![Outgoing::new(
                broker.options().topology.execution_queue.clone(),
                serde_json::to_vec(&body)?,
            )])
            .await?;
        broker.close().await;
        eprintln!("signal `{}` sent to {}", args.name, args.execution_id);
        Ok(0)
    })
}
