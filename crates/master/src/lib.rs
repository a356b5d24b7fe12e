//! The master service (`baton master`, `baton dev`): an HTTP API to store workflows and to
//! start, trigger (webhooks, cron), watch (history, Server-Sent Events) and steer (cancel,
//! signal, replay) executions, plus the dashboard. RFC 0006.

pub mod api;
pub mod app;
pub mod backend;
pub mod cron;
pub mod fanout;
pub mod history;
pub mod metrics_names;
pub mod scheduler;
pub mod server;
pub mod settings;
pub mod webhook;
pub mod wiring;

pub use app::Master;
pub use server::HttpLimits;
pub use settings::MasterSettings;
pub use wiring::{Embedded, MasterError, distributed, embedded, serve, serve_with};
