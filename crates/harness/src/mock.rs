//! Mocks as a registry wrapper: every node type of the registry is wrapped in a `Mocked`
//! node that, for a mocked node id, returns the mocked outcome of the attempt instead of
//! running the real implementation (no HTTP call, no script), and otherwise delegates. The
//! engine is not told anything: a mocked run is an ordinary node run to it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use baton_core::spec::NodeSpec;
use baton_engine::{Node, NodeError, NodeInput, NodeOutput, NodeRegistry};

use crate::file::Mock;

/// A node type whose runs of the mocked node ids return their mocks.
struct Mocked {
    inner: Arc<dyn Node>,
    mocks: Arc<BTreeMap<String, Vec<Mock>>>,
}

#[async_trait]
impl Node for Mocked {
    fn spec(&self) -> &NodeSpec {
        self.inner.spec()
    }

    fn check(&self, params: &serde_json::Value) -> Vec<baton_core::validate::Problem> {
        self.inner.check(params)
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let Some(attempts) = self.mocks.get(input.node_id) else {
            return self.inner.run(input).await;
        };
        // Attempt n gets the n-th mock; attempts past the list repeat the last one.
        let index = usize::try_from(input.attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        match attempts.get(index).or(attempts.last()) {
            Some(Mock::Output(v)) => Ok(NodeOutput::Value(v.clone())),
            Some(Mock::Error {
                code,
                message,
                retryable,
            }) => Err(NodeError {
                message: message.clone(),
                code: *code,
                retryable: *retryable,
            }),
            None => self.inner.run(input).await,
        }
    }
}

/// `registry` with every node type wrapped so the node ids in `mocks` return their mocks.
/// Without mocks it is returned as is.
pub fn mocked_registry(
    registry: &NodeRegistry,
    mocks: &BTreeMap<String, Vec<Mock>>,
) -> NodeRegistry {
    if mocks.is_empty() {
        return registry.clone();
    }
    let mocks = Arc::new(mocks.clone());
    let mut out = NodeRegistry::new();
    for node in registry.nodes() {
        out.register(Arc::new(Mocked {
            inner: node.clone(),
            mocks: mocks.clone(),
        }));
    }
    out
}
