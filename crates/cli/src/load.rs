//! Reading workflow files and inputs from disk, with the exit-code classes the CLI promises.

use std::path::Path;

use baton_core::CompiledWorkflow;
use baton_core::limits::DefinitionLimits;
use baton_core::validate::Invalid;
use baton_engine::NodeRegistry;
use serde_json::Value;

/// Why a workflow could not be loaded.
pub enum LoadError {
    /// The file cannot be read or is not JSON (exit 2).
    Unreadable(String),
    /// The workflow is invalid (exit 1 for `validate`, 2 for `run`).
    Invalid(Invalid),
}

/// Reads a workflow document. A Rune execution message is accepted too: its
/// `workflow_definition` is the workflow.
pub fn read_document(path: &Path) -> Result<Value, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::Unreadable(format!("cannot read {}: {e}", path.display())))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| LoadError::Unreadable(format!("{} is not JSON: {e}", path.display())))?;
    Ok(match doc.get("workflow_definition") {
        Some(inner) if inner.is_object() => inner.clone(),
        _ => doc,
    })
}

pub fn compile(path: &Path, registry: &NodeRegistry) -> Result<CompiledWorkflow, LoadError> {
    let doc = read_document(path)?;
    CompiledWorkflow::compile_within(&doc, registry, &definition_limits())
        .map_err(LoadError::Invalid)
}

/// The definition limits, from `BATON_MAX_DEFINITION_BYTES`, `BATON_MAX_NODES` and
/// `BATON_MAX_EDGES` when set (as the worker and master read them), else the defaults: a file
/// that validates here is accepted there.
pub fn definition_limits() -> DefinitionLimits {
    let read = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let d = DefinitionLimits::default();
    DefinitionLimits {
        max_bytes: read("BATON_MAX_DEFINITION_BYTES", d.max_bytes),
        max_nodes: read("BATON_MAX_NODES", d.max_nodes),
        max_edges: read("BATON_MAX_EDGES", d.max_edges),
    }
}

/// `--input` value: inline JSON, or `@file.json`.
pub fn read_input(arg: Option<&str>) -> anyhow::Result<Value> {
    let Some(arg) = arg else {
        return Ok(Value::Object(Default::default()));
    };
    let text = match arg.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read input file {file}: {e}"))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("--input is not valid JSON: {e}"))
}
