//! `baton run FILE [--input JSON|@file] [--workflows DIR] [--signal NAME=JSON]…`: runs the
//! workflow embedded. Per-node progress on stderr (a live display on a terminal, plain lines
//! otherwise), the final context as JSON on stdout. `--workflows DIR` puts every `*.json` of
//! DIR into the workflow catalog that `workflow` (sub-workflow) nodes start from; each
//! `--signal` is delivered when a branch waits for that signal. Exit 0 completed, 1
//! failed/halted, 2 invalid workflow, input or signal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use baton_core::CompiledWorkflow;
use baton_core::message::{ExecutionStatus, NodeStatus};
use baton_engine::NodeRegistry;
use baton_engine::ports::WorkflowCatalog;
use baton_memory::{EmbeddedRuntime, Event};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use serde_json::Value;

use crate::load::{LoadError, compile, read_document, read_input};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Workflow JSON file.
    pub file: PathBuf,
    /// Execution input (`$input`): inline JSON or `@file.json`.
    #[arg(long)]
    pub input: Option<String>,
    /// Hops in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Print the whole completion message instead of the final context.
    #[arg(long)]
    pub completion: bool,
    /// Directory of workflows that `workflow` nodes can start: each `*.json` is stored in the
    /// catalog under its `"id"` field, or its file name without `.json`.
    #[arg(long, value_name = "DIR")]
    pub workflows: Option<PathBuf>,
    /// A signal for a wait node in `signal` mode, as NAME=JSON (`--signal approve='{"by":"ann"}'`),
    /// delivered when a branch waits for NAME; repeat it for several signals, or for several
    /// waits on one name (delivered in order).
    #[arg(long = "signal", value_name = "NAME=JSON")]
    pub signals: Vec<String>,
}

/// `NAME=JSON` → the signal's name and data.
fn parse_signal(arg: &str) -> Result<(String, Value), String> {
    let Some((name, data)) = arg.split_once('=') else {
        return Err(format!("--signal {arg:?}: expected NAME=JSON"));
    };
    if name.is_empty() {
        return Err(format!("--signal {arg:?}: the signal name is empty"));
    }
    let data = serde_json::from_str(data)
        .map_err(|e| format!("--signal {name}: the data is not valid JSON: {e}"))?;
    Ok((name.to_string(), data))
}

/// The signal a `waiting` status asks for (a signal wait's output is `{signal, waiting: true}`).
fn awaited_signal(output: Option<&Value>) -> Option<&str> {
    let out = output?;
    if out.get("waiting").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    out.get("signal").and_then(Value::as_str)
}

/// The `(id, definition)` of every `*.json` in `dir`, in file-name order; each must be a
/// valid workflow.
fn catalog_entries(dir: &Path, registry: &NodeRegistry) -> Result<Vec<(String, Value)>, String> {
    let listing = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "--workflows {}: cannot read the directory: {e}",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = listing
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut entries = Vec::with_capacity(files.len());
    for file in files {
        let doc = match read_document(&file) {
            Ok(doc) => doc,
            Err(LoadError::Unreadable(msg)) => return Err(msg),
            Err(LoadError::Invalid(inv)) => return Err(inv.to_string()),
        };
        if let Err(inv) = CompiledWorkflow::compile(&doc, registry) {
            let problems: Vec<String> = inv
                .0
                .iter()
                .map(|p| format!("  {}: {}", p.path, p.message))
                .collect();
            return Err(format!(
                "{} is not a valid workflow:\n{}",
                file.display(),
                problems.join("\n")
            ));
        }
        let id = match doc
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(id) => id.to_string(),
            None => file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        entries.push((id, doc));
    }
    Ok(entries)
}

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let registry = baton_nodes::registry();
    let workflow = match compile(&args.file, &registry) {
        Ok(wf) => Arc::new(wf),
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
    let input = match read_input(args.input.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    let mut signals = Vec::with_capacity(args.signals.len());
    for arg in &args.signals {
        match parse_signal(arg) {
            Ok(signal) => signals.push(signal),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(2);
            }
        }
    }
    let catalog = match &args.workflows {
        Some(dir) => match catalog_entries(dir, &registry) {
            Ok(entries) => entries,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(2);
            }
        },
        None => Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let telemetry = crate::logging::telemetry(&rt, "baton")?;
    crate::logging::init_cli(telemetry.as_ref());
    let traced = telemetry.is_some();
    let result = rt.block_on(async move {
        let runtime = EmbeddedRuntime::start_traced(registry, args.concurrency, traced);
        for (id, doc) in &catalog {
            runtime.catalog().put(id, doc).await?;
        }
        let mut events = runtime.events().subscribe();
        let execution_id = uuid::Uuid::now_v7().to_string();
        // One trace per run: its node spans are children of this one.
        let span = tracing::info_span!("run", workflow = %args.file.display(), execution_id = %execution_id);
        let done = tracing::Instrument::instrument(
            runtime.submit(workflow, &execution_id, input),
            span,
        )
        .await?;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(100));
            b
        });
        let exec_for_printer = execution_id.clone();
        let signaller = runtime.clone();
        let printer = tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            let mut finished = 0usize;
            loop {
                let ev = match events.recv().await {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(n)) => {
                        eprintln!("({n} progress lines skipped)");
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                };
                let s = match ev {
                    Event::Status(s) => s,
                    Event::Completion(c) if c.execution_id == exec_for_printer => break,
                    Event::Completion(_) => continue,
                };
                if s.status == NodeStatus::Waiting
                    && s.execution_id == exec_for_printer
                    && let Some(name) = awaited_signal(s.output.as_ref())
                    && let Some(i) = signals.iter().position(|(n, _)| n == name)
                {
                    let (name, data) = signals.remove(i);
                    if let Err(e) = signaller.signal(&exec_for_printer, &name, data).await {
                        eprintln!("error: signal {name} could not be delivered: {e}");
                    }
                }
                let item = s
                    .item_index
                    .map(|i| format!(" [item {i}]"))
                    .unwrap_or_default();
                let line = match s.status {
                    NodeStatus::Running => continue,
                    NodeStatus::Success => {
                        format!("ok      {}{item} ({} ms)", s.node_name, s.duration_ms)
                    }
                    NodeStatus::Waiting => format!("waiting {}{item}", s.node_name),
                    NodeStatus::Failed if s.is_cancelled() => {
                        format!("cancel  {}{item} ({} ms)", s.node_name, s.duration_ms)
                    }
                    NodeStatus::Failed => format!(
                        "FAILED  {}{item}: {}",
                        s.node_name,
                        s.error
                            .as_ref()
                            .map(|e| format!("{} [{}]", e.message, e.code))
                            .unwrap_or_default()
                    ),
                };
                finished += 1;
                match &bar {
                    Some(b) => {
                        b.println(line);
                        b.set_message(format!("{finished} node runs"));
                    }
                    None => eprintln!("{line}"),
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        });
        let completion = done
            .await
            .map_err(|_| anyhow::anyhow!("the runtime stopped before the workflow completed"))?;
        // The printer stops at the completion event, after every status emitted before it.
        let _ = printer.await;
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
        if args.completion {
            println!("{}", serde_json::to_string_pretty(&completion)?);
        } else {
            println!(
                "{}",
                serde_json::to_string_pretty(&completion.final_context)?
            );
        }
        Ok(if completion.status == ExecutionStatus::Completed {
            0
        } else {
            1
        })
    });
    rt.block_on(crate::logging::flush(telemetry));
    result
}
