//! The stateless worker service (`baton worker`): consumes the execution queue, runs each hop
//! with the engine against Redis state, publishes successors, statuses and completions with
//! publisher confirms, dead-letters poison, serves health and metrics, drains on SIGTERM.

pub mod budget;
pub mod completion_relay;
pub mod definitions;
pub mod events_guard;
pub mod failure;
pub mod health;
mod intake_metrics;
pub mod metrics_names;
pub mod service;
pub mod settings;
mod settle;
mod start;
pub mod transport;
pub mod watchdog;

pub use service::{Worker, WorkerError};
pub use settings::Settings;
