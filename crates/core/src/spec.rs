//! Node type declarations: what each node type accepts (its parameter schema) and how the
//! engine routes it (its class). Validation and `baton nodes` read these; the runtime
//! implementations live in `baton-nodes`.

use serde::Serialize;
use serde_json::Value;

/// How the engine treats a node's outcome when routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeClass {
    /// Runs and follows its success edges.
    Action,
    /// Output `{result: bool}` selects the `true` or `false` edge.
    Conditional,
    /// Output `{output_index}` selects one route; the last route is the fallback.
    Switch,
    /// A join over its incoming edges (`wait_for_all` / `wait_for_any`).
    Merge,
    /// Output `{_split_items: [...]}` fans out one branch per item.
    Split,
    /// Collects the items of the innermost enclosing split, in item order.
    Aggregator,
    /// Output `{delay_ms}` suspends the branch durably.
    Wait,
}

/// The JSON type a parameter must have once resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
    /// A string or an array of strings (e.g. mail recipients).
    StringOrArray,
    /// One of the listed strings.
    Enum(Vec<&'static str>),
    Any,
}

impl ParamKind {
    /// Whether a literal (non-template) value has this kind.
    pub fn accepts(&self, v: &Value) -> bool {
        match self {
            ParamKind::String => v.is_string(),
            ParamKind::Number => v.is_number(),
            ParamKind::Integer => {
                v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            ParamKind::Boolean => v.is_boolean(),
            ParamKind::Object => v.is_object(),
            ParamKind::Array => v.is_array(),
            ParamKind::StringOrArray => {
                v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            }
            ParamKind::Enum(options) => v.as_str().is_some_and(|s| options.contains(&s)),
            ParamKind::Any => true,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ParamKind::String => "a string".into(),
            ParamKind::Number => "a number".into(),
            ParamKind::Integer => "an integer".into(),
            ParamKind::Boolean => "a boolean".into(),
            ParamKind::Object => "an object".into(),
            ParamKind::Array => "an array".into(),
            ParamKind::StringOrArray => "a string or an array of strings".into(),
            ParamKind::Enum(o) => format!("one of {}", o.join(", ")),
            ParamKind::Any => "any value".into(),
        }
    }
}

/// One parameter of a node type.
#[derive(Debug, Clone, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub required: bool,
    pub doc: &'static str,
    /// The value used when the parameter is absent, as it would be written in JSON; `None`
    /// when there is none or the doc explains it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<&'static str>,
    /// The smallest literal number accepted (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest literal number accepted (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A literal string must not be blank, an array or object must not be empty.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub non_empty: bool,
}

impl ParamSpec {
    pub fn required(name: &'static str, kind: ParamKind, doc: &'static str) -> Self {
        Self {
            name,
            kind,
            required: true,
            doc,
            default: None,
            min: None,
            max: None,
            non_empty: false,
        }
    }
    pub fn optional(name: &'static str, kind: ParamKind, doc: &'static str) -> Self {
        Self {
            name,
            kind,
            required: false,
            doc,
            default: None,
            min: None,
            max: None,
            non_empty: false,
        }
    }
    /// Declares the value used when the parameter is absent (JSON text, e.g. `"30"`).
    pub fn with_default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }
    /// Literal numbers must be at least `min`.
    pub fn min(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }
    /// Literal numbers must lie in `min..=max`.
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    /// A literal string must not be blank, an array or object not empty.
    pub fn non_empty(mut self) -> Self {
        self.non_empty = true;
        self
    }

    /// The constraint problems of a literal value that has the right kind: range and
    /// emptiness. `None` when it is fine.
    pub fn constraint_problem(&self, v: &Value) -> Option<String> {
        if let Some(n) = v.as_f64() {
            match (self.min, self.max) {
                (Some(lo), Some(hi)) if n < lo || n > hi => {
                    return Some(format!("must be between {lo} and {hi}, found {n}"));
                }
                (Some(lo), None) if n < lo => return Some(format!("must be >= {lo}, found {n}")),
                (None, Some(hi)) if n > hi => return Some(format!("must be <= {hi}, found {n}")),
                _ => {}
            }
        }
        if self.non_empty {
            let empty = match v {
                Value::String(s) => s.trim().is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            };
            if empty {
                return Some("must not be empty".into());
            }
        }
        None
    }
}

/// The declaration of a node type.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSpec {
    pub type_name: &'static str,
    /// Other accepted type names (Rune's spellings).
    pub aliases: Vec<&'static str>,
    pub class: NodeClass,
    pub summary: &'static str,
    pub params: Vec<ParamSpec>,
    /// A sentence or JSON sketch of the node's output.
    pub output: &'static str,
    /// Parameters the engine passes to the node unresolved (their `{{ }}` and `$references`
    /// are evaluated by the node itself, e.g. per array item). The context keys they mention
    /// are still read for the hop and handed to the node as `NodeInput::context`.
    pub raw_params: Vec<&'static str>,
    /// A short example of the node's `parameters` object (JSON text), shown by `baton nodes`
    /// and in `docs/nodes.md`.
    pub example: &'static str,
    /// Running the node has no effect outside the engine (it only computes its output from its
    /// parameters, context and clock): running it twice is harmless, so its hops need no claim
    /// and, without reads, no round trip before the run (RFC 0011, "one round trip"). False for
    /// anything that calls out, waits, or starts work elsewhere.
    pub pure: bool,
}

/// Looks node types up by name or alias. Implemented by the node registry.
pub trait NodeCatalog {
    fn spec(&self, type_name: &str) -> Option<&NodeSpec>;

    /// Every node type once, in a stable order (for the JSON Schema). Default: none.
    fn specs(&self) -> Vec<&NodeSpec> {
        Vec::new()
    }

    /// The checks a node type makes on its literal parameters beyond its [`ParamSpec`]s
    /// (HTTP methods, time zones, operators, scripts compiled...). Paths are relative to
    /// `parameters` (e.g. `method`, `rules[0].operator`). Default: none.
    fn check_params(&self, _type_name: &str, _params: &Value) -> Vec<crate::validate::Problem> {
        Vec::new()
    }
}

/// Trigger node types: accepted in definitions, never executed.
pub const TRIGGER_TYPES: &[&str] = &[
    "ManualTrigger",
    "ScheduledTrigger",
    "webhook",
    "manual_trigger",
    "scheduled_trigger",
    "trigger",
];

pub fn is_trigger_type(t: &str) -> bool {
    TRIGGER_TYPES.contains(&t)
}
