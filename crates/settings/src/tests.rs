//! Loading a process's flat settings with the shared connection part flattened into them.

use super::*;

/// Like a process's settings: its own fields, the shared ones flattened, unknown keys refused.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
struct Process {
    prefetch: u16,
    #[serde(flatten)]
    connection: ConnectionSettings,
}

impl Default for Process {
    fn default() -> Self {
        Self {
            prefetch: 256,
            connection: ConnectionSettings::default(),
        }
    }
}

fn load_toml(name: &str, text: &str) -> Result<Process, SettingsError> {
    let dir = std::env::temp_dir().join(format!("baton-settings-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let loaded = load_layered(&Process::default(), Some(&file));
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

#[test]
fn a_file_sets_own_and_shared_fields() {
    let p = load_toml(
        "good.toml",
        "prefetch = 7\nqueue_type = \"quorum\"\nqueue_prefix = \"t-1.\"\n",
    )
    .unwrap();
    assert_eq!(p.prefetch, 7);
    assert_eq!(p.connection.queue_type, QueueType::Quorum);
    assert_eq!(p.connection.topology(), Topology::new("t-1."));
    assert_eq!(p.connection.key_prefix, "baton");
}

#[test]
fn the_defaults_serialise_and_load_back() {
    assert!(load_layered(&Process::default(), None).is_ok());
}

#[test]
fn unknown_keys_are_refused() {
    let err = load_toml("typo.toml", "prefech = 7\n")
        .unwrap_err()
        .to_string();
    // The message a struct without flattened fields gives, with the fields in serialisation order.
    assert_eq!(
        err,
        "configuration: unknown field `prefech`, expected one of `prefetch`, `amqp_url`, `redis_url`, \
         `redis_cluster`, `redis_buckets`, `queue_type`, `queue_prefix`, `key_prefix`"
    );
}

#[test]
fn a_bad_queue_type_names_the_field_and_the_choices() {
    let err = load_toml("bad.toml", "queue_type = \"lazy\"\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "configuration: `queue_type` must be `classic` or `quorum` (not `lazy`)"
    );
}

#[test]
fn numbers_in_text_fields_stay_text() {
    let p = load_toml("numbers.toml", "key_prefix = 2024\nqueue_prefix = 7\n").unwrap();
    assert_eq!(p.connection.key_prefix, "2024");
    assert_eq!(p.connection.queue_prefix, "7");
}

#[test]
fn amqp_options_take_url_topology_and_queue_type() {
    let settings = ConnectionSettings {
        amqp_url: "amqp://u:p@h:1/v".into(),
        queue_type: QueueType::Quorum,
        queue_prefix: "x-".into(),
        ..ConnectionSettings::default()
    };
    let opts = AmqpOptions::from(&settings);
    assert_eq!(opts.url, settings.amqp_url);
    assert_eq!(opts.topology.execution_queue, "x-workflow.execution");
    assert_eq!(opts.queue_type, QueueType::Quorum);
    assert_eq!(opts.prefetch, AmqpOptions::default().prefetch);
}
