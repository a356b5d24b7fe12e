//! W3C trace context (`traceparent`) carried from hop to hop: one trace per execution, a new
//! span id per hop message.

fn hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A new root `traceparent`.
pub fn new_root() -> String {
    format!("00-{}-{}-01", hex(16), hex(8))
}

/// A child of `parent` (same trace id, new span id), or a new root if `parent` is not valid.
pub fn child_of(parent: Option<&str>) -> String {
    match parent.map(|p| p.split('-').collect::<Vec<_>>()) {
        Some(parts) if parts.len() == 4 && parts[1].len() == 32 && parts[2].len() == 16 => {
            format!("00-{}-{}-{}", parts[1], hex(8), parts[3])
        }
        _ => new_root(),
    }
}

/// The trace id of a `traceparent`, for log fields.
pub fn trace_id(traceparent: Option<&str>) -> &str {
    traceparent.and_then(|t| t.split('-').nth(1)).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_keep_the_trace_id_and_get_a_new_span() {
        let root = new_root();
        let child = child_of(Some(&root));
        assert_eq!(trace_id(Some(&root)), trace_id(Some(&child)));
        assert_ne!(root, child);
        assert_eq!(child.len(), 55);
    }
}
