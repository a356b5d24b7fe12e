//! `baton watch EXECUTION --master URL [--json]`: follows an execution's events on the master
//! (`GET /executions/{id}/events`: its history, then live) and shows it node by node — one line
//! per node with a status symbol, its timing and, inside splits, how its runs stand. On a
//! terminal the lines update in place (indicatif); otherwise each status change prints a line.
//! Ends with the final status on stdout (the completion JSON with `--json`); exit 0 when it
//! completed, 1 when it failed or halted.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::time::Duration;

use baton_core::message::{Completion, ExecutionStatus, NodeStatus, StatusEvent};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::executions::human_duration;
use super::master_client::MasterTarget;

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The execution to follow.
    pub execution_id: String,
    /// Print the completion JSON on stdout instead of a one-line summary.
    #[arg(long)]
    pub json: bool,
    /// Give up after this many seconds (0: wait until the execution ends).
    #[arg(long, default_value_t = 0)]
    pub timeout_secs: u64,
    #[command(flatten)]
    pub master: MasterTarget,
}

pub fn run(args: WatchArgs) -> anyhow::Result<u8> {
    let client = args.master.required()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut display = Display::new(std::io::stderr().is_terminal());
    let completion = rt.block_on(async {
        let follow = client.follow(&args.execution_id, |s| display.on_status(s));
        if args.timeout_secs == 0 {
            return Ok(Some(follow.await?));
        }
        match tokio::time::timeout(Duration::from_secs(args.timeout_secs), follow).await {
            Ok(c) => Ok::<_, anyhow::Error>(Some(c?)),
            Err(_) => Ok(None),
        }
    })?;
    display.finish();
    if display.rows.is_empty()
        && let Some(note) = completion.as_ref().and_then(quiet_note)
    {
        eprintln!("{note}");
    }
    let Some(completion) = completion else {
        eprintln!(
            "error: execution {} did not end within {} s",
            args.execution_id, args.timeout_secs
        );
        return Ok(1);
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&completion)?);
    } else {
        println!("{}", summary(&completion));
    }
    Ok(if completion.status == ExecutionStatus::Completed {
        0
    } else {
        1
    })
}

/// For an execution that sent no node statuses (status mode `off`, RFC 0011): which nodes left
/// an output, from its completion's final context.
fn quiet_note(c: &Completion) -> Option<String> {
    let outputs: Vec<&str> = c
        .final_context
        .keys()
        .filter(|k| k.starts_with('$') && !matches!(k.as_str(), "$input" | "$trigger"))
        .map(String::as_str)
        .collect();
    (!outputs.is_empty()).then(|| {
        format!(
            "no node statuses (status mode off); outputs of {} node(s): {}",
            outputs.len(),
            outputs.join(", ")
        )
    })
}

/// `completed <id> in 1.2 s` (`: <reason>` when it did not complete).
fn summary(c: &Completion) -> String {
    format!(
        "{} {} in {}{}",
        c.status.as_str(),
        c.execution_id,
        human_duration(c.total_duration_ms),
        c.failure_reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    )
}

fn symbol(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Running => "●",
        NodeStatus::Success => "✓",
        NodeStatus::Failed => "✗",
        NodeStatus::Waiting => "⏸",
    }
}

fn status_word(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Running => "running",
        NodeStatus::Success => "success",
        NodeStatus::Failed => "failed",
        NodeStatus::Waiting => "waiting",
    }
}

/// One node of the execution, with each of its runs (one per split item it ran in).
struct NodeRow {
    name: String,
    node_type: String,
    runs: BTreeMap<String, NodeStatus>,
    duration_ms: u64,
    error: Option<String>,
    bar: Option<ProgressBar>,
}

impl NodeRow {
    /// The node's overall state: running while any run runs; then failed, waiting, success.
    fn status(&self) -> NodeStatus {
        let any = |s: NodeStatus| self.runs.values().any(|r| *r == s);
        [NodeStatus::Running, NodeStatus::Failed, NodeStatus::Waiting]
            .into_iter()
            .find(|s| any(*s))
            .unwrap_or(NodeStatus::Success)
    }

    fn render(&self) -> String {
        let status = self.status();
        let mut line = format!(
            "{} {} ({}) {}",
            symbol(status),
            self.name,
            self.node_type,
            status_word(status)
        );
        if status != NodeStatus::Running && self.duration_ms > 0 {
            line.push_str(&format!(" {}", human_duration(self.duration_ms)));
        }
        if self.runs.len() > 1 {
            let mut counts: Vec<String> = Vec::new();
            for s in [
                NodeStatus::Success,
                NodeStatus::Running,
                NodeStatus::Waiting,
                NodeStatus::Failed,
            ] {
                let n = self.runs.values().filter(|r| **r == s).count();
                if n > 0 {
                    counts.push(format!("{}{n}", symbol(s)));
                }
            }
            line.push_str(&format!(
                " [{} runs: {}]",
                self.runs.len(),
                counts.join(" ")
            ));
        }
        if let Some(e) = &self.error {
            line.push_str(&format!(": {e}"));
        }
        line
    }
}

/// The live view: indicatif lines on a terminal, plain lines otherwise.
struct Display {
    multi: Option<MultiProgress>,
    rows: Vec<NodeRow>,
    index: HashMap<String, usize>,
}

impl Display {
    fn new(terminal: bool) -> Self {
        Self {
            multi: terminal.then(MultiProgress::new),
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn on_status(&mut self, s: &StatusEvent) {
        let i = match self.index.get(&s.node_id) {
            Some(i) => *i,
            None => {
                let bar = self
                    .multi
                    .as_ref()
                    .map(|m| m.add(ProgressBar::new_spinner()));
                self.rows.push(NodeRow {
                    name: s.node_name.clone(),
                    node_type: s.node_type.clone(),
                    runs: BTreeMap::new(),
                    duration_ms: 0,
                    error: None,
                    bar,
                });
                self.index.insert(s.node_id.clone(), self.rows.len() - 1);
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[i];
        // A run is one node in one split item (nested splits included).
        let run_key: Vec<&str> = s
            .lineage_stack
            .iter()
            .map(|f| f.branch_id.as_str())
            .collect();
        let run_key = run_key.join("/");
        if s.status == NodeStatus::Success {
            // An aggregator's arrivals wait in the item scopes it closes; its success in the
            // enclosing scope ends them.
            let inner = format!("{run_key}/");
            row.runs.retain(|k, status| {
                *status != NodeStatus::Waiting || !(run_key.is_empty() || k.starts_with(&inner))
            });
        }
        row.runs.insert(run_key, s.status);
        if s.duration_ms > 0 {
            row.duration_ms = s.duration_ms;
        }
        if let Some(e) = &s.error {
            row.error = Some(format!("{} [{}]", e.message, e.code));
        } else if s.status == NodeStatus::Success && row.status() == NodeStatus::Success {
            row.error = None;
        }
        match &row.bar {
            Some(bar) => {
                let running = row.status() == NodeStatus::Running;
                let template = if running { "{spinner} {msg}" } else { "{msg}" };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                if running {
                    bar.enable_steady_tick(Duration::from_millis(120));
                } else {
                    bar.disable_steady_tick();
                }
                bar.set_message(row.render());
            }
            None => {
                let item = s
                    .item_index
                    .map(|i| format!(" [item {i}]"))
                    .unwrap_or_default();
                let timing = if s.duration_ms > 0 {
                    format!(" {}", human_duration(s.duration_ms))
                } else {
                    String::new()
                };
                let error = s
                    .error
                    .as_ref()
                    .map(|e| format!(": {} [{}]", e.message, e.code))
                    .unwrap_or_default();
                eprintln!(
                    "{} {} ({}) {}{item}{timing}{error}",
                    symbol(s.status),
                    s.node_name,
                    s.node_type,
                    status_word(s.status)
                );
            }
        }
    }

    /// Leaves every line as it last stood.
    fn finish(&mut self) {
        for row in &self.rows {
            if let Some(bar) = &row.bar {
                bar.disable_steady_tick();
                if let Ok(style) = ProgressStyle::with_template("{msg}") {
                    bar.set_style(style);
                }
                bar.finish_with_message(row.render());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::message::Frame;

    fn event(node: &str, status: NodeStatus, item: Option<usize>, ms: u64) -> StatusEvent {
        let lineage = item
            .map(|i| {
                vec![Frame {
                    split_node_id: "split".into(),
                    branch_id: format!("x_split_{i}"),
                    item_index: i,
                    total_items: 3,
                }]
            })
            .unwrap_or_default();
        serde_json::from_value(serde_json::json!({
            "workflow_id": "w", "execution_id": "x", "node_id": node, "node_name": node,
            "node_type": "log", "status": status, "executed_at": "", "duration_ms": ms,
            "lineage_stack": lineage, "item_index": item,
        }))
        .unwrap()
    }

    #[test]
    fn a_node_inside_a_split_shows_how_its_runs_stand() {
        let mut d = Display::new(false);
        d.on_status(&event("Each", NodeStatus::Running, Some(0), 0));
        d.on_status(&event("Each", NodeStatus::Running, Some(1), 0));
        d.on_status(&event("Each", NodeStatus::Success, Some(0), 7));
        assert_eq!(d.rows[0].render(), "● Each (log) running [2 runs: ✓1 ●1]");
        d.on_status(&event("Each", NodeStatus::Success, Some(1), 9));
        assert_eq!(d.rows[0].render(), "✓ Each (log) success 9 ms [2 runs: ✓2]");
    }

    #[test]
    fn an_aggregator_that_released_is_no_longer_shown_waiting() {
        let mut d = Display::new(false);
        d.on_status(&event("Collect", NodeStatus::Waiting, Some(0), 0));
        d.on_status(&event("Collect", NodeStatus::Waiting, Some(1), 0));
        assert_eq!(d.rows[0].render(), "⏸ Collect (log) waiting [2 runs: ⏸2]");
        d.on_status(&event("Collect", NodeStatus::Success, None, 3));
        assert_eq!(d.rows[0].render(), "✓ Collect (log) success 3 ms");
    }

    #[test]
    fn an_execution_without_statuses_names_the_nodes_that_left_an_output() {
        let completion: Completion = serde_json::from_value(serde_json::json!({
            "workflow_id": "w", "execution_id": "x", "status": "completed",
            "final_context": {"$input": {}, "$A": 1, "$B": 2},
            "completed_at": "2026-01-01T00:00:00Z", "total_duration_ms": 3
        }))
        .expect("completion");
        let note = quiet_note(&completion).expect("a note");
        assert!(note.contains("2 node(s): $A, $B"), "{note}");
    }

    #[test]
    fn a_plain_node_shows_its_symbol_status_and_timing() {
        let mut d = Display::new(false);
        d.on_status(&event("Hello", NodeStatus::Running, None, 0));
        assert_eq!(d.rows[0].render(), "● Hello (log) running");
        d.on_status(&event("Hello", NodeStatus::Success, None, 1500));
        assert_eq!(d.rows[0].render(), "✓ Hello (log) success 1.5 s");
    }
}
