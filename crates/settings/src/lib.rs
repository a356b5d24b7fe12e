//! What every Baton process configures alike — where RabbitMQ and Redis are, the queue and key
//! prefixes, the queue type — and the layered loading of a process's configuration (defaults →
//! TOML file → `BATON_*` environment variables).
//!
//! A process's settings embed [`ConnectionSettings`] with `#[serde(flatten)]`, so its file and
//! variables stay flat (`amqp_url = …`, `BATON_QUEUE_TYPE=quorum`), and build their broker
//! options with `AmqpOptions::from(&settings.connection)`, setting only what differs (prefetch,
//! connection name, timeouts).

use std::path::Path;

use baton_amqp::{AmqpOptions, QueueType, Topology};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Where the broker and the store are, and how this deployment names its queues and keys.
/// Every worker, the master, `baton submit` and the benchmark driver of one deployment must
/// agree on all of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectionSettings {
    /// RabbitMQ, `amqp://user:password@host:port/vhost`.
    #[serde(deserialize_with = "text::deserialize")]
    pub amqp_url: String,
    /// Redis, `redis://host:port/`; or a Redis Cluster: its node URLs, comma-separated
    /// (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`, any reachable one is enough).
    #[serde(deserialize_with = "text::deserialize")]
    pub redis_url: String,
    /// `BATON_REDIS_CLUSTER`: treat a single `redis_url` as a Redis Cluster seed node (more
    /// than one URL always means a cluster). Default false.
    pub redis_cluster: bool,
    /// `BATON_REDIS_BUCKETS`: how many hash-tagged buckets the durable timers are spread over,
    /// so that no cluster slot holds them all (default 16, at least 1). Every worker of a
    /// deployment must use the same number.
    pub redis_buckets: u32,
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
}

/// Loads `defaults`, then `file` (if given, and then required), then the `BATON_*` variables
/// (`BATON_QUEUE_TYPE` sets `queue_type`; numbers and booleans are parsed). A bad
/// `queue_type` is [`SettingsError::Invalid`], as when it was checked after loading; checking
/// the other values is the caller's job.
pub fn load_layered<T>(defaults: &T, file: Option<&Path>) -> Result<T, SettingsError>
where
    T: Serialize + DeserializeOwned,
{
    let mut builder = config::Config::builder().add_source(config::Config::try_from(defaults)?);
    if let Some(f) = file {
        builder = builder.add_source(config::File::from(f).required(true));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("BATON")
            .prefix_separator("_")
            .try_parsing(true),
    );
    builder
        .build()?
        .try_deserialize()
        .map_err(|e| match queue_type_name::problem(&e) {
            Some(problem) => SettingsError::Invalid {
                field: "queue_type",
                problem,
            },
            None => SettingsError::Load(name_expected_fields(e, defaults)),
        })
}

/// serde names the expected fields in an unknown-field error, except when some are flattened:
/// it then says only `unknown field `x``. Adds them back (in serialisation order), so a typo in
/// a file or variable is answered as helpfully as before the connection fields were shared.
fn name_expected_fields<T: Serialize>(
    error: config::ConfigError,
    defaults: &T,
) -> config::ConfigError {
    let config::ConfigError::Message(message) = &error else {
        return error;
    };
    if !message.starts_with("unknown field `") || message.contains(", expected") {
        return error;
    }
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(defaults) else {
        return error;
    };
    let names: Vec<String> = fields.keys().map(|k| format!("`{k}`")).collect();
    let expected = match names.as_slice() {
        [] => return error,
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", names.join(", ")),
    };
    config::ConfigError::Message(format!("{message}, expected {expected}"))
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
