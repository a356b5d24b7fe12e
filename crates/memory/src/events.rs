//! `MemoryEvents`: status and completion events on a broadcast channel, plus a per-execution
//! completion slot so callers can await "their" completion.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use baton_core::message::{Completion, StatusEvent};
use baton_engine::ports::{EventSink, PortError};
use tokio::sync::{broadcast, oneshot};

/// An event as observers see it.
// Statuses are the common case; boxing them would allocate per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    Status(StatusEvent),
    Completion(Completion),
}

#[derive(Debug)]
pub struct MemoryEvents {
    tx: broadcast::Sender<Event>,
    waiters: Mutex<HashMap<String, oneshot::Sender<Completion>>>,
    done: Mutex<HashMap<String, Completion>>,
}

impl Default for MemoryEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEvents {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            tx,
            waiters: Mutex::new(HashMap::new()),
            done: Mutex::new(HashMap::new()),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Resolves when the execution's completion is emitted.
    pub fn completion_of(&self, execution_id: &str) -> oneshot::Receiver<Completion> {
        let (tx, rx) = oneshot::channel();
        if let Some(c) = self
            .done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(execution_id)
        {
            let _ = tx.send(c);
        } else {
            self.waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(execution_id.to_string(), tx);
        }
        rx
    }
}

#[async_trait]
impl EventSink for MemoryEvents {
    async fn status(&self, event: StatusEvent) -> Result<(), PortError> {
        let _ = self.tx.send(Event::Status(event));
        Ok(())
    }

    fn wants_status(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    async fn completion(&self, completion: Completion) -> Result<(), PortError> {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Event::Completion(completion.clone()));
        }
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&completion.execution_id);
        match waiter {
            Some(w) => {
                let _ = w.send(completion);
            }
            None => {
                self.done
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(completion.execution_id.clone(), completion);
            }
        }
        Ok(())
    }
}
