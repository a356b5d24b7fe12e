//! The compiled workflow: indexed nodes and edges, typed routes, compiled templates and
//! expressions, joins and split scopes. Compiling is also semantic validation: every problem
//! (duplicates, dangling edges, cycles, unknown types, bad parameters, references to
//! non-ancestors, unreachable nodes, missing conditional/switch edges) is reported at once.
//!
//! The rooms: `compile.rs` (the build), `repair.rs` (checking past shape errors),
//! `ancestry.rs` (the "reads only its ancestors" check, in linear memory), `checks.rs`
//! (parameters, template roots, raw roots, the topological order), `route.rs` (which edges an
//! outcome follows), `scopes.rs` (split scopes and their aggregators).

mod ancestry;
mod checks;
mod compile;
mod race;
mod repair;
mod route;
mod scopes;

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::expr::Expr;
use crate::limits::DefinitionLimits;
use crate::model::{ErrorKind, RetryPolicy, Workflow};
use crate::spec::{NodeCatalog, NodeClass};
use crate::template::{CompiledTemplate, TemplateSet};
use crate::validate::{Invalid, Problem, check_shape};

pub type NodeIdx = usize;
pub type EdgeIdx = usize;

/// When an edge is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Success,
    Error,
    True,
    False,
    /// A switch route: the rule index, or `rules.len()` for the fallback.
    Case(usize),
}

#[derive(Debug, Clone)]
pub struct CompiledEdge {
    pub id: String,
    pub src: NodeIdx,
    pub dst: NodeIdx,
    pub route: Route,
}

/// A node ready to run.
#[derive(Debug)]
pub struct CompiledNode {
    pub idx: NodeIdx,
    pub id: String,
    pub name: String,
    /// Context key of the node's output: `$` + name.
    pub key: String,
    pub node_type: String,
    pub class: NodeClass,
    pub trigger: bool,
    pub error_policy: ErrorKind,
    pub retry: RetryPolicy,
    pub timeout_ms: Option<u64>,
    pub params: CompiledTemplate,
    /// The conditional's expression, compiled.
    pub condition: Option<Expr>,
    /// Credential values plus Rune's `"type"` key.
    pub credentials: Option<Map<String, Value>>,
    pub out_edges: Vec<EdgeIdx>,
    /// Incoming edges that can deliver arrivals (edges from triggers excluded).
    pub in_edges: Vec<EdgeIdx>,
    /// Waits for its incoming branches (a merge, or any node with several incoming edges).
    pub is_join: bool,
    pub wait_for_any: bool,
    /// A `wait_for_any` merge with `cancel_losers`: its release cancels the losing branches.
    pub cancel_losers: bool,
    /// Upstream of a `cancel_losers` merge: a release may cancel this node's runs, so its hops
    /// check for the cancellation marker ([`race_marker`]).
    pub may_lose: bool,
    /// For a split: the aggregator that closes its scope, if any.
    pub split_closer: Option<NodeIdx>,
    /// Its type is pure (`NodeSpec::pure`): running it twice is harmless, so its hops take no
    /// claim (and, without reads, no round trip before the run).
    pub pure: bool,
    /// Context keys this node's parameters and expression read.
    pub reads: Vec<String>,
    /// Parameters the node type declares raw (`NodeSpec::raw_params`), exactly as written: the
    /// engine re-inserts them into the resolved parameters, untouched.
    pub raw_params: Map<String, Value>,
    /// The workflow's `status_mode` (the most status detail its runs publish), copied here so
    /// the hop finds it with the node.
    pub status_mode: Option<crate::wire::StatusMode>,
}

pub use race::{RACE_MARKER_PREFIX, race_marker};

/// A validated, compiled workflow. Immutable; shared between hops.
#[derive(Debug)]
pub struct CompiledWorkflow {
    pub definition: Workflow,
    pub nodes: Vec<CompiledNode>,
    pub edges: Vec<CompiledEdge>,
    pub by_id: HashMap<String, NodeIdx>,
    pub start: Vec<NodeIdx>,
    pub on_failure: Option<NodeIdx>,
    pub templates: TemplateSet,
    /// Content hash of the definition: executions are pinned to it.
    pub reference: String,
}

/// How a node ended, for routing.
#[derive(Debug, Clone, Copy)]
pub enum RouteOutcome<'a> {
    Success(&'a Value),
    /// Failed under `ignore`: continue as if it succeeded with no output.
    Ignored,
    /// Failed under `branch`: only error edges.
    ErrorBranch,
}

impl CompiledWorkflow {
    /// Validates and compiles a workflow document within the default [`DefinitionLimits`].
    pub fn compile(doc: &Value, catalog: &dyn NodeCatalog) -> Result<Self, Invalid> {
        Self::compile_within(doc, catalog, &DefinitionLimits::default())
    }

    /// Validates and compiles a workflow document. The limits are checked first, so an
    /// oversized definition costs a count, not a compile.
    pub fn compile_within(
        doc: &Value,
        catalog: &dyn NodeCatalog,
        limits: &DefinitionLimits,
    ) -> Result<Self, Invalid> {
        let over = limits.check(doc);
        if !over.is_empty() {
            return Err(Invalid(over));
        }
        let mut problems = check_shape(doc);
        if !problems.is_empty() {
            // The rest of the document is still checked, so one shape error hides nothing else.
            if let Some(repaired) = repair::repair(doc)
                && let Ok(definition) = serde_json::from_value::<Workflow>(repaired.doc.clone())
            {
                let mut more = Vec::new();
                let _ = Self::build(definition, catalog, &mut more);
                for p in more {
                    if !repaired.hides(&p.path) && !problems.contains(&p) {
                        problems.push(p);
                    }
                }
            }
            return Err(Invalid(problems));
        }
        let definition: Workflow = serde_json::from_value(doc.clone()).map_err(|e| {
            Invalid(vec![Problem::new(
                "$",
                format!("does not match the workflow format: {e}"),
            )])
        })?;
        let compiled = Self::build(definition, catalog, &mut problems).map(|mut wf| {
            wf.reference = content_hash(doc);
            wf
        });
        if problems.is_empty() {
            compiled.ok_or_else(|| Invalid(vec![Problem::new("$", "could not compile")]))
        } else {
            Err(Invalid(problems))
        }
    }

    pub fn node(&self, id: &str) -> Option<&CompiledNode> {
        self.by_id.get(id).map(|i| &self.nodes[*i])
    }
}

/// SHA-256 of the definition's JSON text (first 128 bits, hex).
pub fn content_hash(doc: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(doc.to_string().as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The length of a [`content_hash`]: 32 hex digits.
pub const REFERENCE_LEN: usize = 32;

/// Whether `text` has the shape of a [`content_hash`] (32 lowercase hex digits): what a start
/// message may name its definition by (`workflow_ref`).
pub fn is_reference(text: &str) -> bool {
    text.len() == REFERENCE_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
