//! `baton submit FILE [--input JSON|@file] [--wait]`: a tiny master for scripts. Publishes a
//! Rune-style start message (full definition, `$input`/`$trigger` seeded) to the execution
//! queue; with `--wait`, follows the execution's status messages on stderr and
//! prints its completion on stdout (exit 0 completed, 1 failed/halted, 2 invalid). With
//! `--execution-id` naming an execution that already exists starts nothing: a finished one's
//! completion is printed at once (exit 1 without `--wait`), a running one is followed. With
//! `--master URL` (or `BATON_MASTER_URL`) it goes through the master's API instead: `POST
//! /workflows`, `POST /workflows/{id}/executions`, and the execution's event stream.

use std::path::PathBuf;
use std::time::Duration;

use baton_amqp::{AmqpOptions, Broker, Outgoing};
use baton_core::wire::{Completion, ExecutionStatus, RuneStart, StatusEvent, seed_input};
use baton_worker::Settings;
use clap::Args;
use futures_util::StreamExt;
use serde_json::{Map, json};

use super::master_client::{MasterClient, MasterError, MasterTarget, segment};
use super::submit_existing::{self, Existing};
use crate::load::{LoadError, compile, read_document, read_input};

#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Workflow JSON file.
    pub file: PathBuf,
    /// Execution input (`$input` and `$trigger`): inline JSON or `@file.json`.
    #[arg(long)]
    pub input: Option<String>,
    /// Follow the execution and print its completion.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Use this execution id instead of a new UUID v7.
    #[arg(long)]
    pub execution_id: Option<String>,
    /// Worker configuration file (for the broker URL and queue names).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Submit through the master's API instead of the broker (with it, `--execution-id` is
    /// sent as the `Idempotency-Key`: the same key returns the same execution).
    #[command(flatten)]
    pub master: MasterTarget,
}

/// Broker options for a short-lived CLI connection, with the worker's queue names.
pub fn amqp_options(settings: &Settings, name: &str) -> AmqpOptions {
    AmqpOptions {
        connection_name: Some(name.to_string()),
        connect_timeout: Duration::from_secs(10),
        ..AmqpOptions::from(&settings.connection)
    }
}

pub fn run(args: SubmitArgs) -> anyhow::Result<u8> {
    if args.master.is_set() {
        return run_on_master(args);
    }
    let registry = baton_nodes::registry();
    let workflow = match compile(&args.file, &registry) {
        Ok(wf) => wf,
        Err(LoadError::Unreadable(msg)) => {
            eprintln!("error: {msg}");
            return Ok(2);
        }
        Err(LoadError::Invalid(inv)) => {
            eprintln!("error: {} is not a valid workflow:", args.file.display());
            for p in &inv.0 {
                eprintln!("  {}: {}", p.path, p.message);
            }
            return Ok(2);
        }
    };
    let Ok(definition) = read_document(&args.file) else {
        return Ok(2);
    };
    let input = read_input(args.input.as_deref())?;
    let settings = Settings::load(args.config.as_deref())?;
    let execution_id = args
        .execution_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let workflow_id = workflow.definition.name.clone().unwrap_or_else(|| {
        args.file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workflow".into())
    });
    // Rune masters name the node to run; a trigger (or `$start`) means "the start nodes".
    let current_node = workflow
        .nodes
        .iter()
        .find(|n| n.trigger)
        .map(|n| n.id.clone())
        .unwrap_or_else(|| match workflow.start.as_slice() {
            [one] => workflow.nodes[*one].id.clone(),
            _ => "$start".to_string(),
        });
    let mut context = Map::new();
    seed_input(&mut context, input);
    let message = RuneStart::new(
        workflow_id,
        execution_id.clone(),
        current_node,
        definition,
        context,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let broker = Broker::connect(amqp_options(&settings, "baton-submit")).await?;
        let topology = broker.options().topology.clone();
        let mut events = if args.wait {
            Some(
                broker
                    .subscribe(&[
                        topology.status_queue.clone(),
                        topology.completion_queue.clone(),
                    ])
                    .await?,
            )
        } else {
            None
        };
        // An id given twice: answer from where that execution stands (the subscription above
        // was taken first, so a running one's completion cannot slip by).
        let existing = match args.execution_id.as_deref() {
            Some(id) => submit_existing::lookup(&settings, id).await,
            None => None,
        };
        match &existing {
            Some(found @ Existing::Finished { status, reason, .. }) => {
                eprintln!(
                    "error: execution {execution_id} already finished with status {}{}; not submitted again",
                    status.as_str(),
                    reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
                );
                broker.close().await;
                if !args.wait {
                    return Ok(1);
                }
                println!(
                    "{}",
                    serde_json::to_string_pretty(&found.completion_json(&execution_id))?
                );
                return Ok(if *status == ExecutionStatus::Completed { 0 } else { 1 });
            }
            Some(Existing::Running) => {
                eprintln!("execution {execution_id} already exists and is running; not submitted again");
                if events.is_none() {
                    broker.close().await;
                    return Ok(1);
                }
            }
            None => {
                broker
                    .publish(vec![Outgoing::new(
                        topology.execution_queue.clone(),
                        serde_json::to_vec(&message)?,
                    )])
                    .await?;
                eprintln!("submitted execution {execution_id}");
            }
        }
        let Some(events) = events.as_mut() else {
            println!("{execution_id}");
            broker.close().await;
            return Ok(0);
        };
        let deadline = tokio::time::sleep(Duration::from_secs(args.timeout_secs));
        tokio::pin!(deadline);
        let completion_key = topology.completion_queue;
        let code = loop {
            let delivery = tokio::select! {
                () = &mut deadline => {
                    eprintln!("error: no completion within {} s", args.timeout_secs);
                    break 1;
                }
                d = events.next() => match d { Some(d) => d, None => break 1 },
            };
            let is_completion = delivery.routing_key == completion_key;
            let body = delivery.body.clone();
            let _ = delivery.ack().await;
            if is_completion {
                let Ok(c) = serde_json::from_slice::<Completion>(&body) else {
                    continue;
                };
                if c.execution_id != execution_id {
                    continue;
                }
                eprintln!(
                    "{} in {} ms{}",
                    c.status.as_str(),
                    c.total_duration_ms,
                    c.failure_reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                println!("{}", serde_json::to_string_pretty(&c)?);
                break if c.status == ExecutionStatus::Completed {
                    0
                } else {
                    1
                };
            }
            if let Ok(s) = serde_json::from_slice::<StatusEvent>(&body)
                && s.execution_id == execution_id
            {
                let status = serde_json::to_value(s.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let err = s
                    .error
                    .map(|e| format!(": {} [{}]", e.message, e.code))
                    .unwrap_or_default();
                let item = s
                    .item_index
                    .map(|i| format!(" [item {i}]"))
                    .unwrap_or_default();
                eprintln!("{status:<8}{}{item}{err}", s.node_name);
            }
        };
        broker.close().await;
        Ok(code)
    })
}

/// `baton submit --master URL`: store the definition (`POST /workflows`), start it
/// (`POST /workflows/{id}/executions`) and, with `--wait`, follow its events.
fn run_on_master(args: SubmitArgs) -> anyhow::Result<u8> {
    let client = args.master.required()?;
    let definition = match read_document(&args.file) {
        Ok(doc) => doc,
        Err(LoadError::Unreadable(msg)) => {
            eprintln!("error: {msg}");
            return Ok(2);
        }
        Err(LoadError::Invalid(_)) => return Ok(2), // not produced by reading alone
    };
    let input = match read_input(args.input.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stored = match client.post("/workflows", &definition, &[]).await {
            Ok(stored) => stored,
            Err(e @ MasterError::Api { status: 422, .. }) => {
                eprintln!(
                    "error: {} is not a valid workflow: {e}",
                    args.file.display()
                );
                return Ok(2);
            }
            Err(e) => return Err(e.into()),
        };
        let workflow_id = stored["workflow_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let version = stored["version"].clone();
        let mut body = json!({"input": input});
        if !version.is_null() {
            body["version"] = version.clone();
        }
        let headers: Vec<(&str, &str)> = args
            .execution_id
            .as_deref()
            .map(|key| vec![("Idempotency-Key", key)])
            .unwrap_or_default();
        let started = match client
            .post(
                &format!("/workflows/{}/executions", segment(&workflow_id)),
                &body,
                &headers,
            )
            .await
        {
            Ok(started) => started,
            Err(e @ MasterError::Api { status: 422, .. }) => {
                eprintln!("error: {e}");
                return Ok(2);
            }
            Err(e) => return Err(e.into()),
        };
        let Some(execution_id) = started["execution_id"].as_str().map(str::to_string) else {
            anyhow::bail!("the master's answer has no `execution_id`: {started}");
        };
        eprintln!("submitted execution {execution_id} of {workflow_id} (version {version})");
        if !args.wait {
            println!("{execution_id}");
            return Ok(0);
        }
        follow_to_completion(&client, &execution_id, args.timeout_secs).await
    })
}

/// Prints progress lines on stderr and the completion on stdout; 0 completed, 1 otherwise.
async fn follow_to_completion(
    client: &MasterClient,
    execution_id: &str,
    timeout_secs: u64,
) -> anyhow::Result<u8> {
    let follow = client.follow(execution_id, |s| eprintln!("{}", progress_line(s)));
    let completion = match tokio::time::timeout(Duration::from_secs(timeout_secs), follow).await {
        Ok(c) => c?,
        Err(_) => {
            eprintln!("error: no completion within {timeout_secs} s");
            return Ok(1);
        }
    };
    eprintln!(
        "{} in {} ms{}",
        completion.status.as_str(),
        completion.total_duration_ms,
        completion
            .failure_reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    println!("{}", serde_json::to_string_pretty(&completion)?);
    Ok(if completion.status == ExecutionStatus::Completed {
        0
    } else {
        1
    })
}

/// `running Fetch [item 2]: message [CODE]`, as the broker path prints it.
fn progress_line(s: &StatusEvent) -> String {
    let status = serde_json::to_value(s.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let err = s
        .error
        .as_ref()
        .map(|e| format!(": {} [{}]", e.message, e.code))
        .unwrap_or_default();
    let item = s
        .item_index
        .map(|i| format!(" [item {i}]"))
        .unwrap_or_default();
    format!("{status:<8}{}{item}{err}", s.node_name)
}
