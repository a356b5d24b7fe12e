//! The registry of every `BATON_*` variable any Baton process (or the tooling around it) reads:
//! its name, the roles that read it, its type, default and whether it is secret. It decides
//! what a process does with a variable it does not use itself (ignore it when another role
//! knows it, refuse it naming the closest known name otherwise), renders `docs/config.md`, and
//! says which values `baton config` must redact.
//!
//! Adding a setting: a field in the role's settings struct and one entry in [`VARIABLES`] (the
//! struct's coverage test fails until the entry exists; `docs/config.md` is then regenerated).

use std::collections::BTreeSet;

/// Who reads a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// `baton worker` (also what `submit`, `cancel`, `signal` and `bench` load to reach the pool).
    Worker,
    /// `baton master`.
    Master,
    /// The client commands: `submit`, `cancel`, `signal`, `executions`, `watch`, `run`, `validate`.
    Cli,
    /// `baton dev`.
    Dev,
    /// The test suites, scripts and deployment files; no `baton` command reads these.
    Tooling,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Worker,
        Role::Master,
        Role::Cli,
        Role::Dev,
        Role::Tooling,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Master => "master",
            Role::Cli => "cli",
            Role::Dev => "dev",
            Role::Tooling => "tooling",
        }
    }
}

/// What a variable's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A URL; a password inside it is redacted when shown.
    Url,
    Integer,
    Bool,
    /// A comma-separated list.
    List,
    /// `host:port`.
    Address,
    /// Base64 bytes (a key).
    Key,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Url => "URL",
            Kind::Integer => "integer",
            Kind::Bool => "boolean",
            Kind::List => "comma list",
            Kind::Address => "host:port",
            Kind::Key => "base64 key",
        }
    }
}

/// One `BATON_*` variable.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// `BATON_` and the upper-case settings key.
    pub name: &'static str,
    pub roles: &'static [Role],
    pub kind: Kind,
    /// The default as it is written in a variable or file (empty: none).
    pub default: &'static str,
    /// Never printed: `baton config` shows `<redacted>`.
    pub secret: bool,
    pub doc: &'static str,
}

impl Variable {
    /// The settings key (file key, struct field): `BATON_HTTP_PORT` -> `http_port`.
    pub fn key(&self) -> String {
        key_of(self.name).unwrap_or(self.name).to_ascii_lowercase()
    }

    pub fn read_by(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    const fn secret(self) -> Self {
        Self {
            secret: true,
            ..self
        }
    }
}

/// The settings key of a variable name: `BATON_HTTP_PORT` -> `HTTP_PORT`.
fn key_of(name: &str) -> Option<&str> {
    name.strip_prefix(PREFIX)
}

/// Every variable name starts with this.
pub const PREFIX: &str = "BATON_";

const fn var(
    name: &'static str,
    roles: &'static [Role],
    kind: Kind,
    default: &'static str,
    doc: &'static str,
) -> Variable {
    Variable {
        name,
        roles,
        kind,
        default,
        secret: false,
        doc,
    }
}

use Kind::{Address, Bool, Integer, Key, List, Text, Url};
use Role::{Cli, Dev, Master, Tooling, Worker};

const CONNECTION: &[Role] = &[Worker, Master, Cli];
const LIMITS: &[Role] = &[Worker, Master, Cli];
const SERVICES: &[Role] = &[Worker, Master];
const WORKER: &[Role] = &[Worker];
const MASTER: &[Role] = &[Master];
const TOOLING: &[Role] = &[Tooling];

/// Every `BATON_*` variable, grouped: connection, worker, egress, code sandbox, master, client,
/// tooling. One line per variable; keep the doc one sentence or two.
#[rustfmt::skip]
pub static VARIABLES: &[Variable] = &[
    // Connection: every process of one deployment must agree on these.
    var("BATON_AMQP_URL", CONNECTION, Url, "amqp://guest:guest@127.0.0.1:5672/%2f", "RabbitMQ, `amqp://user:password@host:port/vhost` (`amqps://` for TLS); a comma-separated list of a cluster's nodes (the first that answers, the next on a loss)."),
    var("BATON_REDIS_URL", CONNECTION, Url, "redis://127.0.0.1:6379/", "Redis, `redis://[:password@]host:port/[db]` (`rediss://` for TLS); a comma-separated list of node URLs is a Redis Cluster."),
    var("BATON_REDIS_CLUSTER", CONNECTION, Bool, "false", "Treat a single `BATON_REDIS_URL` as a Redis Cluster seed node."),
    var("BATON_REDIS_BUCKETS", CONNECTION, Integer, "16", "Hash-tagged buckets the durable timers and, on a Redis Cluster, the master's history are spread over, so no cluster slot is hot (same on every process)."),
    var("BATON_REDIS_WAIT_MS", CONNECTION, Integer, "200", "Redis Cluster only: how long a write a hop relies on waits for a replica's acknowledgement before the hop is retried; 0 never waits (a primary's loss may lose its latest writes)."),
    var("BATON_QUEUE_TYPE", CONNECTION, Text, "classic", "`classic` or `quorum`."),
    var("BATON_QUEUE_PREFIX", CONNECTION, Text, "", "Put in front of every queue and exchange name; empty in production, one per run in tests."),
    var("BATON_KEY_PREFIX", CONNECTION, Text, "baton", "Redis key prefix of the execution state, the catalog and the vault."),
    var("BATON_LOG_FORMAT", SERVICES, Text, "json", "`json` or `human` (a terminal)."),
    var("BATON_CREDENTIALS_KEY", &[Worker, Master, Dev], Key, "", "Base64 of 32 random bytes (`openssl rand -base64 32`): seals credentials and webhook secrets; the same on the master and every worker. Unset: the vault is off.").secret(),
    // Definition limits, checked before compiling (worker, master, `run`, `validate`).
    var("BATON_MAX_DEFINITION_BYTES", LIMITS, Integer, "2097152", "Larger definitions are refused before compiling."),
    var("BATON_MAX_NODES", LIMITS, Integer, "10000", "Nodes per definition, checked before compiling."),
    var("BATON_MAX_EDGES", LIMITS, Integer, "50000", "Edges per definition, checked before compiling."),
    // Worker.
    var("BATON_HTTP_PORT", WORKER, Integer, "9090", "Port of `/healthz`, `/readyz` and `/metrics`."),
    var("BATON_PREFETCH", WORKER, Integer, "256", "Unacked deliveries per worker."),
    var("BATON_CONCURRENCY", WORKER, Integer, "256", "Hops in flight per worker."),
    var("BATON_STATUS_MODE", WORKER, Text, "full", "What a worker publishes about node runs: `full` (Rune's `running` + final status), `compact` (one batched record per run) or `off` (completions only); RFC 0011."),
    var("BATON_LOCAL_ARRIVALS", WORKER, Bool, "true", "A hop handles the aggregator and merge arrivals it hands on in this process instead of sending them through the broker (`false`: publishes them like every other message); RFC 0011."),
    var("BATON_STATUS_ROUTE", WORKER, Text, "exchange", "Where `full` statuses go: `exchange` (the `workflows` topic exchange, key `workflow.node.status`: Rune monitors bound there see them) or `queue` (straight to the status queue, no topic routing: cheaper for the broker, monitors bound to the exchange see none); RFC 0011."),
    var("BATON_DRAIN_TIMEOUT_SECS", WORKER, Integer, "30", "SIGTERM grace for the hops in flight."),
    var("BATON_COMPLETED_TTL_SECS", WORKER, Integer, "86400", "How long an execution's state is kept after its completion."),
    var("BATON_MAX_MESSAGE_BYTES", WORKER, Integer, "10485760", "Larger deliveries are dead-lettered."),
    var("BATON_MAX_DELIVERIES", WORKER, Integer, "3", "Workers a message may crash or stall before its next delivery is dead-lettered and its execution failed."),
    var("BATON_TIMER_POLL_MS", WORKER, Integer, "50", "How often due timers are claimed."),
    var("BATON_MAX_WORKFLOW_DEPTH", WORKER, Integer, "8", "How deep `workflow` (sub-workflow) nodes may nest child executions."),
    var("BATON_MAX_SPLIT_ITEMS", WORKER, Integer, "10000", "Items per split (a node's `max_items` may lower it); more fail the node with `LIMIT_EXCEEDED`."),
    var("BATON_WORKER_THREADS", WORKER, Integer, "0", "Threads of the worker's runtime; 0 is one per core."),
    var("BATON_PUBLISHER_CHANNELS", WORKER, Integer, "4", "Confirm-mode channels publishes are spread over."),
    var("BATON_WATCHDOG_SECS", WORKER, Integer, "60", "`/readyz` turns false when deliveries are in flight and none settled nor arrived for this long; the process exits (70) when the connection's supervisor is silent this long. At least 10; must exceed the longest node timeout."),
    var("BATON_BROKER_DOWN_EXIT_SECS", WORKER, Integer, "300", "The process exits (70) when the broker stays unusable this long, so the orchestrator restarts it; 0 is never."),
    // Egress (every connection a node makes).
    var("BATON_EGRESS_ALLOW", WORKER, List, "", "CIDR ranges, addresses, host names and `*.suffix` wildcards nodes may reach although private; loopback, `0.0.0.0` and metadata addresses stay denied."),
    var("BATON_EGRESS_ALLOW_PRIVATE", WORKER, Bool, "false", "Development only: nodes may reach every address, loopback and metadata included."),
    var("BATON_HTTP_ALLOW_PRIVATE_NETWORKS", WORKER, Bool, "false", "The former name of `BATON_EGRESS_ALLOW_PRIVATE` (either one enables it)."),
    var("BATON_EGRESS_CONNECT_TIMEOUT_MS", WORKER, Integer, "10000", "Bound of one connection attempt."),
    // `code` node sandboxes (RFC 0007).
    var("BATON_CODE_MEMORY_MB", WORKER, Integer, "64", "Memory cap (`RLIMIT_DATA`) of each `code` sandbox process; at least 8."),
    var("BATON_CODE_TIMEOUT_MS", WORKER, Integer, "30000", "Largest `timeout_ms` a `code` node may ask for (nodes default to 1000)."),
    var("BATON_CODE_SANDBOXES", WORKER, Integer, "2", "Sandbox processes kept warm, i.e. `code` scripts running at once."),
    var("BATON_CODE_IN_PROCESS", WORKER, Bool, "false", "Run `code` scripts in the worker without memory or CPU caps (only where no child process can be started)."),
    // Master.
    var("BATON_MASTER_LISTEN", MASTER, Address, "127.0.0.1:8080", "HTTP address of the API, dashboard, health and metrics (`--listen`)."),
    var("BATON_API_TOKENS", MASTER, List, "", "Bearer tokens the API accepts; required unless `BATON_MASTER_INSECURE_NO_AUTH`.").secret(),
    var("BATON_MASTER_INSECURE_NO_AUTH", MASTER, Bool, "false", "Serve without authentication (local tests only; `--insecure-no-auth`)."),
    var("BATON_MASTER_KEY_PREFIX", MASTER, Text, "baton:master:", "Redis key prefix of the master's state."),
    var("BATON_MASTER_MAX_EXECUTIONS", MASTER, Integer, "10000", "History records kept (oldest dropped)."),
    var("BATON_MASTER_RETENTION_SECS", MASTER, Integer, "604800", "A history record expires this long after its last write."),
    var("BATON_MASTER_HEADER_TIMEOUT_MS", MASTER, Integer, "10000", "A connection that has not sent a whole request head in this time is closed."),
    var("BATON_MASTER_REQUEST_TIMEOUT_MS", MASTER, Integer, "30000", "A request (body and handler, not a stream) taking longer answers 408."),
    var("BATON_MASTER_MAX_CONNECTIONS", MASTER, Integer, "1024", "Open HTTP connections (plus a small reserve that keeps `/healthz` reachable)."),
    var("BATON_MASTER_MAX_BODY_BYTES", MASTER, Integer, "4194304", "Larger request bodies answer 413."),
    var("BATON_MASTER_START_BY_REFERENCE", MASTER, Bool, "true", "Start messages name the workflow by its content hash (the definition stored once where workers read definitions) instead of carrying it; `false` sends Rune's shape, the workflow inline (Rune workers, or workers older than starts by reference)."),
    // Client commands.
    var("BATON_MASTER_URL", &[Cli], Url, "", "The master the client commands talk to (`--master`); unset, `submit`, `cancel` and `signal` use the broker."),
    var("BATON_API_TOKEN", &[Cli], Text, "", "Bearer token the client commands send to the master (`--token`); one of its `BATON_API_TOKENS`.").secret(),
    // Tooling: read by the tests, scripts and deployment files, never by `baton`.
    var("BATON_TEST_AMQP_URL", TOOLING, Url, "amqp://guest:guest@127.0.0.1:5672/%2f", "RabbitMQ of the test suites."),
    var("BATON_TEST_REDIS_URL", TOOLING, Url, "redis://127.0.0.1:6379/", "Redis of the test suites."),
    var("BATON_BIN", TOOLING, Text, "", "The `baton` binary the end-to-end tests run (default: the workspace's build)."),
    var("BATON_CHAOS_SEED", TOOLING, Integer, "", "Replays a chaos test's choice of victims."),
    var("BATON_TEST_CHROMIUM", TOOLING, Text, "chromium", "Browser of the dashboard test."),
    var("BATON_TEST_CHROMEDRIVER", TOOLING, Text, "chromedriver", "WebDriver of the dashboard test."),
    var("BATON_IMAGE", TOOLING, Text, "baton:dev", "Image `docker-compose.yml` runs."),
    var("BATON_CLUSTER_DIR", TOOLING, Text, "/tmp/baton-cluster", "State, data and pid files of `scripts/cluster` and `scripts/cluster-rabbitmq`."),
    var("BATON_CLUSTER_REDIS_PORT", TOOLING, Integer, "7101", "First port of the local Redis Cluster (`scripts/cluster`; six nodes from it)."),
    var("BATON_CLUSTER_AMQP_PORT", TOOLING, Integer, "5701", "First AMQP port of the local RabbitMQ cluster (`scripts/cluster-rabbitmq`; three nodes from it)."),
    var("BATON_CLUSTER_NODE_PREFIX", TOOLING, Text, "baton", "Node-name prefix of the local RabbitMQ cluster (`baton1@localhost`…), so two can run side by side."),
    var("BATON_CLUSTER_WAIT_SECS", TOOLING, Integer, "90", "How long `scripts/cluster-rabbitmq` waits for a node."),
    var("BATON_CLUSTER_SKIP_RABBITMQ", TOOLING, Bool, "", "`scripts/cluster` starts only the Redis Cluster."),
    var("BATON_TEST_CLUSTER", TOOLING, Text, "", "Topology of the failover suite: empty (the shared servers), `redis`, `rabbitmq` or `all` (clusters of its own, with node loss)."),
    var("BATON_FAILOVER_EXECUTIONS", TOOLING, Integer, "300", "Executions of the failover suite (120 when `CI=true`)."),
];

/// The registered variable called `name`.
pub fn find(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The registered variable of settings key `key` (`http_port`).
pub fn find_key(key: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.key() == key)
}

/// A variable or file key no Baton role knows, with the closest known name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub name: String,
    pub closest: Option<String>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`", self.name)?;
        if let Some(c) = &self.closest {
            write!(f, " (did you mean `{c}`?)")?;
        }
        Ok(())
    }
}

/// The names in `names` that no role knows (`own` are the loading struct's keys, known even
/// before their registry entry exists), each with the closest known one. Only `BATON_*` names
/// are looked at.
pub fn unknown_variables<'a>(
    names: impl IntoIterator<Item = &'a str>,
    own: &BTreeSet<String>,
) -> Vec<Unknown> {
    let known: BTreeSet<String> = VARIABLES
        .iter()
        .map(|v| v.name.to_string())
        .chain(
            own.iter()
                .map(|k| format!("{PREFIX}{}", k.to_ascii_uppercase())),
        )
        .collect();
    let mut unknown: Vec<Unknown> = names
        .into_iter()
        .filter(|n| n.starts_with(PREFIX) && !known.contains(*n))
        .map(|n| Unknown {
            name: n.to_string(),
            closest: closest(n, known.iter().map(String::as_str)),
        })
        .collect();
    unknown.sort_by(|a, b| a.name.cmp(&b.name));
    unknown.dedup();
    unknown
}

/// The keys of a settings file that no role knows, each with the closest known key.
pub fn unknown_keys<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    own: &BTreeSet<String>,
) -> Vec<Unknown> {
    let known: BTreeSet<String> = VARIABLES
        .iter()
        .map(Variable::key)
        .chain(own.iter().cloned())
        .collect();
    keys.into_iter()
        .filter(|k| !known.contains(*k))
        .map(|k| Unknown {
            name: k.to_string(),
            closest: closest(k, known.iter().map(String::as_str)),
        })
        .collect()
}

/// The closest name by what follows the common prefix (`BATON_`), so that the prefix every
/// candidate shares does not make every one of them look close.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let strip = |n: &'a str| n.strip_prefix(PREFIX).unwrap_or(n);
    let stem = name.strip_prefix(PREFIX).unwrap_or(name);
    let candidates: Vec<&'a str> = candidates.collect();
    let best = baton_core::suggest::closest(stem, candidates.iter().map(|c| strip(c)))
        .or_else(|| by_words(stem, candidates.iter().map(|c| strip(c))))?;
    candidates
        .into_iter()
        .find(|c| strip(c) == best)
        .map(str::to_string)
}

/// A name with a word too many or too few, like `WORKER_CONCURRENCY` for `CONCURRENCY`: the
/// longest candidate that ends the name (or that the name ends) after a `_`.
fn by_words<'a>(stem: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let stem = stem.to_ascii_uppercase();
    candidates
        .filter(|c| {
            let c = c.to_ascii_uppercase();
            c.len() >= 4 && (stem.ends_with(&format!("_{c}")) || c.ends_with(&format!("_{stem}")))
        })
        .max_by_key(|c| c.len())
}

/// A value as `baton config` shows it: a secret's as `<redacted>` (when set), a password
/// inside a URL replaced by `<redacted>`.
pub fn display_value(variable: Option<&Variable>, value: &str) -> String {
    match variable {
        Some(v) if v.secret && !value.is_empty() => "<redacted>".into(),
        Some(v) if v.kind == Url => redact_url(value),
        None if value.contains("://") => redact_url(value),
        _ => value.to_string(),
    }
}

/// `scheme://user:password@host/…` with the password replaced by `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}{path}"),
        None => url.to_string(),
    }
}

/// `docs/config.md`: every variable, by role.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated by `baton docs config > docs/config.md` from \
         `crates/settings/src/registry.rs`; do not edit by hand. -->\n\n\
         Every Baton process reads its settings from its defaults, then a TOML file \
         (`--config FILE`, keys are the lower-case names without `BATON_`: `http_port = 9091`), \
         then `BATON_*` environment variables. One environment can serve every role: a process \
         ignores the variables other roles read, and refuses to start on a `BATON_*` name that \
         no role knows, naming the closest known one. `baton config [--role R]` prints a \
         role's effective configuration, secrets redacted.\n\n\
         Roles: `worker` (`baton worker`), `master` (`baton master`), `cli` (the client \
         commands: `submit`, `cancel`, `signal`, `executions`, `watch`, `run`, `validate`), \
         `dev` (`baton dev`), `tooling` (tests, scripts and deployment files; no `baton` \
         command reads these).\n\n\
         | Variable | Roles | Type | Default | Description |\n\
         |---|---|---|---|---|\n",
    );
    for v in VARIABLES {
        let roles: Vec<&str> = v.roles.iter().map(|r| r.name()).collect();
        let default = if v.default.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", v.default)
        };
        let secret = if v.secret { " **Secret.**" } else { "" };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {}{} |\n",
            v.name,
            roles.join(", "),
            v.kind.name(),
            default,
            v.doc.replace('|', "\\|"),
            secret
        ));
    }
    out
}

/// What is wrong between a settings struct and the registry: a field without an entry read by
/// `role`, or whose default differs from the entry's. `defaults` is the struct's default
/// serialised to JSON. A process's coverage test asserts this is empty.
pub fn coverage_problems(role: Role, defaults: &serde_json::Value) -> Vec<String> {
    let Some(fields) = defaults.as_object() else {
        return vec!["the defaults do not serialise to an object".into()];
    };
    let mut problems = Vec::new();
    for (key, value) in fields {
        let name = format!("{PREFIX}{}", key.to_ascii_uppercase());
        let Some(v) = find(&name) else {
            problems.push(format!(
                "field `{key}` has no registry entry: add `{name}` to VARIABLES in crates/settings/src/registry.rs"
            ));
            continue;
        };
        if !v.read_by(role) {
            problems.push(format!(
                "`{name}` is read by {} but does not list it",
                role.name()
            ));
        }
        let default = match value {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if default != v.default {
            problems.push(format!(
                "`{name}`: the registry says the default is `{}`, the struct `{default}`",
                v.default
            ));
        }
    }
    problems
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
