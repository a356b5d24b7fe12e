//! Checks the build leans on: parameters against their specs (kinds, ranges, unknown names,
//! the node type's own checks), the context roots braced templates name, the roots raw
//! parameters read, and the topological order (or one cycle).

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use super::NodeIdx;
use crate::validate::Problem;

pub(super) fn check_params(
    problems: &mut Vec<Problem>,
    i: usize,
    params: &Value,
    spec: &crate::spec::NodeSpec,
    catalog: &dyn crate::spec::NodeCatalog,
) {
    let obj = params.as_object();
    let base = format!("$.nodes[{i}].parameters");
    if let Some(o) = obj {
        crate::dsl::unknown_fields(
            problems,
            o,
            &base,
            spec.params.iter().map(|p| p.name),
            &format!("`{}` parameters", spec.type_name),
        );
    }
    for p in catalog.check_params(spec.type_name, params) {
        let path = if p.path.is_empty() {
            base.clone()
        } else if p.path.starts_with('[') {
            format!("{base}{}", p.path)
        } else {
            format!("{base}.{}", p.path)
        };
        problems.push(Problem::new(path, p.message));
    }
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
            Some(v) if !v.is_null() && !is_templated(v) => {
                if let Some(m) = p.constraint_problem(v) {
                    problems.push(Problem::new(path, m));
                }
            }
            _ => {}
        }
    }
}

/// Roots every workflow may read besides its node names, `$input` and `$trigger`: the items of
/// a split or list node, the payload list nodes share, a failure on an error route, and a
/// sub-workflow's parent.
pub(super) const BUILTIN_ROOTS: &[&str] = &["$json", "$item", "$error", "$parent"];

/// Every `$root` named inside `{{ }}` that is neither a node name nor a built-in root: such a
/// template can only fail at run time. Paths are relative to `parameters`.
pub(super) fn unknown_braced_roots(
    value: &Value,
    field: &str,
    known: &HashSet<String>,
    out: &mut Vec<(String, String)>,
) {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(open) = rest.find("{{") {
                let after = &rest[open + 2..];
                let close = after.find("}}").unwrap_or(after.len());
                // Handlebars' segment literal `[$Branch A]` names a root with spaces.
                let mut inner = after[..close].to_string();
                let mut roots = Vec::new();
                while let Some(open) = inner.find("[$") {
                    let Some(len) = inner[open..].find(']') else {
                        break;
                    };
                    roots.push(inner[open + 1..open + len].to_string());
                    inner.replace_range(open..open + len + 1, " ");
                }
                roots.extend(crate::path::referenced_roots(&inner));
                for root in roots {
                    if !known.contains(&root) && !out.iter().any(|(f, r)| f == field && *r == root)
                    {
                        out.push((field.to_string(), root));
                    }
                }
                rest = &after[close.min(after.len())..];
            }
        }
        Value::Array(a) => {
            for (k, v) in a.iter().enumerate() {
                unknown_braced_roots(v, &format!("{field}[{k}]"), known, out);
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                unknown_braced_roots(v, &crate::dsl::field_path(field, k), known, out);
            }
        }
        _ => {}
    }
}

/// The context roots raw parameters mention: every `$root` in their strings, plus the first
/// segment of a top-level bare path such as `Fetch.body.users` (Rune adds the missing `$`).
pub(super) fn raw_roots(raw: &Map<String, Value>) -> Vec<String> {
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
pub(super) fn topo_order(
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
