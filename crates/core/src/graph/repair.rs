//! "All problems in one pass": after shape problems, a repaired copy of the document (bad
//! fields replaced by placeholders or dropped) still goes through the parameter and graph
//! checks, and the problems those placeholders cause are filtered out, so a shape error hides
//! only the part that could not be read.

use serde_json::{Map, Value, json};

/// A repaired document and the paths whose problems are artefacts of the repair.
pub(super) struct Repaired {
    pub doc: Value,
    /// Problems at these exact paths are dropped.
    exact: Vec<String>,
    /// Problems at or under these paths are dropped.
    under: Vec<String>,
}

impl Repaired {
    pub fn hides(&self, path: &str) -> bool {
        self.exact.iter().any(|p| p == path)
            || self.under.iter().any(|p| {
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
    }
}

fn non_empty_str(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

/// Repairs what the shape check rejects; `None` when there is no graph to check (no usable
/// `nodes` array).
pub(super) fn repair(doc: &Value) -> Option<Repaired> {
    let root = doc.as_object()?;
    let nodes = root.get("nodes")?.as_array().filter(|a| !a.is_empty())?;
    let mut r = Repaired {
        doc: Value::Null,
        exact: Vec::new(),
        under: Vec::new(),
    };
    let mut out = Map::new();
    for key in ["name", "on_failure"] {
        if let Some(v) = root.get(key).filter(|v| v.is_string()) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut fixed_nodes = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        let base = format!("$.nodes[{i}]");
        let placeholder = format!("\u{0}node{i}");
        let Some(o) = n.as_object() else {
            r.under.push(base);
            fixed_nodes.push(json!({"id": placeholder, "name": placeholder, "type": ""}));
            continue;
        };
        let mut m = Map::new();
        let mut replaced = false;
        for key in ["id", "name", "type"] {
            let ok = if key == "type" {
                o.get(key).is_some_and(Value::is_string)
            } else {
                non_empty_str(o.get(key))
            };
            if ok {
                m.insert(key.into(), o[key].clone());
            } else {
                replaced = true;
                r.exact.push(format!("{base}.{key}"));
                m.insert(key.into(), Value::String(placeholder.clone()));
            }
        }
        if replaced {
            r.exact.push(base.clone());
        }
        if let Some(v) = o.get("trigger").filter(|v| v.is_boolean()) {
            m.insert("trigger".into(), v.clone());
        }
        match o.get("parameters") {
            Some(v) if v.is_object() => {
                m.insert("parameters".into(), v.clone());
            }
            // Unreadable parameters: their checks (required ones...) would only add noise.
            Some(v) if !v.is_null() => r.under.push(format!("{base}.parameters")),
            _ => {}
        }
        if let Some(v) = o
            .get("timeout_ms")
            .filter(|v| v.as_u64().is_some_and(|n| n > 0))
        {
            m.insert("timeout_ms".into(), v.clone());
        }
        if let Some(c) = o.get("credentials").and_then(Value::as_object) {
            let mut cm = Map::new();
            for (k, v) in c {
                let keep = match k.as_str() {
                    "type" | "id" | "name" => v.is_string(),
                    "values" => v.is_object(),
                    _ => true,
                };
                if keep {
                    cm.insert(k.clone(), v.clone());
                }
            }
            m.insert("credentials".into(), Value::Object(cm));
        }
        if let Some(e) = o.get("error").and_then(Value::as_object) {
            let mut em = Map::new();
            if let Some(v) = e.get("type").filter(|v| {
                v.as_str()
                    .is_some_and(|s| crate::model::ErrorKind::parse(s).is_some())
            }) {
                em.insert("type".into(), v.clone());
            }
            if let Some(v) = e.get("error_edge").filter(|v| v.is_string()) {
                em.insert("error_edge".into(), v.clone());
            }
            m.insert("error".into(), Value::Object(em));
        }
        if let Some(rt) = o.get("retry").and_then(Value::as_object) {
            let mut rm = Map::new();
            for (k, v) in rt {
                let keep = match k.as_str() {
                    "max_attempts" => v.as_u64().is_some_and(|n| n >= 1 && n <= u32::MAX as u64),
                    "initial_delay_ms" | "max_delay_ms" => v.as_u64().is_some(),
                    "multiplier" => v.as_f64().is_some(),
                    "jitter" => v.is_boolean(),
                    _ => false,
                };
                if keep {
                    rm.insert(k.clone(), v.clone());
                }
            }
            m.insert("retry".into(), Value::Object(rm));
        }
        fixed_nodes.push(Value::Object(m));
    }
    out.insert("nodes".into(), Value::Array(fixed_nodes));
    let mut fixed_edges = Vec::new();
    if let Some(edges) = root.get("edges").and_then(Value::as_array) {
        for (i, e) in edges.iter().enumerate() {
            let base = format!("$.edges[{i}]");
            let placeholder = format!("\u{0}edge{i}");
            let Some(o) = e.as_object() else {
                // Kept as a placeholder so the later edges keep their indexes.
                r.under.push(base);
                fixed_edges
                    .push(json!({"id": placeholder, "src": placeholder, "dst": placeholder}));
                continue;
            };
            let mut m = Map::new();
            let mut replaced = false;
            for key in ["id", "src", "dst"] {
                let ok = if key == "id" {
                    non_empty_str(o.get(key))
                } else {
                    o.get(key).is_some_and(Value::is_string)
                };
                if ok {
                    m.insert(key.into(), o[key].clone());
                } else {
                    replaced = true;
                    m.insert(key.into(), Value::String(placeholder.clone()));
                }
            }
            if replaced {
                // An edge that cannot be placed would only add dangling-edge noise.
                r.under.push(base);
            }
            if let Some(v) = o.get("on").filter(|v| v.is_string()) {
                m.insert("on".into(), v.clone());
            }
            fixed_edges.push(Value::Object(m));
        }
    }
    out.insert("edges".into(), Value::Array(fixed_edges));
    r.doc = Value::Object(out);
    Some(r)
}
