//! Signals on Redis: waiters and buffered signals in the `{e}:signals` hash, taken and
//! delivered atomically by one script.

use async_trait::async_trait;
use baton_engine::ports::{PortError, SignalStore, SignalWaiter};
use serde_json::Value;

use crate::reply;
use crate::store::RedisStore;

#[async_trait]
impl SignalStore for RedisStore {
    async fn await_signal(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
        payload: String,
    ) -> Result<Option<Value>, PortError> {
        let (tag, rest) = self
            .signal_op(execution_id, &["await", name, waiter_id, &payload], true)
            .await?;
        match (tag.as_str(), rest.as_slice()) {
            ("buffered", [data]) => {
                let text = reply::text(data)?;
                Ok(Some(serde_json::from_str(&text).map_err(|e| {
                    PortError::permanent(format!("buffered signal is not JSON: {e}"), e)
                })?))
            }
            ("registered", _) => Ok(None),
            _ => Err(PortError::permanent_msg(format!(
                "await_signal answered `{tag}`"
            ))),
        }
    }

    async fn deliver_signal(
        &self,
        execution_id: &str,
        name: &str,
        data: Value,
    ) -> Result<Vec<SignalWaiter>, PortError> {
        // Fenced: the waiters it took stay in the hash until `signal_resumed`, so an error
        // after the script (a replica that did not acknowledge) loses nothing: the retried
        // delivery gets them again.
        let (tag, rest) = self
            .signal_op(execution_id, &["deliver", name, &data.to_string()], true)
            .await?;
        match tag.as_str() {
            "delivered" => rest
                .chunks(2)
                .map(|pair| match pair {
                    [id, payload] => Ok(SignalWaiter {
                        waiter_id: reply::text(id)?,
                        resume: reply::text(payload)?,
                    }),
                    _ => Err(PortError::permanent_msg(
                        "deliver_signal answered an odd list",
                    )),
                })
                .collect(),
            "stored" => Ok(Vec::new()),
            _ => Err(PortError::permanent_msg(format!(
                "deliver_signal answered `{tag}`"
            ))),
        }
    }

    async fn signal_resumed(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
    ) -> Result<(), PortError> {
        let (tag, _) = self
            .signal_op(execution_id, &["resumed", name, waiter_id], false)
            .await?;
        match tag.as_str() {
            "resumed" => Ok(()),
            _ => Err(PortError::permanent_msg(format!(
                "signal_resumed answered `{tag}`"
            ))),
        }
    }

    async fn remove_signal_waiter(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
    ) -> Result<bool, PortError> {
        let (tag, rest) = self
            .signal_op(execution_id, &["remove", name, waiter_id], true)
            .await?;
        match (tag.as_str(), rest.as_slice()) {
            ("removed", [n]) => Ok(reply::int(n)? == 1),
            _ => Err(PortError::permanent_msg(format!(
                "remove_signal_waiter answered `{tag}`"
            ))),
        }
    }
}
