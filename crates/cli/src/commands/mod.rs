//! One module per subcommand.

pub mod bench;
pub mod cancel;
pub mod dev;
pub mod healthcheck;
pub mod master;
pub mod nodes;
pub mod run;
pub mod signal;
pub mod submit;
pub mod validate;
pub mod worker;
