//! In-memory adapters for the engine's ports, and the embedded runtime built from them.

pub mod catalog;
pub mod events;
pub mod queue;
pub mod runtime;
pub mod store;

pub use catalog::MemoryCatalog;
pub use events::{Event, MemoryEvents};
pub use queue::MemoryQueue;
pub use runtime::{EmbeddedRuntime, MemoryDefinitions};
pub use store::MemoryStore;
