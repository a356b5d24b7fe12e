//! A worker in this process, on the real RabbitMQ and Redis (queue and key prefixes of its
//! own): a node that panics fails its hop, the delivery is dead-lettered with the panic's
//! message and settled (one prefetch slot: the next execution still runs), and a start
//! dead-lettered for an invalid definition ends its execution with one failed completion.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use baton_amqp::{Broker, Deliveries, Outgoing, REASON_HEADER};
use baton_core::spec::{NodeClass, NodeSpec};
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use baton_worker::{Settings, Worker};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A node type whose every run panics.
struct PanickingNode {
    spec: NodeSpec,
}

#[async_trait]
impl Node for PanickingNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    async fn run(&self, _input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        panic!("kaboom in a node")
    }
}

fn registry() -> baton_engine::NodeRegistry {
    let mut registry = baton_nodes::registry();
    registry.register(Arc::new(PanickingNode {
        spec: NodeSpec {
            type_name: "panics",
            aliases: Vec::new(),
            class: NodeClass::Action,
            summary: "panics (tests)",
            params: Vec::new(),
            output: "never",
            raw_params: Vec::new(),
            example: "{}",
        },
    }));
    registry
}

struct Env {
    broker: Broker,
    execution_queue: String,
    dead_letters: Deliveries,
    completions: Deliveries,
    shutdown: CancellationToken,
    prefix: String,
}

impl Env {
    /// One worker with one prefetch slot and one hop at a time: a delivery left unsettled
    /// would stop it.
    async fn start(test: &str) -> Self {
        let prefix = baton_testkit::unique_prefix(test);
        let mut settings = Settings::default();
        settings.connection.amqp_url = std::env::var("BATON_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        settings.connection.redis_url = redis_url();
        settings.connection.queue_prefix = format!("{prefix}.");
        settings.connection.key_prefix = prefix.clone();
        settings.prefetch = 1;
        settings.concurrency = 1;
        let worker = Worker::connect(settings, registry())
            .await
            .expect("worker connects to RabbitMQ and Redis (scripts/services starts them)");
        let broker = worker.broker.clone();
        let topology = broker.options().topology.clone();
        let dead_letters = broker
            .consume(&topology.dead_letter_queue, &format!("{prefix}-dl"))
            .await
            .unwrap();
        let completions = broker
            .consume(&topology.completion_queue, &format!("{prefix}-done"))
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(worker.run(shutdown.clone()));
        Self {
            broker,
            execution_queue: topology.execution_queue,
            dead_letters,
            completions,
            shutdown,
            prefix,
        }
    }

    async fn start_execution(&self, workflow: &Value, execution_id: &str) {
        let start = json!({
            "workflow_id": workflow["name"],
            "execution_id": execution_id,
            "current_node": "$start",
            "workflow_definition": workflow,
            "accumulated_context": {"$input": {}},
        });
        let body = serde_json::to_vec(&start).unwrap();
        self.broker
            .publish(vec![Outgoing::to_queue(&self.execution_queue, body)])
            .await
            .unwrap();
    }

    /// The next dead-lettered message's reason and body.
    async fn dead_letter(&mut self) -> (String, Value) {
        let d = next(&mut self.dead_letters).await;
        let reason = d.header(REASON_HEADER).unwrap_or_default().to_owned();
        let body = serde_json::from_slice(&d.body).unwrap_or(Value::Null);
        d.ack().await.unwrap();
        (reason, body)
    }

    /// Every completion of `execution_id` seen until one arrives and then no other for a
    /// moment (a second one would show here).
    async fn completions_of(&mut self, execution_id: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let wait = if seen.is_empty() { 60 } else { 2 };
            let Ok(Some(d)) =
                tokio::time::timeout(Duration::from_secs(wait), self.completions.next()).await
            else {
                return seen;
            };
            let v: Value = serde_json::from_slice(&d.body).unwrap();
            d.ack().await.unwrap();
            if v["execution_id"] == execution_id {
                seen.push(v);
            }
        }
    }

    async fn stop(self) {
        let _ = self.broker.delete_topology().await;
        self.shutdown.cancel();
        let _ = baton_testkit::delete_keys(&redis_url(), &self.prefix).await;
    }
}

fn redis_url() -> String {
    std::env::var("BATON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

async fn next(deliveries: &mut Deliveries) -> baton_amqp::Delivery {
    tokio::time::timeout(Duration::from_secs(60), deliveries.next())
        .await
        .expect("a message within 60 s")
        .expect("the consumer is open")
}

fn one_node(name: &str, node_type: &str) -> Value {
    // Parameters a node type does not declare are validation errors.
    let parameters = if node_type == "log" {
        json!({"message": "hi", "level": "debug"})
    } else {
        json!({})
    };
    json!({"name": name, "nodes": [
        {"id": "only", "name": "Only", "type": node_type, "parameters": parameters}
    ], "edges": []})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_node_is_dead_lettered_its_execution_fails_once_and_the_worker_goes_on() {
    let mut env = Env::start("panic-contained").await;
    let panicking = uuid::Uuid::new_v4().to_string();
    env.start_execution(&one_node("panics", "panics"), &panicking)
        .await;
    let (reason, body) = env.dead_letter().await;
    assert_eq!(reason, "panicked: kaboom in a node");
    assert_eq!(body["node_id"], "only", "the hop message is kept: {body}");
    let completions = env.completions_of(&panicking).await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["status"], "failed");
    assert_eq!(
        completions[0]["failure_reason"],
        "node `only`: panicked: kaboom in a node"
    );
    // One prefetch slot: this runs only if the panicking delivery was settled.
    let next_one = uuid::Uuid::new_v4().to_string();
    env.start_execution(&one_node("fine", "log"), &next_one)
        .await;
    let completions = env.completions_of(&next_one).await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["status"], "completed");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_dead_lettered_for_an_invalid_definition_ends_its_execution_with_one_failed_completion()
 {
    let mut env = Env::start("invalid-start").await;
    let execution_id = uuid::Uuid::new_v4().to_string();
    env.start_execution(&one_node("bad", "no_such_node_type"), &execution_id)
        .await;
    let (reason, body) = env.dead_letter().await;
    assert!(
        reason.starts_with("invalid workflow_definition"),
        "{reason}"
    );
    assert_eq!(body["execution_id"], execution_id.as_str());
    let completions = env.completions_of(&execution_id).await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["status"], "failed");
    let failure = completions[0]["failure_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(failure.contains("invalid workflow_definition"), "{failure}");
    env.stop().await;
}
