//! Start messages inline and by reference (RFC 0011): the bytes a start puts on the wire for
//! the benchmark's workflows, and the worker's CPU to take one in (classify the delivery, then
//! find its compiled definition: inline, hash the definition to find it in the cache; by
//! reference, look the hash up). Counted in this process, no broker: the sizes are exact, the
//! CPU is this process's (`/proc/self/stat`) over many repetitions.

use std::hint::black_box;

use baton_core::graph::content_hash;
use baton_core::wire::{Intake, RuneStart, StartDefinition, classify, seed_input};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::procfs;
use crate::stats::r3;
use crate::workflows;

/// Repetitions of each intake measured: enough CPU for the clock-tick resolution of
/// `/proc/self/stat` (10 ms) to be small.
const REPETITIONS: u32 = 20_000;

/// One workflow's start message, both ways.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartSize {
    pub workflow: String,
    pub nodes: usize,
    pub inline_bytes: usize,
    pub by_reference_bytes: usize,
    /// Worker CPU per start taken in, µs (`None`: not measured).
    pub intake_cpu_us_inline: Option<f64>,
    pub intake_cpu_us_by_reference: Option<f64>,
}

/// The chain of (a)–(b) and the fan-out of (c).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartSizes {
    pub chain: StartSize,
    pub fanout: StartSize,
}

impl StartSizes {
    /// The sizes of the `chain_len`-node chain's and the fan-out's starts; the intake CPU too
    /// when `cpu` (it takes a few seconds of CPU in a debug build).
    pub fn measure(chain_len: usize, cpu: bool) -> Self {
        Self {
            chain: StartSize::of(&workflows::chain(chain_len), cpu),
            fanout: StartSize::of(&workflows::fanout(), cpu),
        }
    }

    /// The report's lines.
    pub fn render(&self, s: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            s,
            "\nstart messages (RFC 0011): bytes inline -> by reference; worker intake CPU, µs"
        );
        for x in [&self.chain, &self.fanout] {
            let cpu = match (x.intake_cpu_us_inline, x.intake_cpu_us_by_reference) {
                (Some(a), Some(b)) => format!("; intake {a:.1} -> {b:.1} µs"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "  {} ({} nodes): {} -> {} bytes{cpu}",
                x.workflow, x.nodes, x.inline_bytes, x.by_reference_bytes
            );
        }
    }
}

impl StartSize {
    fn of(workflow: &Value, cpu: bool) -> Self {
        let name = workflow.get("name").and_then(Value::as_str).unwrap_or("");
        let mut context = Map::new();
        seed_input(&mut context, json!({}));
        let execution_id = "0191f1c2-7a3b-7cde-8f01-23456789abcd";
        let inline = RuneStart::new(
            name,
            execution_id,
            "$start",
            workflow.clone(),
            context.clone(),
        );
        let by_ref = RuneStart::by_reference(
            name,
            execution_id,
            "$start",
            content_hash(workflow),
            context,
        );
        let inline = serde_json::to_vec(&inline).unwrap_or_default();
        let by_ref = serde_json::to_vec(&by_ref).unwrap_or_default();
        let nodes = workflow
            .get("nodes")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Self {
            workflow: name.to_string(),
            nodes,
            inline_bytes: inline.len(),
            by_reference_bytes: by_ref.len(),
            intake_cpu_us_inline: cpu.then(|| intake_cpu_us(&inline)).flatten(),
            intake_cpu_us_by_reference: cpu.then(|| intake_cpu_us(&by_ref)).flatten(),
        }
    }
}

/// CPU per start of what the worker does before the engine's start: classify the body, then
/// the key its compiled definition is cached under (inline: the definition's hash).
fn intake_cpu_us(body: &[u8]) -> Option<f64> {
    let me = std::process::id();
    let before = procfs::cpu_secs(me)?;
    for _ in 0..REPETITIONS {
        let key = match classify(black_box(body), usize::MAX) {
            Intake::RuneStart(start) => match start.definition {
                StartDefinition::Inline(doc) => content_hash(&doc),
                StartDefinition::Reference(r) => r,
            },
            _ => String::new(),
        };
        black_box(key);
    }
    let after = procfs::cpu_secs(me)?;
    Some(r3((after - before) * 1e6 / f64::from(REPETITIONS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_by_reference_is_smaller_than_the_workflow_inline_by_about_the_workflow() {
        let sizes = StartSizes::measure(20, false);
        let chain = &sizes.chain;
        let definition = workflows::chain(20).to_string().len();
        assert_eq!(chain.nodes, 20);
        assert!(chain.by_reference_bytes < 300, "{chain:?}");
        assert_eq!(
            chain.inline_bytes - chain.by_reference_bytes,
            // `"workflow_definition":<definition>` instead of `"workflow_ref":"<32 hex>"`.
            definition + "workflow_definition".len() - "workflow_ref".len() - 34,
            "{chain:?}"
        );
        let mut text = String::new();
        sizes.render(&mut text);
        assert!(text.contains("bench-chain-20 (20 nodes)"), "{text}");
        println!("{text}");
    }

    /// The figures with the intake CPU (`cargo test [--release] -p baton-bench --lib
    /// intake_cpu -- --ignored --nocapture`): seconds of CPU, so not in the default run.
    #[test]
    #[ignore]
    fn intake_cpu_figures() {
        let sizes = StartSizes::measure(20, true);
        assert!(sizes.chain.intake_cpu_us_inline.is_some());
        let mut text = String::new();
        sizes.render(&mut text);
        println!("{text}");
    }
}
