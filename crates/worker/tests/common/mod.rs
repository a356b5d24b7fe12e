//! A worker in this process on the real RabbitMQ and Redis, with queue and key prefixes of its
//! own, and the queues a test reads (dead letters, completions). Shared by the worker's
//! integration tests.

#![allow(dead_code)]

use std::time::Duration;

use baton_amqp::{Broker, Deliveries, Outgoing, REASON_HEADER};
use baton_worker::{Settings, Worker};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct Env {
    pub broker: Broker,
    pub execution_queue: String,
    pub dead_letters: Deliveries,
    pub completions: Deliveries,
    pub shutdown: CancellationToken,
    pub prefix: String,
    /// Where the worker reads definitions by reference.
    pub definitions: baton_redis::DefinitionStore,
}

impl Env {
    /// One worker with one prefetch slot and one hop at a time: a delivery left unsettled
    /// would stop it.
    pub async fn start(test: &str, registry: baton_engine::NodeRegistry) -> Self {
        let prefix = baton_testkit::unique_prefix(test);
        let mut settings = Settings::default();
        settings.connection.amqp_url = std::env::var("BATON_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        settings.connection.redis_url = redis_url();
        settings.connection.queue_prefix = format!("{prefix}.");
        settings.connection.key_prefix = prefix.clone();
        settings.prefetch = 1;
        settings.concurrency = 1;
        let worker = Worker::connect(settings, registry)
            .await
            .expect("worker connects to RabbitMQ and Redis (scripts/services starts them)");
        let definitions = worker.store.definitions();
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
            definitions,
        }
    }

    pub async fn start_execution(&self, workflow: &Value, execution_id: &str) {
        let start = json!({
            "workflow_id": workflow["name"],
            "execution_id": execution_id,
            "current_node": "$start",
            "workflow_definition": workflow,
            "accumulated_context": {"$input": {}},
        });
        self.publish_start(&start).await;
    }

    /// Publishes a start message as given.
    pub async fn publish_start(&self, start: &Value) {
        let body = serde_json::to_vec(start).unwrap();
        self.broker
            .publish(vec![Outgoing::to_queue(&self.execution_queue, body)])
            .await
            .unwrap();
    }

    /// The next dead-lettered message's reason and body.
    pub async fn dead_letter(&mut self) -> (String, Value) {
        let d = next(&mut self.dead_letters).await;
        let reason = d.header(REASON_HEADER).unwrap_or_default().to_owned();
        let body = serde_json::from_slice(&d.body).unwrap_or(Value::Null);
        d.ack().await.unwrap();
        (reason, body)
    }

    /// Every completion of `execution_id` seen until one arrives and then no other for a
    /// moment (a second one would show here).
    pub async fn completions_of(&mut self, execution_id: &str) -> Vec<Value> {
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

    pub async fn stop(self) {
        let _ = self.broker.delete_topology().await;
        self.shutdown.cancel();
        let _ = baton_testkit::delete_keys(&redis_url(), &self.prefix).await;
    }
}

pub fn redis_url() -> String {
    std::env::var("BATON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

pub async fn next(deliveries: &mut Deliveries) -> baton_amqp::Delivery {
    tokio::time::timeout(Duration::from_secs(60), deliveries.next())
        .await
        .expect("a message within 60 s")
        .expect("the consumer is open")
}

pub fn one_node(name: &str, node_type: &str) -> Value {
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
