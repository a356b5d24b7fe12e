//! Templated parameters, compiled once per workflow definition.
//!
//! Three forms are accepted (see `rfcs/0002-templates.md`):
//! - handlebars: `"https://api/x/{{$input.user.id}}"` (no HTML escaping, strict mode);
//! - a whole value: `"{{ $Fetch.body.users }}"` or Rune's bare `"$Fetch.body.users"` yields the
//!   raw JSON value, type preserved;
//! - Rune's bare references inside text: `"/users/$item.id"`, interpolated when the root is a
//!   context key, left as written otherwise (so `"$5 off"` stays text).

use std::borrow::Cow;
use std::collections::HashSet;

use handlebars::Handlebars;
use serde_json::{Map, Value};

use crate::path::{self, Reference};
use crate::value::to_text;

/// A resolution failure. `field` is the parameter path (e.g. `url`, `headers.Authorization`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("missing reference `{reference}` in parameter `{field}`")]
    MissingReference { field: String, reference: String },
    #[error("template in parameter `{field}` failed: {message}")]
    Render { field: String, message: String },
    #[error("template in parameter `{field}` does not parse: {message}")]
    Syntax { field: String, message: String },
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Ref {
        reference: Reference,
        raw: String,
        strict: bool,
    },
    /// A handlebars chunk of a string that also has bare references outside its braces.
    Handlebars {
        name: String,
    },
}

#[derive(Debug, Clone)]
enum Node {
    Literal(Value),
    /// `strict`: a missing root is an error (the root is a node name or execution input);
    /// otherwise a missing root leaves the text as written.
    Whole {
        reference: Reference,
        raw: String,
        strict: bool,
    },
    Interpolated(Vec<Piece>),
    Handlebars {
        name: String,
    },
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// The compiled templates of one workflow: a handlebars registry shared by all its nodes.
pub struct TemplateSet {
    registry: Handlebars<'static>,
    next_id: usize,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSet")
            .field("templates", &self.next_id)
            .finish()
    }
}

handlebars::handlebars_helper!(json_helper: |v: Json| v.to_string());

impl Default for TemplateSet {
    fn default() -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("json", Box::new(json_helper));
        Self {
            registry,
            next_id: 0,
        }
    }
}

/// A compiled parameter tree and the context roots it may read.
#[derive(Debug, Clone)]
pub struct CompiledTemplate {
    root: Node,
    roots: Vec<String>,
}

impl TemplateSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles a parameter value. `strict_roots` are the context keys whose absence is an
    /// error for bare references (node names, `$input`, `$trigger`).
    pub fn compile(
        &mut self,
        value: &Value,
        strict_roots: &HashSet<String>,
    ) -> Result<CompiledTemplate, TemplateError> {
        let mut roots = Vec::new();
        let root = self.compile_node(value, "", strict_roots, &mut roots)?;
        Ok(CompiledTemplate { root, roots })
    }

    fn compile_node(
        &mut self,
        value: &Value,
        field: &str,
        strict_roots: &HashSet<String>,
        roots: &mut Vec<String>,
    ) -> Result<Node, TemplateError> {
        Ok(match value {
            Value::String(s) => self.compile_string(s, field, strict_roots, roots)?,
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.compile_node(
                        item,
                        &join(field, &i.to_string()),
                        strict_roots,
                        roots,
                    )?);
                }
                if out.iter().all(|n| matches!(n, Node::Literal(_))) {
                    Node::Literal(value.clone())
                } else {
                    Node::Array(out)
                }
            }
            Value::Object(map) => {
                let mut out = Vec::with_capacity(map.len());
                for (k, v) in map {
                    out.push((
                        k.clone(),
                        self.compile_node(v, &join(field, k), strict_roots, roots)?,
                    ));
                }
                if out.iter().all(|(_, n)| matches!(n, Node::Literal(_))) {
                    Node::Literal(value.clone())
                } else {
                    Node::Object(out)
                }
            }
            other => Node::Literal(other.clone()),
        })
    }

    fn compile_string(
        &mut self,
        s: &str,
        field: &str,
        strict_roots: &HashSet<String>,
        roots: &mut Vec<String>,
    ) -> Result<Node, TemplateError> {
        for r in path::referenced_roots(s) {
            if !roots.contains(&r) {
                roots.push(r);
            }
        }
        if s.contains("{{") {
            if let Some(inner) = whole_braces(s)
                && let Some(reference) = path::parse_handlebars_path(inner)
            {
                return Ok(Node::Whole {
                    reference,
                    raw: s.to_string(),
                    strict: true,
                });
            }
            let parts = split_bare_outside_braces(s);
            if parts.iter().all(|p| matches!(p, Part::Text(_))) {
                return Ok(Node::Handlebars {
                    name: self.register(s, field)?,
                });
            }
            // Bare references outside the braces (`"{{$input.base}}/users/$item.id"`) follow the
            // bare rules; each chunk between them is its own handlebars template.
            let mut pieces = Vec::with_capacity(parts.len());
            for part in parts {
                pieces.push(match part {
                    Part::Text(t) if t.contains("{{") => Piece::Handlebars {
                        name: self.register(&t, field)?,
                    },
                    Part::Text(t) => Piece::Text(t),
                    Part::Ref(reference, raw) => {
                        let strict = strict_roots.contains(&reference.root);
                        Piece::Ref {
                            reference,
                            raw,
                            strict,
                        }
                    }
                });
            }
            return Ok(Node::Interpolated(pieces));
        }
        if !s.contains('$') {
            return Ok(Node::Literal(Value::String(s.to_string())));
        }
        if let Some(reference) = path::parse_bare_whole(s) {
            let strict = strict_roots.contains(&reference.root);
            return Ok(Node::Whole {
                reference,
                raw: s.to_string(),
                strict,
            });
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < s.len() {
            let rest = &s[i..];
            let Some(pos) = rest.find('$') else {
                text.push_str(rest);
                break;
            };
            text.push_str(&rest[..pos]);
            let at = i + pos;
            match path::parse_bare_at(s, at) {
                Some((reference, end)) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    let strict = strict_roots.contains(&reference.root);
                    pieces.push(Piece::Ref {
                        reference,
                        raw: s[at..end].to_string(),
                        strict,
                    });
                    i = end;
                }
                None => {
                    text.push('$');
                    i = at + 1;
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Node::Interpolated(pieces))
    }
}

impl TemplateSet {
    fn register(&mut self, source: &str, field: &str) -> Result<String, TemplateError> {
        let name = format!("t{}", self.next_id);
        self.next_id += 1;
        self.registry
            .register_template_string(&name, segment_literals(source))
            .map_err(|e| TemplateError::Syntax {
                field: field.to_string(),
                message: e.to_string(),
            })?;
        Ok(name)
    }
}

enum Part {
    Text(String),
    Ref(Reference, String),
}

/// Splits a handlebars string at the bare references that stand outside any `{{ }}` and outside
/// any block (`{{#if}}…{{/if}}`, raw blocks), so every text part is a complete template.
fn split_bare_outside_braces(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if let Some(after_open) = rest.strip_prefix("{{") {
            let raw_block = rest.starts_with("{{{{");
            let body = rest.trim_start_matches('{').trim_start_matches('~');
            let close = if raw_block {
                "}}}}"
            } else if body.starts_with("!--") {
                "--}}"
            } else {
                "}}"
            };
            let end = after_open
                .find(close)
                .map_or(rest.len(), |p| 2 + p + close.len());
            if body.starts_with('/') {
                depth = depth.saturating_sub(1);
            } else if raw_block
                || body.starts_with('#')
                || body
                    .strip_prefix('^')
                    .is_some_and(|b| !b.trim_start().starts_with(['~', '}']))
            {
                depth += 1;
            }
            text.push_str(&rest[..end]);
            i += end;
            continue;
        }
        if depth == 0
            && rest.starts_with('$')
            && let Some((reference, end)) = path::parse_bare_at(s, i)
        {
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Ref(reference, s[i..end].to_string()));
            i = end;
            continue;
        }
        let ch = rest.chars().next().unwrap_or(' ');
        text.push(ch);
        i += ch.len_utf8();
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    parts
}

/// Rewrites Baton's `$[Name with spaces]` into handlebars' segment literal `[$Name with spaces]`
/// inside `{{ }}`, so both spellings work.
fn segment_literals(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut inside = false;
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            inside = true;
            out.push_str("{{");
            rest = &rest[2..];
        } else if rest.starts_with("}}") {
            inside = false;
            out.push_str("}}");
            rest = &rest[2..];
        } else if inside && rest.starts_with("$[") {
            match rest[2..].find(']') {
                Some(close) => {
                    out.push_str("[$");
                    out.push_str(&rest[2..2 + close]);
                    out.push(']');
                    rest = &rest[3 + close..];
                }
                None => {
                    out.push_str(rest);
                    rest = "";
                }
            }
        } else {
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

fn whole_braces(s: &str) -> Option<&str> {
    let inner = s
        .strip_prefix("{{{")
        .and_then(|r| r.strip_suffix("}}}"))
        .or_else(|| s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")))?;
    if inner.contains("{{") || inner.contains("}}") {
        return None;
    }
    Some(inner)
}

fn join(field: &str, seg: &str) -> String {
    if field.is_empty() {
        seg.to_string()
    } else {
        format!("{field}.{seg}")
    }
}

impl CompiledTemplate {
    /// Context keys (`$name`) this template may read: a hop fetches only these.
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// Whether the value contains no template at all.
    pub fn is_literal(&self) -> bool {
        matches!(self.root, Node::Literal(_))
    }

    /// Resolves against the context. `field_prefix` names the parameter tree in errors.
    pub fn resolve(
        &self,
        set: &TemplateSet,
        ctx: &Map<String, Value>,
        field_prefix: &str,
    ) -> Result<Value, TemplateError> {
        resolve_node(&self.root, set, ctx, field_prefix)
    }

    /// Like [`resolve`](Self::resolve), borrowing the value when it holds no template at all:
    /// a literal parameter tree is not copied on every run.
    pub fn resolve_cow(
        &self,
        set: &TemplateSet,
        ctx: &Map<String, Value>,
        field_prefix: &str,
    ) -> Result<Cow<'_, Value>, TemplateError> {
        match &self.root {
            Node::Literal(v) => Ok(Cow::Borrowed(v)),
            node => resolve_node(node, set, ctx, field_prefix).map(Cow::Owned),
        }
    }
}

fn resolve_node(
    node: &Node,
    set: &TemplateSet,
    ctx: &Map<String, Value>,
    field: &str,
) -> Result<Value, TemplateError> {
    match node {
        Node::Literal(v) => Ok(v.clone()),
        Node::Whole {
            reference,
            raw,
            strict,
        } => match ctx.get(&reference.root) {
            Some(root) => reference
                .lookup(root)
                .cloned()
                .ok_or_else(|| missing(field, raw)),
            None if *strict => Err(missing(field, raw)),
            None => Ok(Value::String(raw.clone())),
        },
        Node::Interpolated(pieces) => {
            let mut out = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Ref {
                        reference,
                        raw,
                        strict,
                    } => match ctx.get(&reference.root) {
                        Some(root) => {
                            let v = reference.lookup(root).ok_or_else(|| missing(field, raw))?;
                            out.push_str(&to_text(v));
                        }
                        None if *strict => return Err(missing(field, raw)),
                        None => out.push_str(raw),
                    },
                    Piece::Handlebars { name } => out.push_str(&render(set, name, ctx, field)?),
                }
            }
            Ok(Value::String(out))
        }
        Node::Handlebars { name } => render(set, name, ctx, field).map(Value::String),
        Node::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| resolve_node(n, set, ctx, &join(field, &i.to_string())))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Node::Object(entries) => {
            let mut out = Map::with_capacity(entries.len());
            for (k, n) in entries {
                out.insert(k.clone(), resolve_node(n, set, ctx, &join(field, k))?);
            }
            Ok(Value::Object(out))
        }
    }
}

fn render(
    set: &TemplateSet,
    name: &str,
    ctx: &Map<String, Value>,
    field: &str,
) -> Result<String, TemplateError> {
    set.registry.render(name, ctx).map_err(|e| {
        let message = match e.reason() {
            handlebars::RenderErrorReason::MissingVariable(Some(var)) => {
                return missing(field, &format!("{{{{{var}}}}}"));
            }
            _ => e.to_string(),
        };
        TemplateError::Render {
            field: field.to_string(),
            message,
        }
    })
}

fn missing(field: &str, reference: &str) -> TemplateError {
    TemplateError::MissingReference {
        field: field.to_string(),
        reference: reference.to_string(),
    }
}

#[cfg(test)]
mod tests;
