//! The master's configuration: defaults → TOML file → `BATON_*` environment variables.
//!
//! | field | env | default | meaning |
//! |---|---|---|---|
//! | `master_listen` | `BATON_MASTER_LISTEN` | `127.0.0.1:8080` | HTTP address (API, dashboard, health, metrics) |
//! | `api_tokens` | `BATON_API_TOKENS` | `` | bearer tokens, comma-separated |
//! | `master_insecure_no_auth` | `BATON_MASTER_INSECURE_NO_AUTH` | `false` | serve without auth (dev only) |
//! | `master_key_prefix` | `BATON_MASTER_KEY_PREFIX` | `baton:master:` | Redis key prefix of the master's state |
//! | `master_max_executions` | `BATON_MASTER_MAX_EXECUTIONS` | `10000` | history records kept (oldest dropped) |
//! | `master_retention_secs` | `BATON_MASTER_RETENTION_SECS` | `604800` | a record expires this long after its last write |
//! | `master_header_timeout_ms` | `BATON_MASTER_HEADER_TIMEOUT_MS` | `10000` | a connection that has not sent a whole request head in this time (a new one or an idle keep-alive) is closed |
//! | `master_request_timeout_ms` | `BATON_MASTER_REQUEST_TIMEOUT_MS` | `30000` | a request (body read + handler, not a response stream) taking longer answers 408 |
//! | `master_max_connections` | `BATON_MASTER_MAX_CONNECTIONS` | `1024` | open HTTP connections; beyond, a few reserve slots with a 500 ms header deadline, then new connections are closed at once |
//! | `master_max_body_bytes` | `BATON_MASTER_MAX_BODY_BYTES` | `4194304` | larger request bodies answer 413 |
//! | `master_start_by_reference` | `BATON_MASTER_START_BY_REFERENCE` | `true` | start messages name the definition by its hash (stored once where workers read definitions) instead of carrying it; `false`: Rune's shape, the workflow inline |
//! | `amqp_url` | `BATON_AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ; a comma-separated list for a cluster's nodes (first that answers, the next on a loss) |
//! | `redis_url` | `BATON_REDIS_URL` | `redis://127.0.0.1:6379/` | Redis; a comma-separated list of node URLs is a Redis Cluster |
//! | `redis_cluster` | `BATON_REDIS_CLUSTER` | `false` | treat a single `redis_url` as a cluster seed node |
//! | `redis_buckets` | `BATON_REDIS_BUCKETS` | `16` | hash-tagged buckets the durable timers and, on a cluster, the history's executions and indexes are spread over (same on every process) |
//! | `redis_wait_ms` | `BATON_REDIS_WAIT_MS` | `200` | cluster only: how long a write waits for a replica's acknowledgement (0 = never) |
//! | `queue_type` | `BATON_QUEUE_TYPE` | `classic` | `classic` or `quorum` (as the workers) |
//! | `queue_prefix` | `BATON_QUEUE_PREFIX` | `` | prefix of every queue/exchange name (tests) |
//! | `key_prefix` | `BATON_KEY_PREFIX` | `baton` | the workers' Redis key prefix (catalog, vault) |
//! | `max_definition_bytes` | `BATON_MAX_DEFINITION_BYTES` | `2097152` | larger definitions answer 422, before compiling |
//! | `max_nodes` | `BATON_MAX_NODES` | `10000` | more nodes answer 422, before compiling |
//! | `max_edges` | `BATON_MAX_EDGES` | `50000` | more edges answer 422, before compiling |
//! | `log_format` | `BATON_LOG_FORMAT` | `json` | `json` or `human` |
//! | `credentials_key` | `BATON_CREDENTIALS_KEY` | none | base64 of 32 bytes; seals credentials and webhook secrets; without it `/credentials` and enabling a signed webhook answer 503 |
//!
//! The other roles' `BATON_*` variables (the workers', the CLI's) are ignored so one
//! environment serves all; a name no role knows is refused, naming the closest known one. Every
//! field is an entry of `baton_settings::registry::VARIABLES` (a test fails otherwise), which
//! renders `docs/config.md`. The fields the workers share (`amqp_url`, `redis_url`, `queue_type`, `queue_prefix`,
//! `key_prefix`) are [`ConnectionSettings`], flattened in.

use std::net::SocketAddr;

use baton_settings::ConnectionSettings;
pub use baton_settings::SettingsError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MasterSettings {
    pub master_listen: String,
    pub api_tokens: String,
    pub master_insecure_no_auth: bool,
    pub master_key_prefix: String,
    pub master_max_executions: u64,
    pub master_retention_secs: u64,
    /// HTTP server limits ([`crate::server::HttpLimits`]).
    pub master_header_timeout_ms: u64,
    pub master_request_timeout_ms: u64,
    pub master_max_connections: usize,
    pub master_max_body_bytes: usize,
    /// Starts by reference (RFC 0011); off: Rune's start message, the workflow inline (Rune
    /// workers, or Baton workers older than starts by reference).
    pub master_start_by_reference: bool,
    /// RabbitMQ, Redis, queue type, queue and key prefixes: the workers' values.
    #[serde(flatten)]
    pub connection: ConnectionSettings,
    pub log_format: String,
    pub credentials_key: Option<String>,
    /// Definition limits, checked before compiling (`baton_core::limits`); the workers'
    /// variables, so one environment sets both.
    pub max_definition_bytes: usize,
    pub max_nodes: usize,
    pub max_edges: usize,
}

impl Default for MasterSettings {
    fn default() -> Self {
        Self {
            master_listen: "127.0.0.1:8080".into(),
            api_tokens: String::new(),
            master_insecure_no_auth: false,
            master_key_prefix: "baton:master:".into(),
            master_max_executions: 10_000,
            master_retention_secs: 7 * 86_400,
            master_header_timeout_ms: 10_000,
            master_request_timeout_ms: 30_000,
            master_max_connections: 1024,
            master_max_body_bytes: 4 * 1024 * 1024,
            master_start_by_reference: true,
            connection: ConnectionSettings::default(),
            log_format: "json".into(),
            credentials_key: None,
            max_definition_bytes: baton_core::limits::DEFAULT_MAX_DEFINITION_BYTES,
            max_nodes: baton_core::limits::DEFAULT_MAX_NODES,
            max_edges: baton_core::limits::DEFAULT_MAX_EDGES,
        }
    }
}

impl MasterSettings {
    /// Loads defaults, then `file` (if given), then `BATON_*` variables, then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, SettingsError> {
        let s = Self::load_unchecked(file)?;
        s.validate()?;
        Ok(s)
    }

    /// Loads like [`Self::load`] without validating (command-line flags may complete it).
    pub fn load_unchecked(file: Option<&std::path::Path>) -> Result<Self, SettingsError> {
        baton_settings::load_layered(&MasterSettings::default(), file)
    }

    /// The definition limits the API validates within.
    pub fn definition_limits(&self) -> baton_core::limits::DefinitionLimits {
        baton_core::limits::DefinitionLimits {
            max_bytes: self.max_definition_bytes,
            max_nodes: self.max_nodes,
            max_edges: self.max_edges,
        }
    }

    /// The HTTP server's timeouts and limits.
    pub fn http_limits(&self) -> crate::server::HttpLimits {
        crate::server::HttpLimits {
            header_timeout: std::time::Duration::from_millis(self.master_header_timeout_ms),
            request_timeout: std::time::Duration::from_millis(self.master_request_timeout_ms),
            max_connections: self.master_max_connections,
            max_body_bytes: self.master_max_body_bytes,
        }
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |field, problem: &str| {
            Err(SettingsError::Invalid {
                field,
                problem: problem.to_string(),
            })
        };
        if self.master_listen.parse::<SocketAddr>().is_err() {
            return bad("master_listen", "must be an address like 127.0.0.1:8080");
        }
        if !matches!(self.log_format.as_str(), "json" | "human") {
            return bad("log_format", "must be `json` or `human`");
        }
        if self.master_max_executions == 0 {
            return bad("master_max_executions", "must be at least 1");
        }
        if self.master_retention_secs == 0 {
            return bad("master_retention_secs", "must be at least 1");
        }
        for (field, value) in [
            ("redis_buckets", u64::from(self.connection.redis_buckets)),
            ("master_header_timeout_ms", self.master_header_timeout_ms),
            ("master_request_timeout_ms", self.master_request_timeout_ms),
            ("master_max_connections", self.master_max_connections as u64),
            ("master_max_body_bytes", self.master_max_body_bytes as u64),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1");
            }
        }
        if self.tokens().is_empty() && !self.master_insecure_no_auth {
            return bad(
                "api_tokens",
                "is empty: set BATON_API_TOKENS, or BATON_MASTER_INSECURE_NO_AUTH=true for a local test",
            );
        }
        Ok(())
    }

    /// The bearer tokens, trimmed, empty entries dropped.
    pub fn tokens(&self) -> Vec<String> {
        self.api_tokens
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field is a registered master variable with the same default.
    #[test]
    fn every_field_is_in_the_variable_registry_with_its_default() {
        let defaults = serde_json::to_value(MasterSettings::default()).unwrap();
        let problems =
            baton_settings::registry::coverage_problems(baton_settings::Role::Master, &defaults);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn worker_and_client_variables_are_ignored_and_a_typo_is_refused() {
        let env = |vars: &[(&str, &str)]| {
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let s = baton_settings::load_layered_from(
            &MasterSettings::default(),
            None,
            env(&[
                ("BATON_PREFETCH", "16"),
                ("BATON_EGRESS_ALLOW", "10.0.0.0/8"),
                ("BATON_API_TOKEN", "client"),
                ("BATON_MASTER_MAX_EXECUTIONS", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(s.master_max_executions, 5);
        let err = baton_settings::load_layered_from(
            &MasterSettings::default(),
            None,
            env(&[("BATON_MASTER_LISTNE", "0.0.0.0:1")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`BATON_MASTER_LISTNE` (did you mean `BATON_MASTER_LISTEN`?)"),
            "{err}"
        );
    }

    #[test]
    fn auth_must_be_configured_or_explicitly_off() {
        let s = MasterSettings::default();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("api_tokens"), "{err}");
        let s = MasterSettings {
            api_tokens: " a, ,b ".into(),
            ..MasterSettings::default()
        };
        assert_eq!(s.tokens(), vec!["a", "b"]);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn http_limits_have_safe_defaults_and_zero_is_refused() {
        let s = MasterSettings {
            api_tokens: "t".into(),
            ..MasterSettings::default()
        };
        let limits = s.http_limits();
        assert_eq!(limits.header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(limits.request_timeout, std::time::Duration::from_secs(30));
        assert_eq!(limits.max_connections, 1024);
        assert!(limits.max_body_bytes > s.max_definition_bytes);
        for zero in [
            MasterSettings {
                master_header_timeout_ms: 0,
                ..s.clone()
            },
            MasterSettings {
                master_max_connections: 0,
                ..s.clone()
            },
        ] {
            let err = zero.validate().unwrap_err().to_string();
            assert!(err.contains("must be at least 1"), "{err}");
        }
    }

    #[test]
    fn a_toml_file_overrides_defaults_and_bad_values_name_their_field() {
        let dir = std::env::temp_dir().join(format!("baton-master-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "api_tokens = \"t\"\nmaster_listen = \"0.0.0.0:9000\"\nmaster_max_executions = 5\n",
        )
        .unwrap();
        let s = MasterSettings::load(Some(&good)).unwrap();
        assert_eq!(
            (s.master_listen.as_str(), s.master_max_executions),
            ("0.0.0.0:9000", 5)
        );
        assert_eq!(s.master_key_prefix, "baton:master:");
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "api_tokens = \"t\"\nmaster_listen = \"nowhere\"\n").unwrap();
        let err = MasterSettings::load(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("master_listen"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
