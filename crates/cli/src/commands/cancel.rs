//! `baton cancel EXECUTION_ID`: asks the worker pool (or a master's API with `--master URL` /
//! `BATON_MASTER_URL`) to cancel an execution. It halts with reason "execution cancelled by
//! request"; running nodes are aborted.

use std::path::PathBuf;

use baton_amqp::{Broker, Outgoing};
use baton_core::wire::CancelMessage;
use baton_worker::Settings;
use clap::Args;
use serde_json::json;

use super::master_client::{MasterTarget, segment};

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The execution to cancel.
    pub execution_id: String,
    /// Worker configuration file (for the broker URL and queue names).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Cancel through the master's API (`POST /executions/{id}/cancel`).
    #[command(flatten)]
    pub master: MasterTarget,
}

pub fn run(args: CancelArgs) -> anyhow::Result<u8> {
    if args.master.is_set() {
        let client = args.master.required()?;
        let path = format!("/executions/{}/cancel", segment(&args.execution_id));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(client.post(&path, &json!({}), &[]))?;
        eprintln!("cancel requested for {}", args.execution_id);
        return Ok(0);
    }
    let settings = Settings::load(args.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let broker = Broker::connect(crate::commands::submit::amqp_options(
            &settings,
            "baton-cancel",
        ))
        .await?;
        let body = serde_json::to_vec(&CancelMessage::new(args.execution_id.clone()))?;
        broker
            .publish(vec![Outgoing::new(
                broker.options().topology.execution_queue.clone(),
                body,
            )])
            .await?;
        broker.close().await;
        eprintln!("cancel requested for {}", args.execution_id);
        Ok(0)
    })
}
