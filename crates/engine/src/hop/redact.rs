//! Redaction: the values of the credentials a node used are replaced by [`REDACTED`] in what
//! the node returns — its output (nested JSON, keys included), its error message — before the
//! engine stores, routes, reports or records any of it. So an endpoint that echoes its request
//! (`Authorization: Bearer <secret>`) cannot carry the secret into statuses, the context, the
//! completion, the master's history or the API.
//!
//! Secret values are the credential's string (and number) fields of at least
//! [`MIN_SECRET_LEN`] characters, except the fields that only describe it (`type`, `host`,
//! `port`, header names); plus the `Basic` form of a username/password pair, which a server
//! may echo instead of the password itself.

use base64_lite::encode as base64;
use serde_json::{Map, Value};

use crate::node::{NodeError, NodeOutput};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";
/// Shorter values are not scanned for (they would redact ordinary words).
pub const MIN_SECRET_LEN: usize = 4;
/// Credential fields that describe a credential rather than hold its secret.
const DESCRIPTIVE_FIELDS: &[&str] = &[
    "type",
    "host",
    "port",
    "field",
    "key",
    "token_type",
    "security",
    "tls",
];

/// The secret strings of one run's credentials, longest first (so a secret that contains
/// another is replaced whole).
#[derive(Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// The secrets of `credentials` (revealed or inline).
    pub fn new(credentials: Option<&Map<String, Value>>) -> Self {
        let mut secrets = Vec::new();
        if let Some(creds) = credentials {
            collect(creds, &mut secrets);
            let text = |k: &str| {
                creds
                    .get(k)
                    .or_else(|| creds.get("values").and_then(|v| v.get(k)))
                    .and_then(scalar)
            };
            if let (Some(user), Some(password)) = (text("username"), text("password")) {
                secrets.push(base64(format!("{user}:{password}").as_bytes()));
            }
        }
        secrets.retain(|s| s.chars().count() >= MIN_SECRET_LEN);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// Redacts every string and key of `value` in place.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if self.secrets.iter().any(|x| s.contains(x.as_str())) {
                    *s = self.text(s);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                let taken = std::mem::take(map);
                for (k, mut v) in taken {
                    self.value(&mut v);
                    map.insert(self.text(&k), v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A node's result with every secret replaced.
    pub fn result(&self, result: Result<NodeOutput, NodeError>) -> Result<NodeOutput, NodeError> {
        if self.is_empty() {
            return result;
        }
        match result {
            Ok(output) => Ok(self.output(output)),
            Err(mut e) => {
                e.message = self.text(&e.message);
                Err(e)
            }
        }
    }

    fn output(&self, output: NodeOutput) -> NodeOutput {
        let v = |mut value: Value| {
            self.value(&mut value);
            value
        };
        match output {
            NodeOutput::Value(value) => NodeOutput::Value(v(value)),
            NodeOutput::Shaped { output, json } => NodeOutput::Shaped {
                output: v(output),
                json: v(json),
            },
            NodeOutput::Split { items } => NodeOutput::Split {
                items: items.into_iter().map(v).collect(),
            },
            NodeOutput::AwaitSignal { name, timeout_ms } => NodeOutput::AwaitSignal {
                name: self.text(&name),
                timeout_ms,
            },
            NodeOutput::StartChild(mut child) => {
                child.input = v(child.input);
                NodeOutput::StartChild(child)
            }
            wait @ NodeOutput::Wait { .. } => wait,
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn collect(map: &Map<String, Value>, out: &mut Vec<String>) {
    for (k, v) in map {
        if DESCRIPTIVE_FIELDS.contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::Object(inner) => collect(inner, out),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(inner) => collect(inner, out),
                        other => out.extend(scalar(other)),
                    }
                }
            }
            other => out.extend(scalar(other)),
        }
    }
}

/// Standard base64 with padding, enough for the `Basic` form (no dependency for 20 lines).
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn creds(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn secrets_are_replaced_in_nested_strings_keys_and_errors() {
        let c = creds(json!({"type": "token", "token": "tok-abcdef"}));
        let r = Redactor::new(Some(&c));
        let mut v = json!({"headers": {"Authorization": "Bearer tok-abcdef"},
                           "list": ["x", "tok-abcdef"], "tok-abcdef": 1, "type": "token"});
        r.value(&mut v);
        assert_eq!(
            v,
            json!({"headers": {"Authorization": "Bearer [REDACTED]"},
                   "list": ["x", "[REDACTED]"], "[REDACTED]": 1, "type": "token"})
        );
        let err = r
            .result(Err(NodeError::invalid("server said tok-abcdef")))
            .unwrap_err();
        assert_eq!(err.message, "server said [REDACTED]");
    }

    #[test]
    fn the_basic_form_of_a_username_and_password_is_redacted_and_short_values_are_not() {
        let c = creds(json!({"type": "basic_auth", "username": "bob", "password": "hunter22"}));
        let r = Redactor::new(Some(&c));
        // base64("bob:hunter22")
        assert_eq!(r.text("Basic Ym9iOmh1bnRlcjIy"), "Basic [REDACTED]");
        assert_eq!(r.text("bob hunter22"), "bob [REDACTED]");
        assert_eq!(base64_lite::encode(b"ab"), "YWI=");
        assert_eq!(base64_lite::encode(b"a"), "YQ==");
    }

    #[test]
    fn descriptive_fields_are_not_secrets() {
        let c = creds(
            json!({"type": "smtp", "host": "mail.example.com", "port": 587,
                             "username": "mailer", "password": "p4ssw0rd"}),
        );
        let r = Redactor::new(Some(&c));
        assert_eq!(
            r.text("mail.example.com:587 mailer p4ssw0rd"),
            "mail.example.com:587 [REDACTED] [REDACTED]"
        );
    }
}
