//! Credentials: a node's `{"$credential": id}` reference is revealed from the vault right
//! before it runs, and only there — if the credential's scope admits the execution's workflow
//! (its hosts are checked by the node, on every target it sends the credential to).

use baton_core::graph::CompiledNode;
use serde_json::{Map, Value};

use super::engine::Engine;
use crate::credential_scope::UsedCredential;
use crate::node::NodeError;
use crate::ports::RevealError;
use baton_core::ErrorCode;

impl Engine {
    /// The decrypted fields of the vault credential `node` references, if it references one,
    /// with its id and scope; `CREDENTIAL_SCOPE` when `workflow_id` may not use it.
    pub(super) async fn reveal_credentials(
        &self,
        node: &CompiledNode,
        workflow_id: &str,
    ) -> Result<Option<(Map<String, Value>, UsedCredential)>, NodeError> {
        let Some(reference) = node.credentials.as_ref().and_then(credential_reference) else {
            return Ok(None);
        };
        let fail = |code: ErrorCode, message: String, retryable: bool| NodeError {
            message,
            code,
            retryable,
        };
        let Some(vault) = &self.vault else {
            return Err(fail(
                ErrorCode::CredentialVaultMissing,
                format!(
                    "node `{}` ({}) uses credential `{reference}`, but this runtime has no \
                     credential vault (the workers, the master and `baton dev` get one from \
                     BATON_CREDENTIALS_KEY)",
                    node.name, node.id
                ),
                false,
            ));
        };
        match vault.reveal(reference).await {
            Ok(Some(revealed)) if !revealed.scope.permits_workflow(workflow_id) => Err(fail(
                ErrorCode::CredentialScope,
                format!(
                    "node `{}` ({}): credential `{reference}` may not be used by workflow \
                     `{workflow_id}`: its `workflows` are {:?}",
                    node.name,
                    node.id,
                    revealed.scope.workflows.as_deref().unwrap_or_default()
                ),
                false,
            )),
            Ok(Some(revealed)) => Ok(Some((
                revealed.fields,
                UsedCredential {
                    credential_id: reference.to_string(),
                    scope: revealed.scope,
                },
            ))),
            Ok(None) => Err(fail(
                ErrorCode::CredentialNotFound,
                format!(
                    "node `{}` ({}) uses credential `{reference}`, which is not in the vault",
                    node.name, node.id
                ),
                false,
            )),
            Err(RevealError::Unreadable(e)) => Err(fail(
                ErrorCode::CredentialUnreadable,
                format!(
                    "node `{}` ({}): credential `{reference}` cannot be used: {e}",
                    node.name, node.id
                ),
                false,
            )),
            // A vault outage may pass: retryable, like any node failure.
            Err(RevealError::Unavailable(e)) => Err(fail(
                ErrorCode::CredentialUnavailable,
                format!(
                    "node `{}` ({}): credential `{reference}` could not be read: {e}",
                    node.name, node.id
                ),
                true,
            )),
        }
    }
}

/// The vault id in a node's `"credentials": {"$credential": "<id>"}`, if it is a reference.
pub fn credential_reference(credentials: &Map<String, Value>) -> Option<&str> {
    credentials.get(CREDENTIAL_REF_KEY).and_then(Value::as_str)
}

/// The key that makes a node's `credentials` a reference to a vault credential.
pub const CREDENTIAL_REF_KEY: &str = "$credential";
