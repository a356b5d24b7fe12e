//! Starting an execution from a Rune start message: its definition (inline, or by reference to
//! the definition store: RFC 0011), the node it starts at, and its trace context.

use baton_core::wire::{RuneStart, StartDefinition};
use baton_engine::StartRequest;
use baton_engine::ports::PortError;
use baton_telemetry::context;

use crate::definitions::DefinitionError;
use crate::service::Worker;

impl Worker {
    /// Starts the execution `start` names, in the trace `traceparent` (its message's header)
    /// names when there is one.
    pub(crate) async fn start_rune(
        &self,
        start: &RuneStart,
        traceparent: Option<String>,
    ) -> Result<(), StartError> {
        let wf = match &start.definition {
            StartDefinition::Inline(doc) => match self.definitions.register(doc).await {
                Ok(wf) => wf,
                Err(DefinitionError::Store(e)) => return Err(StartError::Port(e.into())),
                Err(e) => {
                    return Err(StartError::Invalid(format!(
                        "invalid workflow_definition: {e}"
                    )));
                }
            },
            // By reference (RFC 0011): compiled once per worker, loaded from the definition
            // store the first time.
            StartDefinition::Reference(reference) => {
                match self.definitions.ensure(reference).await {
                    Ok(wf) => wf,
                    Err(DefinitionError::Store(e)) => return Err(StartError::Port(e.into())),
                    Err(DefinitionError::Unknown(_)) => {
                        return Err(StartError::UnknownReference(reference.clone()));
                    }
                    Err(e) => {
                        return Err(StartError::Invalid(format!(
                            "invalid stored definition `{reference}`: {e}"
                        )));
                    }
                }
            }
        };
        // A Rune master may name the trigger itself (or Baton's `$start`): start at the start nodes.
        let start_at = if start.current_node == "$start" {
            None
        } else {
            let Some(node) = wf.node(&start.current_node) else {
                return Err(StartError::Invalid(format!(
                    "current_node `{}` is not a node of the workflow",
                    start.current_node
                )));
            };
            (!node.trigger).then_some(start.current_node.as_str())
        };
        let seed = start.seed();
        // The execution's trace: the start message's context (the master's API call, Rune's
        // caller), else a new one that starts here.
        let span = tracing::info_span!("start", workflow_id = %start.workflow_id(), execution_id = %start.execution_id);
        context::set_parent(&span, traceparent.as_deref());
        let started = async {
            let traceparent = context::current()
                .or(traceparent)
                .or_else(|| Some(context::new_root()));
            self.engine
                .start(
                    &wf,
                    StartRequest {
                        workflow_id: start.workflow_id(),
                        execution_id: start.execution_id.clone(),
                        seed,
                        start_at: start_at.map(str::to_string),
                        traceparent,
                    },
                )
                .await
                .map_err(StartError::Port)
        };
        tracing::Instrument::instrument(started, span).await
    }
}

/// Why a start message did not start its execution.
pub(crate) enum StartError {
    Invalid(String),
    /// A start by reference naming a definition that is not stored (expired, never stored).
    UnknownReference(String),
    /// A port failed: retried or dead-lettered on its kind.
    Port(PortError),
}
