//! Limits checked before anything costly happens to a definition or a message: a definition's
//! size, node and edge counts (before compiling), a split's item count, the nesting of split
//! lineage, and the short text of every reason a message is refused with.

use serde_json::Value;

use crate::validate::Problem;

/// Default `BATON_MAX_DEFINITION_BYTES`: the master's request body limit.
pub const DEFAULT_MAX_DEFINITION_BYTES: usize = 2 * 1024 * 1024;
/// Default `BATON_MAX_NODES`.
pub const DEFAULT_MAX_NODES: usize = 10_000;
/// Default `BATON_MAX_EDGES`.
pub const DEFAULT_MAX_EDGES: usize = 50_000;
/// Default `BATON_MAX_SPLIT_ITEMS` (a node's `max_items` may only lower it).
pub const DEFAULT_MAX_SPLIT_ITEMS: usize = 10_000;
/// Splits nested deeper than this in one message's lineage are poison: no definition within
/// the node limit nests splits this deep in practice, and each level costs every hop.
pub const MAX_LINEAGE_DEPTH: usize = 64;
/// Every dead-letter reason and header value is cut to this many bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// How large a definition may be before it is compiled. Set per process (`BATON_MAX_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefinitionLimits {
    pub max_bytes: usize,
    pub max_nodes: usize,
    pub max_edges: usize,
}

impl Default for DefinitionLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_DEFINITION_BYTES,
            max_nodes: DEFAULT_MAX_NODES,
            max_edges: DEFAULT_MAX_EDGES,
        }
    }
}

impl DefinitionLimits {
    /// The limits `doc` exceeds, each naming the limit, the value and the setting. Counting is
    /// linear and allocates nothing but the answer.
    pub fn check(&self, doc: &Value) -> Vec<Problem> {
        let mut over = Vec::new();
        let bytes = json_len(doc);
        if bytes > self.max_bytes {
            over.push(Problem::new(
                "$",
                format!(
                    "definition is {bytes} bytes, over the limit of {} bytes (setting BATON_MAX_DEFINITION_BYTES)",
                    self.max_bytes
                ),
            ));
        }
        let count = |field: &str| doc.get(field).and_then(Value::as_array).map_or(0, Vec::len);
        let nodes = count("nodes");
        if nodes > self.max_nodes {
            over.push(Problem::new(
                "$.nodes",
                format!(
                    "definition has {nodes} nodes, over the limit of {} nodes (setting BATON_MAX_NODES)",
                    self.max_nodes
                ),
            ));
        }
        let edges = count("edges");
        if edges > self.max_edges {
            over.push(Problem::new(
                "$.edges",
                format!(
                    "definition has {edges} edges, over the limit of {} edges (setting BATON_MAX_EDGES)",
                    self.max_edges
                ),
            ));
        }
        over
    }
}

/// The length of `v`'s compact JSON text, without building it.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

/// `text` cut to at most `max` bytes on a char boundary, with a marker saying how much was
/// cut. Reasons quote what they refuse; a quoted 200 KB field must not become a 200 KB header.
pub fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let marker = format!("… [{} bytes cut]", text.len());
    let mut end = max.saturating_sub(marker.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{marker}", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_definition_over_each_limit_names_the_limit_the_value_and_the_setting() {
        let limits = DefinitionLimits {
            max_bytes: 100,
            max_nodes: 2,
            max_edges: 1,
        };
        let doc = json!({"nodes": [{}, {}, {}], "edges": [{}, {}], "pad": "x".repeat(200)});
        let over: Vec<String> = limits.check(&doc).into_iter().map(|p| p.message).collect();
        assert_eq!(over.len(), 3, "{over:?}");
        assert!(
            over[0].contains("over the limit of 100 bytes")
                && over[0].contains("BATON_MAX_DEFINITION_BYTES")
        );
        assert!(
            over[1].contains("3 nodes, over the limit of 2") && over[1].contains("BATON_MAX_NODES")
        );
        assert!(
            over[2].contains("2 edges, over the limit of 1") && over[2].contains("BATON_MAX_EDGES")
        );
        assert!(DefinitionLimits::default().check(&doc).is_empty());
    }

    #[test]
    fn json_len_is_the_compact_text_length() {
        let doc = json!({"a": [1, "é", null], "b": {"c": true}});
        assert_eq!(json_len(&doc), doc.to_string().len());
    }

    #[test]
    fn a_long_reason_is_cut_on_a_char_boundary_with_a_marker() {
        let field = "é".repeat(100_000); // 200 KB, two bytes per char
        let reason = bounded(&format!("invalid value `{field}`"), MAX_REASON_BYTES).into_owned();
        assert!(reason.len() <= MAX_REASON_BYTES, "{}", reason.len());
        assert!(reason.ends_with("bytes cut]"));
        assert!(reason.starts_with("invalid value `éé"));
        assert_eq!(bounded("short", MAX_REASON_BYTES), "short");
    }
}
