//! The build: indexes nodes and edges, types routes, compiles templates and expressions, and
//! reports every problem found on the way.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use super::ancestry::Ancestry;
use super::checks::{BUILTIN_ROOTS, check_params, raw_roots, topo_order, unknown_braced_roots};
use super::route::case_index;
use super::{CompiledEdge, CompiledNode, CompiledWorkflow, EdgeIdx, NodeIdx, Route};
use crate::expr::Expr;
use crate::model::{ErrorKind, Workflow};
use crate::spec::{NodeCatalog, NodeClass, is_trigger_type};
use crate::template::TemplateSet;
use crate::validate::Problem;

impl CompiledWorkflow {
    pub(super) fn build(
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
        let mut pure: Vec<bool> = Vec::with_capacity(n);
        for (i, node) in def.nodes.iter().enumerate() {
            let spec = catalog.spec(&node.node_type);
            raw_names.push(spec.map(|s| s.raw_params.clone()).unwrap_or_default());
            pure.push(spec.is_some_and(|s| s.pure));
            let trigger = node.trigger || is_trigger_type(&node.node_type);
            if trigger {
                classes.push(None);
                continue;
            }
            match catalog.spec(&node.node_type) {
                Some(spec) => {
                    classes.push(Some(spec.class));
                    check_params(problems, i, &node.parameters, spec, catalog);
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
        // Which outputs each node may read: its ancestors', asked per node below.
        let mut ancestry = Ancestry::new(n, &raw_edges, &order);
        let name_to_idx: HashMap<String, NodeIdx> = def
            .nodes
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("${}", x.name), i))
            .collect();
        let mut strict_roots: HashSet<String> = name_to_idx.keys().cloned().collect();
        strict_roots.insert("$input".into());
        strict_roots.insert("$trigger".into());
        let mut known_roots = strict_roots.clone();
        known_roots.extend(BUILTIN_ROOTS.iter().map(|r| (*r).to_string()));

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
            // Braced templates naming a root that can never be in the context.
            if !is_trigger[i] {
                let mut unknown = Vec::new();
                unknown_braced_roots(
                    &node.parameters,
                    &format!("{base}.parameters"),
                    &known_roots,
                    &mut unknown,
                );
                for (path, root) in unknown {
                    problems.push(Problem::new(
                        path,
                        unknown_root_message(&root, &known_roots),
                    ));
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
                        Ok(x) => {
                            for r in x.references() {
                                if !known_roots.contains(&r.root) {
                                    problems.push(Problem::new(
                                        format!("{base}.parameters.expression"),
                                        unknown_root_message(&r.root, &known_roots),
                                    ));
                                }
                            }
                            condition = Some(x)
                        }
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
                    problems.push(template_problem(&base, &e));
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
            let read_nodes: Vec<(&String, NodeIdx)> = reads
                .iter()
                .filter_map(|root| name_to_idx.get(root).map(|&j| (root, j)))
                .collect();
            let targets: Vec<NodeIdx> = read_nodes.iter().map(|(_, j)| *j).collect();
            let outside = ancestry.not_ancestors(i, &targets);
            for (root, j) in read_nodes.into_iter().filter(|(_, j)| outside.contains(j)) {
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
            let cancel_losers =
                wait_for_any && params.get("cancel_losers").and_then(Value::as_bool) == Some(true);
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
                cancel_losers,
                may_lose: false,
                split_closer: None,
                pure: pure[i],
                reads,
                raw_params,
                status_mode: def.status_mode,
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
        wf.mark_race_losers();
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
}

/// "references `$Nope`, which is no node name nor a built-in root", with a suggestion.
fn unknown_root_message(root: &str, known: &HashSet<String>) -> String {
    let mut message = format!(
        "references `{root}`, which is neither a node name nor one of $input, $trigger, {}",
        BUILTIN_ROOTS.join(", ")
    );
    let mut candidates: Vec<&str> = known.iter().map(String::as_str).collect();
    candidates.sort_unstable();
    if let Some(s) = crate::suggest::closest(root, candidates.into_iter()) {
        message.push_str(&format!("; did you mean `{s}`?"));
    }
    message
}

/// A template that does not compile, at its parameter's path, with the parser's first line.
fn template_problem(base: &str, e: &crate::template::TemplateError) -> Problem {
    use crate::template::TemplateError;
    match e {
        TemplateError::Syntax { field, message } if !field.is_empty() => {
            let first = message.lines().next().unwrap_or_default();
            let path = if field.starts_with('[') {
                format!("{base}.parameters{field}")
            } else {
                format!("{base}.parameters.{field}")
            };
            Problem::new(path, format!("template does not parse: {first}"))
        }
        other => Problem::new(format!("{base}.parameters"), other.to_string()),
    }
}
