//! Context references: `$root.path[0]` (Rune's bare form), `$[Name with spaces].x`, and the
//! path inside handlebars braces (`$input.user.id`, `[$Branch A].status`, `$list.0`).
//!
//! A reference names a context key (`$` + root) and a path into its JSON value.

use serde_json::Value;
use std::fmt;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A parsed reference into the execution context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The context key, including its leading `$` (e.g. `$Fetch`).
    pub root: String,
    pub path: Vec<Segment>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = &self.root[1..];
        if !bare.is_empty() && bare.chars().all(is_root_char) {
            write!(f, "{}", self.root)?;
        } else {
            write!(f, "$[{bare}]")?;
        }
        for seg in &self.path {
            match seg {
                Segment::Key(k) if !k.is_empty() && k.chars().all(is_field_char) => {
                    write!(f, ".{k}")?
                }
                Segment::Key(k) => write!(f, ".[{k}]")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

pub fn is_root_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

pub fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$'
}

impl Reference {
    /// Follows the path inside `root_value`. A key segment that is a number also indexes arrays.
    pub fn lookup<'v>(&self, root_value: &'v Value) -> Option<&'v Value> {
        let mut cur = root_value;
        for seg in &self.path {
            cur = match (seg, cur) {
                (Segment::Key(k), Value::Object(m)) => m.get(k)?,
                (Segment::Key(k), Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
                (Segment::Index(i), Value::Array(a)) => a.get(*i)?,
                (Segment::Index(i), Value::Object(m)) => m.get(&i.to_string())?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Resolves against a context map (keys are `$name`).
    pub fn resolve<'v>(&self, ctx: &'v serde_json::Map<String, Value>) -> Option<&'v Value> {
        self.lookup(ctx.get(&self.root)?)
    }
}

/// Parses a bare reference starting at byte `start` of `s` (which must be a `$`).
/// Returns the reference and the byte index just after it. A trailing `.` not followed by a
/// field character ends the reference, so `"Hi $u.name."` keeps its full stop.
pub fn parse_bare_at(s: &str, start: usize) -> Option<(Reference, usize)> {
    let bytes = s.as_bytes();
    if bytes.get(start) != Some(&b'$') {
        return None;
    }
    let mut i = start + 1;
    let root;
    if bytes.get(i) == Some(&b'[') {
        let close = s[i + 1..].find(']')? + i + 1;
        root = s[i + 1..close].to_string();
        if root.is_empty() {
            return None;
        }
        i = close + 1;
    } else {
        let len = s[i..]
            .chars()
            .take_while(|c| is_root_char(*c))
            .map(char::len_utf8)
            .sum::<usize>();
        if len == 0 {
            return None;
        }
        root = s[i..i + len].to_string();
        i += len;
    }
    let mut path = Vec::new();
    loop {
        match bytes.get(i) {
            Some(b'.') => {
                if bytes.get(i + 1) == Some(&b'[') {
                    let Some(close) = s[i + 2..].find(']') else {
                        break;
                    };
                    path.push(Segment::Key(s[i + 2..i + 2 + close].to_string()));
                    i += close + 3;
                    continue;
                }
                let len = s[i + 1..]
                    .chars()
                    .take_while(|c| is_field_char(*c))
                    .map(char::len_utf8)
                    .sum::<usize>();
                if len == 0 {
                    break;
                }
                path.push(Segment::Key(s[i + 1..i + 1 + len].to_string()));
                i += 1 + len;
            }
            Some(b'[') => {
                let Some(close) = s[i + 1..].find(']') else {
                    break;
                };
                let inner = &s[i + 1..i + 1 + close];
                if let Ok(n) = inner.parse::<usize>() {
                    path.push(Segment::Index(n));
                } else if let Some(q) = strip_quotes(inner) {
                    path.push(Segment::Key(q.to_string()));
                } else {
                    break;
                }
                i += close + 2;
            }
            _ => break,
        }
    }
    Some((
        Reference {
            root: format!("${root}"),
            path,
        },
        i,
    ))
}

/// Parses `s` as exactly one bare reference (the whole string).
pub fn parse_bare_whole(s: &str) -> Option<Reference> {
    let (r, end) = parse_bare_at(s, 0)?;
    (end == s.len()).then_some(r)
}

fn strip_quotes(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() >= 2
        && ((b[0] == b'"' && b[b.len() - 1] == b'"') || (b[0] == b'\'' && b[b.len() - 1] == b'\''))
    {
        Some(&s[1..s.len() - 1])
    } else {
        None
    }
}

/// Parses a handlebars path expression (the inside of `{{ }}`) that starts at a context key:
/// `$input.user.id`, `[$Branch A].x`, `$list.0`, `$list.[0]`, `$[Branch A].x`.
pub fn parse_handlebars_path(s: &str) -> Option<Reference> {
    let s = s.trim();
    if s.starts_with('$') {
        return parse_bare_whole(s);
    }
    // `[$Branch A].rest`: handlebars' segment-literal form of a root with spaces.
    let rest = s.strip_prefix("[$")?;
    let close = rest.find(']')?;
    let root = &rest[..close];
    let tail = &rest[close + 1..];
    let parsed = parse_bare_whole(&format!("$[{root}]{tail}"))?;
    Some(parsed)
}

/// Every context root (`$name`) referenced in `s`, bare or inside braces. A superset is fine:
/// it decides which context keys a hop fetches.
pub fn referenced_roots(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = s[i..].find('$') {
        let at = i + pos;
        if let Some((r, end)) = parse_bare_at(s, at) {
            if !out.contains(&r.root) {
                out.push(r.root);
            }
            i = end;
        } else {
            i = at + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_reference_with_fields_and_indexes() {
        let r = parse_bare_whole("$Fetch.body.users[0].name").unwrap();
        assert_eq!(r.root, "$Fetch");
        assert_eq!(r.path.len(), 4);
        assert_eq!(r.to_string(), "$Fetch.body.users[0].name");
    }

    #[test]
    fn trailing_full_stop_is_not_part_of_the_reference() {
        let (r, end) = parse_bare_at("$u.name.", 0).unwrap();
        assert_eq!(r.to_string(), "$u.name");
        assert_eq!(end, 7);
    }

    #[test]
    fn names_with_spaces_use_segment_literals() {
        let r = parse_bare_whole("$[Branch A].status").unwrap();
        assert_eq!(r.root, "$Branch A");
        let h = parse_handlebars_path("[$Branch A].status").unwrap();
        assert_eq!(r, h);
        let ctx = json!({"$Branch A": {"status": 3}});
        assert_eq!(r.resolve(ctx.as_object().unwrap()), Some(&json!(3)));
    }

    #[test]
    fn numeric_key_segments_index_arrays() {
        let r = parse_handlebars_path("$list.1").unwrap();
        assert_eq!(r.lookup(&json!([5, 6])), Some(&json!(6)));
        let r = parse_handlebars_path("$list.[0]").unwrap();
        assert_eq!(r.lookup(&json!([5, 6])), Some(&json!(5)));
    }

    #[test]
    fn roots_are_collected_once() {
        assert_eq!(referenced_roots("{{$a.x}} and $b and $a"), vec!["$a", "$b"]);
        assert_eq!(referenced_roots("costs $5"), vec!["$5"]);
    }
}
