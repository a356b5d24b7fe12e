//! A worker in this process, on the real RabbitMQ and Redis (queue and key prefixes of its
//! own): a node that panics fails its hop, the delivery is dead-lettered with the panic's
//! message and settled (one prefetch slot: the next execution still runs), and a start
//! dead-lettered for an invalid definition ends its execution with one failed completion.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use baton_core::spec::{NodeClass, NodeSpec};
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use common::{Env, one_node};

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
            pure: false,
        },
    }));
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_node_is_dead_lettered_its_execution_fails_once_and_the_worker_goes_on() {
    let mut env = Env::start("panic-contained", registry()).await;
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
    let mut env = Env::start("invalid-start", registry()).await;
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
