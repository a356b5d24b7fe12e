//! `MemoryQueue`: hop messages on an unbounded channel; delayed messages wait on a tokio timer
//! task, never on a worker.

use async_trait::async_trait;
use baton_core::message::HopMessage;
use baton_engine::ports::{HopQueue, PortError};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct MemoryQueue {
    tx: mpsc::UnboundedSender<HopMessage>,
}

impl MemoryQueue {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<HopMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }
}

#[async_trait]
impl HopQueue for MemoryQueue {
    async fn publish(&self, messages: Vec<HopMessage>) -> Result<(), PortError> {
        for m in messages {
            self.tx
                .send(m)
                .map_err(|_| PortError::transient_msg("in-memory queue closed"))?;
        }
        Ok(())
    }

    async fn publish_delayed(&self, message: HopMessage, delay_ms: u64) -> Result<(), PortError> {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            // If the runtime shut down meanwhile, the message has nowhere to go.
            let _ = tx.send(message);
        });
        Ok(())
    }
}
