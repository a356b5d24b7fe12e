//! One module per subcommand.

pub mod bench;
pub mod cancel;
pub mod config;
pub mod dev;
pub mod dlq;
pub mod docs;
pub mod executions;
pub mod healthcheck;
pub mod master;
pub mod master_client;
pub mod nodes;
pub mod run;
pub mod schema;
pub mod signal;
pub mod signals;
pub mod submit;
pub mod submit_existing;
pub mod test;
pub mod validate;
pub mod watch;
pub mod worker;
