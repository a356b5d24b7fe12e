//! The worker's configuration: defaults → TOML file → `BATON_*` environment variables. The
//! fields every process shares (`amqp_url`, `redis_url`, `queue_type`, `key_prefix`,
//! `queue_prefix`) are [`ConnectionSettings`], flattened in: the file and variables stay flat.
//!
//! | field | env | default | meaning |
//! |---|---|---|---|
//! | `amqp_url` | `BATON_AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ; a comma-separated list for a cluster's nodes (first that answers, the next on a loss) |
//! | `redis_url` | `BATON_REDIS_URL` | `redis://127.0.0.1:6379/` | Redis; a comma-separated list of node URLs is a Redis Cluster |
//! | `redis_cluster` | `BATON_REDIS_CLUSTER` | `false` | treat a single `redis_url` as a cluster seed node |
//! | `redis_buckets` | `BATON_REDIS_BUCKETS` | `16` | hash-tagged buckets the durable timers are spread over (same on every worker) |
//! | `redis_wait_ms` | `BATON_REDIS_WAIT_MS` | `200` | cluster only: how long a write waits for a replica's acknowledgement (0 = never) |
//! | `http_port` | `BATON_HTTP_PORT` | `9090` | `/healthz`, `/readyz`, `/metrics` |
//! | `prefetch` | `BATON_PREFETCH` | `256` | unacked deliveries per worker |
//! | `concurrency` | `BATON_CONCURRENCY` | `256` | hops in flight per worker |
//! | `queue_type` | `BATON_QUEUE_TYPE` | `classic` | `classic` or `quorum` |
//! | `key_prefix` | `BATON_KEY_PREFIX` | `baton` | Redis key prefix |
//! | `queue_prefix` | `BATON_QUEUE_PREFIX` | `` | prefix of every queue/exchange name (tests) |
//! | `drain_timeout_secs` | `BATON_DRAIN_TIMEOUT_SECS` | `30` | SIGTERM grace for in-flight hops |
//! | `completed_ttl_secs` | `BATON_COMPLETED_TTL_SECS` | `86400` | state kept after completion |
//! | `max_deliveries` | `BATON_MAX_DELIVERIES` | `3` | workers a message may crash or stall (die or lose it unsettled) before its next delivery is dead-lettered and its execution failed |
//! | `max_message_bytes` | `BATON_MAX_MESSAGE_BYTES` | `10485760` | larger deliveries are dead-lettered |
//! | `timer_poll_ms` | `BATON_TIMER_POLL_MS` | `50` | how often due timers are claimed |
//! | `max_workflow_depth` | `BATON_MAX_WORKFLOW_DEPTH` | `8` | how deep `workflow` (sub-workflow) nodes may nest child executions |
//! | `max_definition_bytes` | `BATON_MAX_DEFINITION_BYTES` | `2097152` | larger definitions are refused before compiling (a start is dead-lettered, its execution failed) |
//! | `max_nodes` | `BATON_MAX_NODES` | `10000` | nodes per definition, checked before compiling |
//! | `max_edges` | `BATON_MAX_EDGES` | `50000` | edges per definition, checked before compiling |
//! | `max_split_items` | `BATON_MAX_SPLIT_ITEMS` | `10000` | items per split (a node's `max_items` may lower it); more fail the node with `LIMIT_EXCEEDED` |
//! | `log_format` | `BATON_LOG_FORMAT` | `json` | `json` or `human` |
//! | `worker_threads` | `BATON_WORKER_THREADS` | `0` | runtime threads; 0 = one per core |
//! | `publisher_channels` | `BATON_PUBLISHER_CHANNELS` | `4` | confirm-mode channels publishes are spread over |
//! | `code_memory_mb` | `BATON_CODE_MEMORY_MB` | `64` | memory cap (`RLIMIT_DATA`) of each `code` node sandbox process |
//! | `code_timeout_ms` | `BATON_CODE_TIMEOUT_MS` | `30000` | largest `timeout_ms` (wall clock and CPU) a `code` node may ask for; nodes default to 1000 |
//! | `code_sandboxes` | `BATON_CODE_SANDBOXES` | `2` | sandbox processes kept warm, i.e. `code` scripts running at once |
//! | `code_in_process` | `BATON_CODE_IN_PROCESS` | `false` | run `code` scripts in the worker without memory/CPU caps (only where no child process can be started) |
//! | `watchdog_secs` | `BATON_WATCHDOG_SECS` | `60` | `/readyz` turns false when deliveries are in flight and none settled nor arrived for this long; the process exits (code 70) when the broker connection's supervisor has not turned for this long (the runtime or lapin is wedged). Must exceed the longest node timeout (RFC 0004) |
//! | `broker_down_exit_secs` | `BATON_BROKER_DOWN_EXIT_SECS` | `300` | the process exits (code 70) when the broker connection stays unusable this long, so the orchestrator restarts it; 0 = never |
//! | `status_mode` | `BATON_STATUS_MODE` | `full` | what this worker publishes about node runs (RFC 0011): `full` (Rune's `running` + final status per node), `compact` (one record per node run — start, end, outcome, output reference — batched into one message per flush), `off` (completions only); a workflow's `status_mode` may lower it, never raise it |
//! | `local_arrivals` | `BATON_LOCAL_ARRIVALS` | `true` | a hop handles the aggregator and merge arrivals it hands on in this process instead of sending them through the broker (RFC 0011); `false` publishes them like every other message |
//! | `status_route` | `BATON_STATUS_ROUTE` | `exchange` | where `full` statuses go (RFC 0011): `exchange` (through the `workflows` topic exchange with key `workflow.node.status`: the status queue and every Rune monitor bound there see them) or `queue` (straight to the status queue through the default exchange: no topic routing, cheaper for the broker, monitors bound to the exchange see none) |
//! | `credentials_key` | `BATON_CREDENTIALS_KEY` | none | base64 of 32 random bytes (`openssl rand -base64 32`): enables the credential vault (see below) |
//!
//! With `credentials_key` set, nodes' `"credentials": {"$credential": "<id>"}` references are
//! revealed from a `RedisVault` on `redis_url` under `key_prefix` (keys
//! `<key_prefix>:cred:<id>`, `<key_prefix>:creds`) — where the master stores them, so the
//! master and every worker need the same prefix and the same key. Without it, a node using a
//! reference fails with a clear error. The key never appears in logs or `Debug` output.
//!
//! Egress (every outbound connection a node makes: `http`, `smtp`; see `crates/nodes/src/egress`):
//!
//! | field | env | default | meaning |
//! |---|---|---|---|
//! | `egress_allow` | `BATON_EGRESS_ALLOW` | `` | comma list of CIDR ranges and host names (`10.0.0.0/8,*.svc.cluster.local,db.internal`) nodes may reach although they are private; loopback, `0.0.0.0` and cloud metadata addresses stay denied |
//! | `egress_allow_private` | `BATON_EGRESS_ALLOW_PRIVATE` | `false` | development only: nodes may reach every address, loopback and metadata included |
//! | `http_allow_private_networks` | `BATON_HTTP_ALLOW_PRIVATE_NETWORKS` | `false` | the former name of `egress_allow_private` (either one enables it) |
//! | `egress_connect_timeout_ms` | `BATON_EGRESS_CONNECT_TIMEOUT_MS` | `10000` | bound of one connection attempt |
//!
//! Every field is also an entry of `baton_settings::registry::VARIABLES` (a test fails
//! otherwise), which renders `docs/config.md`. The master's and the CLI's variables in the
//! environment are ignored; a `BATON_*` name no role knows is refused, naming the closest one.

use baton_settings::ConnectionSettings;
pub use baton_settings::SettingsError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// RabbitMQ, Redis, queue type, queue and key prefixes (as the master's).
    #[serde(flatten)]
    pub connection: ConnectionSettings,
    pub http_port: u16,
    pub prefetch: u16,
    pub concurrency: usize,
    pub drain_timeout_secs: u64,
    pub completed_ttl_secs: u64,
    pub max_message_bytes: usize,
    /// Deliveries a message may take down (crash or stall its worker) before it is
    /// dead-lettered; counted durably (`crate::budget`).
    pub max_deliveries: u64,
    pub timer_poll_ms: u64,
    /// How deep sub-workflows nest (a top-level execution is depth 0).
    pub max_workflow_depth: u32,
    /// Definition limits, checked before compiling (`baton_core::limits`).
    pub max_definition_bytes: usize,
    pub max_nodes: usize,
    pub max_edges: usize,
    /// Items per split; a larger split fails its node.
    pub max_split_items: usize,
    pub log_format: String,
    /// `BATON_CREDENTIALS_KEY`; never printed.
    pub credentials_key: Option<SecretText>,
    /// `BATON_EGRESS_ALLOW`: internal ranges and hosts nodes may reach.
    pub egress_allow: String,
    /// Development switch: every address reachable (loopback and metadata included).
    pub egress_allow_private: bool,
    /// The former name of `egress_allow_private`, still honoured.
    pub http_allow_private_networks: bool,
    pub egress_connect_timeout_ms: u64,
    /// Threads of the worker's async runtime (0: one per core). On a small box shared with the
    /// broker, fewer threads mean fewer cross-thread wake-ups per hop.
    pub worker_threads: usize,
    /// Confirm-mode publishing channels. Fewer channels let the broker coalesce confirms.
    pub publisher_channels: usize,
    /// `code` node sandboxes (see `rfcs/0007-code-node.md`).
    pub code_memory_mb: u64,
    pub code_timeout_ms: u64,
    pub code_sandboxes: usize,
    pub code_in_process: bool,
    /// Seconds without progress (deliveries in flight, none settled or received) after which
    /// the worker reports not ready, and of supervisor silence after which it exits.
    pub watchdog_secs: u64,
    /// Seconds the broker connection may stay unusable before the process exits (0: never).
    pub broker_down_exit_secs: u64,
    /// `BATON_STATUS_MODE`: `full` (default, Rune-compatible), `compact` or `off` (RFC 0011).
    pub status_mode: baton_core::message::StatusMode,
    /// `BATON_STATUS_ROUTE`: `exchange` (default, Rune-compatible) or `queue` (RFC 0011).
    pub status_route: StatusRoute,
    /// `BATON_LOCAL_ARRIVALS`: aggregator and merge arrivals handled by the hop that hands them
    /// on (default) instead of going through the broker (RFC 0011).
    pub local_arrivals: bool,
}

/// Where a worker's `full` statuses go (RFC 0011).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String", into = "String")]
pub enum StatusRoute {
    /// Through the `workflows` topic exchange with the status queue's name as routing key:
    /// the status queue and every monitor bound to the exchange with that key (Rune's RTES)
    /// get a copy.
    #[default]
    Exchange,
    /// Straight to the status queue through the default exchange: no topic routing (cheaper
    /// for the broker), and monitors bound to the exchange get nothing.
    Queue,
}

impl TryFrom<String> for StatusRoute {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.as_str() {
            "exchange" => Ok(Self::Exchange),
            "queue" => Ok(Self::Queue),
            _ => Err(format!(
                "unknown status route `{name}`: must be `exchange` or `queue`"
            )),
        }
    }
}

impl From<StatusRoute> for String {
    fn from(route: StatusRoute) -> Self {
        match route {
            StatusRoute::Exchange => "exchange",
            StatusRoute::Queue => "queue",
        }
        .to_string()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            connection: ConnectionSettings::default(),
            http_port: 9090,
            prefetch: 256,
            concurrency: 256,
            drain_timeout_secs: 30,
            completed_ttl_secs: 86_400,
            max_message_bytes: 10 * 1024 * 1024,
            max_deliveries: 3,
            timer_poll_ms: 50,
            max_workflow_depth: baton_engine::hop::DEFAULT_MAX_WORKFLOW_DEPTH,
            max_definition_bytes: baton_core::limits::DEFAULT_MAX_DEFINITION_BYTES,
            max_nodes: baton_core::limits::DEFAULT_MAX_NODES,
            max_edges: baton_core::limits::DEFAULT_MAX_EDGES,
            max_split_items: baton_core::limits::DEFAULT_MAX_SPLIT_ITEMS,
            log_format: "json".into(),
            credentials_key: None,
            egress_allow: String::new(),
            egress_allow_private: false,
            http_allow_private_networks: false,
            egress_connect_timeout_ms: 10_000,
            worker_threads: 0,
            publisher_channels: 4,
            code_memory_mb: baton_nodes::code::DEFAULT_MEMORY_MB,
            code_timeout_ms: baton_nodes::code::MAX_TIMEOUT_MS,
            code_sandboxes: baton_nodes::code::DEFAULT_SANDBOXES,
            code_in_process: false,
            watchdog_secs: 60,
            broker_down_exit_secs: 300,
            status_mode: baton_core::message::StatusMode::Full,
            status_route: StatusRoute::Exchange,
            local_arrivals: true,
        }
    }
}

/// A configuration value that must never be printed: `Debug` shows `<redacted>`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Settings {
    /// Loads defaults, then `file` (if given), then `BATON_*` variables, then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, SettingsError> {
        let s = baton_settings::load_layered(&Settings::default(), file)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let bad = |field, problem: &str| {
            Err(SettingsError::Invalid {
                field,
                problem: problem.to_string(),
            })
        };
        if !matches!(self.log_format.as_str(), "json" | "human") {
            return bad("log_format", "must be `json` or `human`");
        }
        if self.prefetch == 0 {
            return bad("prefetch", "must be at least 1");
        }
        if self.watchdog_secs < 10 {
            return bad("watchdog_secs", "must be at least 10");
        }
        if self.publisher_channels == 0 {
            return bad("publisher_channels", "must be at least 1");
        }
        if self.max_split_items == 0 || self.max_nodes == 0 {
            return bad(
                "max_split_items",
                "max_split_items and max_nodes must be at least 1",
            );
        }
        if self.max_deliveries == 0 {
            return bad("max_deliveries", "must be at least 1");
        }
        if self.concurrency == 0 {
            return bad("concurrency", "must be at least 1");
        }
        if self.code_memory_mb < 8 {
            return bad("code_memory_mb", "must be at least 8 (MiB)");
        }
        if self.code_timeout_ms == 0 {
            return bad("code_timeout_ms", "must be at least 1");
        }
        if self.code_sandboxes == 0 {
            return bad("code_sandboxes", "must be at least 1");
        }
        let connection = &self.connection;
        // One URI, or a comma-separated list of them (the nodes of a RabbitMQ cluster).
        let mut amqp_nodes = connection.amqp_url.split(',').map(str::trim);
        if amqp_nodes.any(|node| !node.starts_with("amqp://") && !node.starts_with("amqps://")) {
            return bad(
                "amqp_url",
                "must be amqp:// or amqps:// URIs (one, or a comma-separated list of a cluster's nodes)",
            );
        }
        if connection
            .redis_url
            .split(',')
            .map(str::trim)
            .any(|u| !u.starts_with("redis://") && !u.starts_with("rediss://"))
        {
            return bad(
                "redis_url",
                "must be a redis:// or rediss:// URL, or a comma-separated list of them (a cluster)",
            );
        }
        if connection.redis_buckets == 0 {
            return bad("redis_buckets", "must be at least 1");
        }
        if self.egress_connect_timeout_ms == 0 {
            return bad("egress_connect_timeout_ms", "must be at least 1");
        }
        self.egress_policy()?;
        if let Err(e) = self.vault_key() {
            return Err(SettingsError::Invalid {
                field: "credentials_key",
                problem: e.to_string(),
            });
        }
        Ok(())
    }

    /// The definition limits this worker compiles within.
    pub fn definition_limits(&self) -> baton_core::limits::DefinitionLimits {
        baton_core::limits::DefinitionLimits {
            max_bytes: self.max_definition_bytes,
            max_nodes: self.max_nodes,
            max_edges: self.max_edges,
        }
    }

    /// How this worker runs `code` nodes: in warm sandbox children of this executable.
    pub fn code_settings(&self) -> baton_nodes::code::CodeSettings {
        baton_nodes::code::CodeSettings {
            memory_mb: self.code_memory_mb,
            max_timeout_ms: self.code_timeout_ms,
            sandboxes: self.code_sandboxes,
            in_process: self.code_in_process,
            program: None,
            warm: true,
        }
    }

    /// Where this worker's nodes may connect.
    pub fn egress_policy(&self) -> Result<baton_nodes::egress::EgressPolicy, SettingsError> {
        let allow = baton_nodes::egress::HostRule::parse_list(&self.egress_allow).map_err(
            |problem| SettingsError::Invalid {
                field: "egress_allow",
                problem: format!(
                    "{problem}; expected a comma list of CIDR ranges, IP addresses, host names and `*.suffix` wildcards"
                ),
            },
        )?;
        Ok(baton_nodes::egress::EgressPolicy {
            allow_private: self.egress_allow_private || self.http_allow_private_networks,
            allow,
            connect_timeout: std::time::Duration::from_millis(self.egress_connect_timeout_ms),
        })
    }

    /// The credential vault's key, if one is configured.
    pub fn vault_key(&self) -> Result<Option<baton_vault::VaultKey>, baton_vault::KeyError> {
        self.credentials_key
            .as_ref()
            .filter(|k| !k.expose().trim().is_empty())
            .map(|k| baton_vault::VaultKey::from_base64(k.expose()))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Settings::default().validate().is_ok());
    }

    /// Every field is a registered worker variable with the same default (the registry feeds
    /// `docs/config.md`, `baton config` and the unknown-variable check).
    #[test]
    fn every_field_is_in_the_variable_registry_with_its_default() {
        let defaults = serde_json::to_value(Settings::default()).unwrap();
        let problems =
            baton_settings::registry::coverage_problems(baton_settings::Role::Worker, &defaults);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn master_and_client_variables_in_the_environment_are_ignored() {
        let env = [
            ("BATON_API_TOKENS", "s3cret"),
            ("BATON_MASTER_KEY_PREFIX", "m:"),
            ("BATON_MASTER_URL", "http://127.0.0.1:8080"),
            ("BATON_PREFETCH", "5"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = baton_settings::load_layered_from(&Settings::default(), None, env).unwrap();
        assert_eq!(s.prefetch, 5);
    }

    #[test]
    fn an_amqp_url_list_is_accepted_and_a_bad_entry_names_the_setting() {
        let mut s = Settings::default();
        s.connection.amqp_url =
            "amqp://guest:guest@127.0.0.1:5701/%2f, amqps://u:p@rmq-2:5671/%2f".into();
        assert!(s.validate().is_ok());
        s.connection.amqp_url = "amqp://127.0.0.1:5701,http://127.0.0.1:5702".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("amqp_url"), "{err}");
    }

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_rejected() {
        let dir = std::env::temp_dir().join(format!("baton-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "prefetch = 7\nqueue_type = \"quorum\"\n").unwrap();
        let s = Settings::load(Some(&good)).unwrap();
        assert_eq!(
            (s.prefetch, s.connection.queue_type.as_str()),
            (7, "quorum")
        );
        let typo = dir.join("typo.toml");
        std::fs::write(&typo, "prefech = 7\n").unwrap();
        let err = Settings::load(Some(&typo)).unwrap_err().to_string();
        assert!(
            err.contains("unknown key `prefech` (did you mean `prefetch`?)"),
            "{err}"
        );
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "queue_type = \"lazy\"\n").unwrap();
        let err = Settings::load(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("queue_type"), "{err}");
    }

    #[test]
    fn code_sandbox_settings_reach_the_code_node_and_zero_sandboxes_are_rejected() {
        let dir = std::env::temp_dir().join(format!("baton-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("code.toml");
        std::fs::write(&file, "code_memory_mb = 128\ncode_timeout_ms = 5000\n").unwrap();
        let code = Settings::load(Some(&file)).unwrap().code_settings();
        assert_eq!(
            (code.memory_mb, code.max_timeout_ms, code.sandboxes),
            (128, 5000, 2)
        );
        assert!(code.warm && !code.in_process && code.program.is_none());
        std::fs::write(&file, "code_sandboxes = 0\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("code_sandboxes"), "{err}");
    }

    #[test]
    fn the_status_mode_is_read_by_name_and_an_unknown_one_is_refused_naming_the_choices() {
        let dir = std::env::temp_dir().join(format!("baton-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("status.toml");
        assert_eq!(
            Settings::default().status_mode,
            baton_core::message::StatusMode::Full
        );
        std::fs::write(&file, "status_mode = \"compact\"\n").unwrap();
        let s = Settings::load(Some(&file)).unwrap();
        assert_eq!(s.status_mode, baton_core::message::StatusMode::Compact);
        std::fs::write(&file, "status_mode = \"loud\"\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("loud") && err.contains("compact"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_status_route_is_the_exchange_unless_set_to_the_queue_and_an_unknown_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("baton-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("route.toml");
        assert_eq!(Settings::default().status_route, StatusRoute::Exchange);
        std::fs::write(&file, "status_route = \"queue\"\n").unwrap();
        let s = Settings::load(Some(&file)).unwrap();
        assert_eq!(s.status_route, StatusRoute::Queue);
        std::fs::write(&file, "status_route = \"fanout\"\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("fanout") && err.contains("queue"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_credentials_key_is_checked_and_never_printed() {
        let key = baton_vault::VaultKey::generate().to_base64();
        let s = Settings {
            credentials_key: Some(SecretText::new(key.as_str())),
            ..Settings::default()
        };
        assert!(s.validate().is_ok());
        assert!(s.vault_key().unwrap().is_some());
        assert!(!format!("{s:?}").contains(key.as_str()));
        let short = Settings {
            credentials_key: Some(SecretText::new("c2hvcnQ=")),
            ..Settings::default()
        };
        let err = short.validate().unwrap_err().to_string();
        assert!(
            err.contains("credentials_key") && err.contains("32"),
            "{err}"
        );
        assert!(Settings::default().vault_key().unwrap().is_none());
    }

    #[test]
    fn egress_settings_build_the_policy_and_a_bad_allow_list_names_the_setting() {
        let policy = Settings::default().egress_policy().unwrap();
        assert!(!policy.allow_private && policy.allow.is_empty());
        let s = Settings {
            egress_allow: "10.0.0.0/8, *.svc.cluster.local,db.internal".into(),
            egress_connect_timeout_ms: 1500,
            ..Settings::default()
        };
        let policy = s.egress_policy().unwrap();
        assert_eq!(policy.allow.len(), 3);
        assert_eq!(
            policy.connect_timeout,
            std::time::Duration::from_millis(1500)
        );
        let old_name = Settings {
            http_allow_private_networks: true,
            ..Settings::default()
        };
        assert!(old_name.egress_policy().unwrap().allow_private);
        let bad = Settings {
            egress_allow: "10.0.0.0/33".into(),
            ..Settings::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("egress_allow") && err.contains("CIDR"),
            "{err}"
        );
    }
}
