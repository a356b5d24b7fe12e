//! The compiled workflow: indexed nodes and edges, typed routes, compiled templates and
//! expressions, joins and split scopes. Compiling is also semantic validation: every problem
//! (duplicates, dangling edges, cycles, unknown types, bad parameters, references to
//! non-ancestors, unreachable nodes, missing conditional/switch edges) is reported at once.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use crate::expr::Expr;
use crate::model::{ErrorKind, RetryPolicy, Workflow};
use crate::spec::{NodeCatalog, NodeClass, is_trigger_type};
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
    /// For a split: the aggregator that closes its scope, if any.
    pub split_closer: Option<NodeIdx>,
    /// Context keys this node's parameters and expression read.
    pub reads: Vec<String>,
    /// Parameters the node type declares raw (`NodeSpec::raw_params`), exactly as written: the
    /// engine re-inserts them into the resolved parameters, untouched.
    pub raw_params: Map<String, Value>,
}

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
    /// Validates and compiles a workflow document.
    pub fn compile(doc: &Value, catalog: &dyn NodeCatalog) -> Result<Self, Invalid> {
        let mut problems = check_shape(doc);
        if !problems.is_empty() {
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

    fn build(
        def: Workflow,
        catalog: &dyn NodeCatalog,
        problems: &mut Vec<Problem>,
    ) -> Option<Self> {
        let mut by_id = HashMap::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, n) in def.nodes.iter().enumerate() {
            if let Some(first) = by_id.insert(n.id.clone(), i) {
                problems.push(Problem::new(
                    format!("$.nodes[{i}].id"),
                    format!("duplicate node id `{}` (also $.nodes[{first}])", n.id),
                ));
                by_id.insert(n.id.clone(), first);
            }
            if let Some(first) = names.insert(n.name.as_str(), i) {
                problems.push(Problem::new(
                    format!("$.nodes[{i}].name"),
                    format!("duplicate node name `{}` (also $.nodes[{first}]); names are context keys and must be unique", n.name),
                ));
                names.insert(n.name.as_str(), first);
            }
        }
        // Edges.
        let mut edge_ids: HashMap<&str, usize> = HashMap::new();
        let mut raw_edges: Vec<Option<(NodeIdx, NodeIdx)>> = Vec::new();
        for (i, e) in def.edges.iter().enumerate() {
            if let Some(first) = edge_ids.insert(e.id.as_str(), i) {
                problems.push(Problem::new(
                    format!("$.edges[{i}].id"),
                    format!("duplicate edge id `{}` (also $.edges[{first}])", e.id),
                ));
            }
            let src = by_id.get(&e.src).copied();
            let dst = by_id.get(&e.dst).copied();
            if src.is_none() {
                problems.push(Problem::new(
                    format!("$.edges[{i}].src"),
                    format!("edge `{}` starts at missing node `{}`", e.id, e.src),
                ));
            }
            if dst.is_none() {
                problems.push(Problem::new(
                    format!("$.edges[{i}].dst"),
                    format!("edge `{}` points to missing node `{}`", e.id, e.dst),
                ));
            }
            raw_edges.push(src.zip(dst));
        }
        let n = def.nodes.len();
        let mut out_adj: Vec<Vec<EdgeIdx>> = vec![Vec::new(); n];
        let mut in_adj: Vec<Vec<EdgeIdx>> = vec![Vec::new(); n];
        for (i, r) in raw_edges.iter().enumerate() {
            if let Some((s, d)) = r {
                out_adj[*s].push(i);
                in_adj[*d].push(i);
            }
        }
        // Node types.
        let mut classes = Vec::with_capacity(n);
        let mut raw_names: Vec<Vec<&'static str>> = Vec::with_capacity(n);
        for (i, node) in def.nodes.iter().enumerate() {
            raw_names.push(
                catalog
                    .spec(&node.node_type)
                    .map(|s| s.raw_params.clone())
                    .unwrap_or_default(),
            );
            let trigger = node.trigger || is_trigger_type(&node.node_type);
            if trigger {
                classes.push(None);
                continue;
            }
            match catalog.spec(&node.node_type) {
                Some(spec) => {
                    classes.push(Some(spec.class));
                    check_params(problems, i, &node.parameters, spec);
                }
                None => {
                    problems.push(Problem::new(
                        format!("$.nodes[{i}].type"),
                        format!("unknown node type `{}` (see `baton nodes`)", node.node_type),
                    ));
                    classes.push(None);
                }
            }
        }
        // Cycles.
        let order = match topo_order(n, &raw_edges) {
            Ok(o) => o,
            Err(cycle) => {
                let names: Vec<&str> = cycle.iter().map(|i| def.nodes[*i].name.as_str()).collect();
                problems.push(Problem::new(
                    "$.edges",
                    format!("cycle: {} -> {}", names.join(" -> "), names[0]),
                ));
                return None;
            }
        };
        let is_trigger: Vec<bool> = def
            .nodes
            .iter()
            .map(|x| x.trigger || is_trigger_type(&x.node_type))
            .collect();
        // Start nodes: successors of triggers, else nodes with no incoming edge.
        let mut start: Vec<NodeIdx> = Vec::new();
        if is_trigger.iter().any(|t| *t) {
            for (t, _) in is_trigger.iter().enumerate().filter(|(_, t)| **t) {
                for e in &out_adj[t] {
                    if let Some((_, d)) = raw_edges[*e]
                        && !is_trigger[d]
                        && !start.contains(&d)
                    {
                        start.push(d);
                    }
                }
            }
        } else {
            start = (0..n).filter(|i| in_adj[*i].is_empty()).collect();
        }
        let on_failure_idx = def
            .on_failure
            .as_ref()
            .and_then(|id| by_id.get(id).copied());
        start.retain(|i| Some(*i) != on_failure_idx);
        let on_failure = match &def.on_failure {
            Some(id) => match by_id.get(id) {
                Some(i) => Some(*i),
                None => {
                    problems.push(Problem::new(
                        "$.on_failure",
                        format!("names missing node `{id}`"),
                    ));
                    None
                }
            },
            None => None,
        };
        // Reachability.
        let mut reached = vec![false; n];
        let mut queue: VecDeque<NodeIdx> = start.iter().copied().collect();
        if let Some(f) = on_failure {
            queue.push_back(f);
        }
        while let Some(i) = queue.pop_front() {
            if std::mem::replace(&mut reached[i], true) {
                continue;
            }
            for e in &out_adj[i] {
                if let Some((_, d)) = raw_edges[*e] {
                    queue.push_back(d);
                }
            }
        }
        for i in 0..n {
            if !reached[i] && !is_trigger[i] {
                problems.push(Problem::new(
                    format!("$.nodes[{i}]"),
                    format!(
                        "node `{}` is unreachable from the start nodes",
                        def.nodes[i].name
                    ),
                ));
            }
        }
        // Ancestors (by topological order).
        let mut ancestors: Vec<HashSet<NodeIdx>> = vec![HashSet::new(); n];
        for &i in &order {
            let mut acc = HashSet::new();
            for e in &in_adj[i] {
                if let Some((s, _)) = raw_edges[*e] {
                    acc.insert(s);
                    acc.extend(ancestors[s].iter().copied());
                }
            }
            ancestors[i] = acc;
        }
        let name_to_idx: HashMap<String, NodeIdx> = def
            .nodes
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("${}", x.name), i))
            .collect();
        let mut strict_roots: HashSet<String> = name_to_idx.keys().cloned().collect();
        strict_roots.insert("$input".into());
        strict_roots.insert("$trigger".into());

        // Edge routes.
        let mut routes: Vec<Route> = def
            .edges
            .iter()
            .map(|e| match e.on.as_deref() {
                Some("error") => Route::Error,
                Some("true") => Route::True,
                Some("false") => Route::False,
                _ => Route::Success,
            })
            .collect();
        let mut templates = TemplateSet::new();
        let mut nodes = Vec::with_capacity(n);
        for (i, node) in def.nodes.iter().enumerate() {
            let class = classes[i].unwrap_or(NodeClass::Action);
            let base = format!("$.nodes[{i}]");
            // Error policy and error edges.
            let mut error_policy = node
                .error
                .as_ref()
                .and_then(|e| e.kind.as_deref())
                .and_then(ErrorKind::parse);
            if let Some(edge_id) = node.error.as_ref().and_then(|e| e.error_edge.as_ref()) {
                match edge_ids.get(edge_id.as_str()) {
                    Some(ei) if raw_edges[*ei].is_some_and(|(s, _)| s == i) => {
                        routes[*ei] = Route::Error
                    }
                    _ => problems.push(Problem::new(
                        format!("{base}.error.error_edge"),
                        format!(
                            "names edge `{edge_id}`, which is not an edge leaving `{}`",
                            node.name
                        ),
                    )),
                }
            }
            let has_error_edge = out_adj[i].iter().any(|e| routes[*e] == Route::Error);
            if error_policy.is_none() && has_error_edge {
                error_policy = Some(ErrorKind::Branch);
            }
            let error_policy = error_policy.unwrap_or(ErrorKind::Halt);
            if error_policy == ErrorKind::Branch && !has_error_edge {
                problems.push(Problem::new(format!("{base}.error"), format!("policy `branch` needs an error edge leaving `{}` (`on: \"error\"` or `error_edge`)", node.name)));
            }
            // Class-specific route typing.
            let params = node.parameters.as_object().cloned().unwrap_or_default();
            match class {
                NodeClass::Conditional => {
                    for (param, route) in [
                        ("true_edge_id", Route::True),
                        ("false_edge_id", Route::False),
                    ] {
                        if let Some(Value::String(edge_id)) = params
                            .get(param)
                            .filter(|v| !v.as_str().is_some_and(str::is_empty))
                        {
                            match edge_ids.get(edge_id.as_str()) {
                                Some(ei) if raw_edges[*ei].is_some_and(|(s, _)| s == i) => {
                                    routes[*ei] = route
                                }
                                _ => problems.push(Problem::new(
                                    format!("{base}.parameters.{param}"),
                                    format!(
                                        "names edge `{edge_id}`, which is not an edge leaving `{}`",
                                        node.name
                                    ),
                                )),
                            }
                        }
                    }
                    for e in &out_adj[i] {
                        if routes[*e] == Route::Success {
                            problems.push(Problem::new(format!("$.edges[{e}]"), format!("edge `{}` leaves conditional `{}` but is neither its true nor its false edge (set `on`, or `true_edge_id`/`false_edge_id`)", def.edges[*e].id, node.name)));
                        }
                    }
                }
                NodeClass::Switch => {
                    let rules = params
                        .get("rules")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(Value::Array(rs)) = params.get("routes") {
                        for (k, r) in rs.iter().enumerate() {
                            if let Value::String(edge_id) = r {
                                match edge_ids.get(edge_id.as_str()) {
                                    Some(ei) if raw_edges[*ei].is_some_and(|(s, _)| s == i) => routes[*ei] = Route::Case(k.min(rules.len())),
                                    _ => problems.push(Problem::new(format!("{base}.parameters.routes[{k}]"), format!("names edge `{edge_id}`, which is not an edge leaving `{}`", node.name))),
                                }
                            }
                        }
                    }
                    for e in &out_adj[i] {
                        let Some(on) = def.edges[*e].on.as_deref() else {
                            continue;
                        };
                        if matches!(on, "error") {
                            continue;
                        }
                        match case_index(on, &rules) {
                            Some(k) => routes[*e] = Route::Case(k),
                            None => problems.push(Problem::new(format!("$.edges[{e}].on"), format!("switch `{}` has no case `{on}` (cases: rule `name`, rule index, or `fallback`)", node.name))),
                        }
                    }
                    // An edge whose `on` names no case was reported just above.
                    for e in &out_adj[i] {
                        if routes[*e] == Route::Success && def.edges[*e].on.is_none() {
                            problems.push(Problem::new(
                                format!("$.edges[{e}]"),
                                format!(
                                    "edge `{}` leaves switch `{}` but is not one of its routes",
                                    def.edges[*e].id, node.name
                                ),
                            ));
                        }
                    }
                }
                _ => {
                    for e in &out_adj[i] {
                        if matches!(routes[*e], Route::True | Route::False) {
                            problems.push(Problem::new(
                                format!("$.edges[{e}].on"),
                                format!(
                                    "`{}` edges only leave conditional nodes; `{}` is a {}",
                                    def.edges[*e].on.as_deref().unwrap_or(""),
                                    node.name,
                                    node.node_type
                                ),
                            ));
                        }
                    }
                }
            }
            // Templates and expression.
            let mut condition = None;
            let mut template_params = node.parameters.clone();
            if class == NodeClass::Conditional
                && let Some(obj) = template_params.as_object_mut()
            {
                match obj.remove("expression") {
                    Some(Value::String(src)) => match Expr::compile(&src) {
                        Ok(x) => condition = Some(x),
                        Err(e) => problems.push(Problem::new(
                            format!("{base}.parameters.expression"),
                            e.to_string(),
                        )),
                    },
                    Some(Value::Bool(b)) => {
                        condition = Expr::compile(if b { "true" } else { "false" }).ok()
                    }
                    _ => {}
                }
            }
            let mut raw_params = Map::new();
            if let Some(obj) = template_params.as_object_mut() {
                for name in &raw_names[i] {
                    if let Some(v) = obj.remove(*name) {
                        raw_params.insert((*name).to_string(), v);
                    }
                }
            }
            let compiled = match templates.compile(&template_params, &strict_roots) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(Problem::new(format!("{base}.parameters"), e.to_string()));
                    templates
                        .compile(&Value::Object(Map::new()), &strict_roots)
                        .ok()?
                }
            };
            let mut reads: Vec<String> = compiled.roots().to_vec();
            if let Some(c) = &condition {
                for r in c.references() {
                    if !reads.contains(&r.root) {
                        reads.push(r.root.clone());
                    }
                }
            }
            if !raw_names[i].is_empty() {
                for root in raw_roots(&raw_params)
                    .into_iter()
                    .chain(std::iter::once("$json".to_string()))
                {
                    if !reads.contains(&root) {
                        reads.push(root);
                    }
                }
            }
            for root in &reads {
                if let Some(&j) = name_to_idx.get(root)
                    && !ancestors[i].contains(&j)
                {
                    let why = if j == i {
                        "its own output".to_string()
                    } else {
                        format!(
                            "node `{}`, which is not an ancestor of `{}`",
                            def.nodes[j].name, node.name
                        )
                    };
                    problems.push(Problem::new(
                        format!("{base}.parameters"),
                        format!("references `{root}`: {why}, so its output cannot exist yet"),
                    ));
                }
            }
            let credentials = node.credentials.as_ref().map(|c| {
                // A vault reference (`{"$credential": "<id>"}`) stays a reference: the hop
                // reveals it right before the node runs.
                if let Some(reference) = c.extra.get("$credential") {
                    return Map::from_iter([("$credential".to_string(), reference.clone())]);
                }
                let mut m = c.values.clone();
                m.insert("type".into(), Value::String(c.cred_type.clone()));
                m
            });
            let wait_for_any = class == NodeClass::Merge
                && params.get("wait_mode").and_then(Value::as_str) == Some("wait_for_any");
            let in_edges: Vec<EdgeIdx> = in_adj[i]
                .iter()
                .copied()
                .filter(|e| raw_edges[*e].is_some_and(|(s, _)| !is_trigger[s]))
                .collect();
            let is_join = class == NodeClass::Merge || in_edges.len() > 1;
            nodes.push(CompiledNode {
                idx: i,
                id: node.id.clone(),
                name: node.name.clone(),
                key: format!("${}", node.name),
                node_type: node.node_type.clone(),
                class,
                trigger: is_trigger[i],
                error_policy,
                retry: node.retry.clone().unwrap_or_default(),
                timeout_ms: node.timeout_ms,
                params: compiled,
                condition,
                credentials,
                out_edges: out_adj[i].clone(),
                in_edges,
                is_join,
                wait_for_any,
                split_closer: None,
                reads,
                raw_params,
            });
        }
        if !problems.is_empty() {
            return None;
        }
        let edges: Vec<CompiledEdge> = def
            .edges
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                raw_edges[i].map(|(s, d)| CompiledEdge {
                    id: e.id.clone(),
                    src: s,
                    dst: d,
                    route: routes[i].clone(),
                })
            })
            .collect();
        let mut wf = CompiledWorkflow {
            definition: def,
            nodes,
            edges,
            by_id,
            start,
            on_failure,
            templates,
            reference: String::new(),
        };
        for i in 0..n {
            if wf.nodes[i].class == NodeClass::Split {
                wf.nodes[i].split_closer = wf.find_closer(i);
            }
        }
        for i in 0..n {
            if wf.nodes[i].class == NodeClass::Aggregator
                && !wf.nodes.iter().any(|x| x.split_closer == Some(i))
            {
                problems.push(Problem::new(
                    format!("$.nodes[{i}]"),
                    format!(
                        "aggregator `{}` is not downstream of a split",
                        wf.nodes[i].name
                    ),
                ));
            }
        }
        if problems.is_empty() { Some(wf) } else { None }
    }

    /// The aggregator closing the scope a split opens: the first aggregator reached at nesting
    /// depth zero.
    fn find_closer(&self, split: NodeIdx) -> Option<NodeIdx> {
        let mut seen = HashSet::new();
        let mut queue: VecDeque<(NodeIdx, i32)> = VecDeque::new();
        for e in &self.nodes[split].out_edges {
            queue.push_back((self.edges_by_def(*e)?.dst, 0));
        }
        while let Some((i, depth)) = queue.pop_front() {
            if !seen.insert((i, depth)) {
                continue;
            }
            let node = &self.nodes[i];
            let next_depth = match node.class {
                NodeClass::Aggregator if depth == 0 => return Some(i),
                NodeClass::Aggregator => depth - 1,
                NodeClass::Split => depth + 1,
                _ => depth,
            };
            for e in &node.out_edges {
                if let Some(edge) = self.edges_by_def(*e) {
                    queue.push_back((edge.dst, next_depth));
                }
            }
        }
        None
    }

    /// Edge by its index in the definition (compiled edges keep definition order when valid).
    pub fn edges_by_def(&self, e: EdgeIdx) -> Option<&CompiledEdge> {
        self.edges.get(e)
    }

    /// Which outgoing edges a node's outcome follows; the rest are "not taken" and carry skips.
    pub fn route(&self, node: NodeIdx, outcome: RouteOutcome<'_>) -> (Vec<EdgeIdx>, Vec<EdgeIdx>) {
        let n = &self.nodes[node];
        let mut taken = Vec::new();
        let mut untaken = Vec::new();
        let selected_case = |output: Option<&Value>| -> Option<usize> {
            output
                .and_then(|o| o.get("output_index"))
                .and_then(Value::as_u64)
                .map(|x| x as usize)
        };
        for &e in &n.out_edges {
            let route = &self.edges[e].route;
            let follow = match outcome {
                RouteOutcome::ErrorBranch => *route == Route::Error,
                RouteOutcome::Success(output) => {
                    self.follows(n, route, Some(output), selected_case(Some(output)))
                }
                RouteOutcome::Ignored => self.follows(n, route, None, None),
            };
            if follow {
                taken.push(e)
            } else {
                untaken.push(e)
            }
        }
        (taken, untaken)
    }

    fn follows(
        &self,
        n: &CompiledNode,
        route: &Route,
        output: Option<&Value>,
        case: Option<usize>,
    ) -> bool {
        match route {
            Route::Error => false,
            Route::Success => true,
            Route::True | Route::False => {
                let result = output
                    .and_then(|o| o.get("result"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                (*route == Route::True) == result
            }
            Route::Case(k) => {
                let fallback = self.switch_fallback_index(n);
                *k == case.unwrap_or(fallback)
            }
        }
    }

    fn switch_fallback_index(&self, n: &CompiledNode) -> usize {
        self.definition.nodes[n.idx]
            .parameters
            .get("rules")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }
}

/// Which switch case an edge's `on` names: a rule `name`/`case`, a rule index, or the fallback.
fn case_index(on: &str, rules: &[Value]) -> Option<usize> {
    if matches!(on, "fallback" | "default") {
        return Some(rules.len());
    }
    if let Some(k) = rules.iter().position(|r| {
        ["name", "case", "label"]
            .iter()
            .any(|f| r.get(*f).and_then(Value::as_str) == Some(on))
    }) {
        return Some(k);
    }
    on.parse::<usize>().ok().filter(|k| *k <= rules.len())
}

fn check_params(
    problems: &mut Vec<Problem>,
    i: usize,
    params: &Value,
    spec: &crate::spec::NodeSpec,
) {
    let obj = params.as_object();
    for p in &spec.params {
        let path = format!("$.nodes[{i}].parameters.{}", p.name);
        match obj.and_then(|o| o.get(p.name)) {
            None | Some(Value::Null) if p.required => problems.push(Problem::new(
                path,
                format!(
                    "is required by `{}`: expected {}",
                    spec.type_name,
                    p.kind.describe()
                ),
            )),
            Some(v) if !v.is_null() && !is_templated(v) && !p.kind.accepts(v) => problems.push(
                Problem::new(path, format!("expected {}, found `{v}`", p.kind.describe())),
            ),
            _ => {}
        }
    }
}

/// The context roots raw parameters mention: every `$root` in their strings, plus the first
/// segment of a top-level bare path such as `Fetch.body.users` (Rune adds the missing `$`).
fn raw_roots(raw: &Map<String, Value>) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                for r in crate::path::referenced_roots(s) {
                    if !out.contains(&r) {
                        out.push(r);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for v in raw.values() {
        walk(v, &mut out);
        if let Value::String(s) = v {
            let t = s.trim();
            let head: String = t
                .chars()
                .take_while(|c| crate::path::is_root_char(*c))
                .collect();
            if !head.is_empty() && !t.starts_with('$') {
                let root = format!("${head}");
                if !out.contains(&root) {
                    out.push(root);
                }
            }
        }
    }
    out
}

/// A string that will be resolved at run time, so its type is checked then.
fn is_templated(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.contains("{{") || s.contains('$'))
}

/// Kahn's algorithm; on failure returns one cycle (node indexes in order).
fn topo_order(
    n: usize,
    edges: &[Option<(NodeIdx, NodeIdx)>],
) -> Result<Vec<NodeIdx>, Vec<NodeIdx>> {
    let mut indeg = vec![0usize; n];
    let mut adj = vec![Vec::new(); n];
    for (s, d) in edges.iter().flatten() {
        indeg[*d] += 1;
        adj[*s].push(*d);
    }
    let mut q: VecDeque<NodeIdx> = (0..n).filter(|i| indeg[*i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = q.pop_front() {
        order.push(i);
        for &d in &adj[i] {
            indeg[d] -= 1;
            if indeg[d] == 0 {
                q.push_back(d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk predecessors-with-remaining-indegree until a node repeats: that is a cycle.
    let remaining: HashSet<NodeIdx> = (0..n).filter(|i| indeg[*i] > 0).collect();
    let start = *remaining.iter().min().unwrap_or(&0);
    let mut path = vec![start];
    let mut pos: HashMap<NodeIdx, usize> = HashMap::from([(start, 0)]);
    let mut cur = start;
    loop {
        let Some(&next) = adj[cur].iter().filter(|d| remaining.contains(d)).min() else {
            return Err(path);
        };
        if let Some(&p) = pos.get(&next) {
            return Err(path[p..].to_vec());
        }
        pos.insert(next, path.len());
        path.push(next);
        cur = next;
    }
}

/// SHA-256 of the definition's JSON text (first 128 bits, hex).
pub fn content_hash(doc: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(doc.to_string().as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}
