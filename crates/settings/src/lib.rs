//! What every Baton process configures alike — where RabbitMQ and Redis are, the queue and key
//! prefixes, the queue type — and the layered loading of a process's configuration (defaults →
//! TOML file → `BATON_*` environment variables).
//!
//! A process's settings embed [`ConnectionSettings`] with `#[serde(flatten)]`, so its file and
//! variables stay flat (`amqp_url = …`, `BATON_QUEUE_TYPE=quorum`), and build their broker
//! options with `AmqpOptions::from(&settings.connection)`, setting only what differs (prefetch,
//! connection name, timeouts).
//!
//! Every `BATON_*` variable of every role is in [`registry`]: a process uses its own, ignores
//! the other roles' and refuses a name no role knows.

pub mod registry;

use std::collections::BTreeSet;
use std::path::Path;

use baton_amqp::{AmqpOptions, QueueType, Topology};
use config::Source;
pub use registry::{Role, Unknown};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Where the broker and the store are, and how this deployment names its queues and keys.
/// Every worker, the master, `baton submit` and the benchmark driver of one deployment must
/// agree on all of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectionSettings {
    /// RabbitMQ, `amqp://user:password@host:port/vhost`; on a RabbitMQ cluster a
    /// comma-separated list of the nodes' URIs: the process connects to the first that answers
    /// and moves to the next when its connection is lost (round robin).
    #[serde(deserialize_with = "text::deserialize")]
    pub amqp_url: String,
    /// Redis, `redis://host:port/`; or a Redis Cluster: its node URLs, comma-separated
    /// (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`, any reachable one is enough).
    #[serde(deserialize_with = "text::deserialize")]
    pub redis_url: String,
    /// `BATON_REDIS_CLUSTER`: treat a single `redis_url` as a Redis Cluster seed node (more
    /// than one URL always means a cluster). Default false.
    pub redis_cluster: bool,
    /// `BATON_REDIS_BUCKETS`: how many hash-tagged buckets the durable timers (and, on a
    /// cluster, the master's history) are spread over, so that no cluster slot holds them all
    /// (default 16, at least 1). Every process of a deployment must use the same number.
    pub redis_buckets: u32,
    /// `BATON_REDIS_WAIT_MS`: on a Redis Cluster, how long a write a hop relies on may wait for
    /// a replica's acknowledgement (`WAIT 1 <ms>` on a dedicated connection to its primary)
    /// before the hop fails and is retried; 0 never waits (a primary's loss may then lose the
    /// writes its replica had not received). Default 200. Ignored on a single node.
    pub redis_wait_ms: u64,
    /// `classic` or `quorum`.
    #[serde(with = "queue_type_name")]
    pub queue_type: QueueType,
    /// Put in front of every queue and exchange name (see [`Topology::new`]); empty in
    /// production, one per run in tests.
    #[serde(deserialize_with = "text::deserialize")]
    pub queue_prefix: String,
    /// Redis key prefix of the execution state, the catalog and the vault.
    #[serde(deserialize_with = "text::deserialize")]
    pub key_prefix: String,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            redis_url: "redis://127.0.0.1:6379/".into(),
            redis_cluster: false,
            redis_buckets: 16,
            redis_wait_ms: 200,
            queue_type: QueueType::Classic,
            queue_prefix: String::new(),
            key_prefix: "baton".into(),
        }
    }
}

impl ConnectionSettings {
    /// The exchange and queue names behind [`Self::queue_prefix`].
    pub fn topology(&self) -> Topology {
        Topology::new(&self.queue_prefix)
    }
}

impl From<&ConnectionSettings> for AmqpOptions {
    /// URL, topology and queue type from the settings; everything else the broker's default.
    fn from(settings: &ConnectionSettings) -> Self {
        AmqpOptions {
            url: settings.amqp_url.clone(),
            topology: settings.topology(),
            queue_type: settings.queue_type,
            ..AmqpOptions::default()
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: `{field}` {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    /// `BATON_*` variables that no Baton role reads (a typo, or a setting that does not exist).
    #[error(
        "configuration: unknown variable{} {}: no Baton process reads it (every variable: docs/config.md)",
        plural(.0),
        list(.0)
    )]
    UnknownVariables(Vec<Unknown>),
    /// Keys of a settings file that no Baton role knows.
    #[error(
        "configuration: {file}: unknown key{} {} (every key: docs/config.md)",
        plural(.keys),
        list(.keys)
    )]
    UnknownKeys { file: String, keys: Vec<Unknown> },
}

fn plural(items: &[Unknown]) -> &'static str {
    if items.len() == 1 { "" } else { "s" }
}

fn list(items: &[Unknown]) -> String {
    items
        .iter()
        .map(Unknown::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads `defaults`, then `file` (if given, and then required), then the `BATON_*` variables
/// (`BATON_QUEUE_TYPE` sets `queue_type`; numbers and booleans are parsed). A bad
/// `queue_type` is [`SettingsError::Invalid`]; checking the other values is the caller's job.
///
/// The struct's own fields are the keys of `defaults` serialised (keep every field
/// serialised). Variables and file keys of other roles (known to the [`registry`]) are
/// ignored; a name no role knows is [`SettingsError::UnknownVariables`] /
/// [`SettingsError::UnknownKeys`], naming the closest known one.
pub fn load_layered<T>(defaults: &T, file: Option<&Path>) -> Result<T, SettingsError>
where
    T: Serialize + DeserializeOwned,
{
    load_layered_from(defaults, file, environment())
}

/// [`load_layered`] with the variables given instead of read from the process.
pub fn load_layered_from<T>(
    defaults: &T,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, SettingsError>
where
    T: Serialize + DeserializeOwned,
{
    let own = own_keys(defaults);
    let mut builder = config::Config::builder().add_source(config::Config::try_from(defaults)?);
    if let Some(f) = file {
        let table = config::Config::builder()
            .add_source(config::File::from(f).required(true))
            .build()?
            .collect()?;
        let unknown = registry::unknown_keys(table.keys().map(String::as_str), &own);
        if !unknown.is_empty() {
            return Err(SettingsError::UnknownKeys {
                file: f.display().to_string(),
                keys: unknown,
            });
        }
        let mine = table.into_iter().filter(|(k, _)| own.contains(k)).collect();
        builder = builder.add_source(Layer(mine));
    }
    let env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(registry::PREFIX))
        .collect();
    let unknown = registry::unknown_variables(env.iter().map(|(k, _)| k.as_str()), &own);
    if !unknown.is_empty() {
        return Err(SettingsError::UnknownVariables(unknown));
    }
    let mine: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| own.contains(&k[registry::PREFIX.len()..].to_ascii_lowercase()))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("BATON")
            .prefix_separator("_")
            .try_parsing(true)
            .source(Some(mine)),
    );
    builder
        .build()?
        .try_deserialize()
        .map_err(|e| match queue_type_name::problem(&e) {
            Some(problem) => SettingsError::Invalid {
                field: "queue_type",
                problem,
            },
            None => SettingsError::Load(e),
        })
}

/// Refuses `BATON_*` variables no role knows (for the commands that load no settings struct).
pub fn check_environment() -> Result<(), SettingsError> {
    let env = environment();
    let unknown =
        registry::unknown_variables(env.iter().map(|(k, _)| k.as_str()), &BTreeSet::new());
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(SettingsError::UnknownVariables(unknown))
    }
}

/// This process's `BATON_*` variables (names and values that are Unicode).
pub fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with(registry::PREFIX))
        .collect()
}

/// The keys a settings struct serialises: its fields, flattened ones included.
fn own_keys<T: Serialize>(defaults: &T) -> BTreeSet<String> {
    match serde_json::to_value(defaults) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// The file's keys this struct reads, as a source of the layered configuration.
#[derive(Debug, Clone)]
struct Layer(config::Map<String, config::Value>);

impl config::Source for Layer {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

/// `queue_type` as its name: `classic` or `quorum`, anything else refused with the field named.
mod queue_type_name {
    use baton_amqp::QueueType;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(queue_type: &QueueType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(queue_type.as_str())
    }

    /// Starts the message of a refused name, so that [`problem`] finds it again.
    const REFUSED: &str = "`queue_type` ";

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<QueueType, D::Error> {
        let name = super::text::deserialize(d)?;
        name.parse()
            .map_err(|e| serde::de::Error::custom(format_args!("{REFUSED}{e} (not `{name}`)")))
    }

    /// What is wrong with the queue type, if that is what `error` reports.
    pub fn problem(error: &config::ConfigError) -> Option<String> {
        match error {
            config::ConfigError::Message(message) => {
                message.strip_prefix(REFUSED).map(str::to_owned)
            }
            _ => None,
        }
    }
}

/// A text field that also takes what the environment's parsing made a number or a boolean
/// (`BATON_KEY_PREFIX=2024` stays the text `2024`), as the flat settings structs did before
/// these fields moved behind `#[serde(flatten)]`, which hands them over already typed.
mod text {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{self, Visitor};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_any(Text)
    }

    struct Text;

    impl Visitor<'_> for Text {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
}

#[cfg(test)]
mod tests;
