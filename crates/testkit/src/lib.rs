//! Helpers shared by `baton bench` and the tests: free TCP ports, unique ids and key prefixes,
//! deleting a run's Redis keys, a Redis Cluster of a test's own (`scripts/cluster`), `baton worker` child processes (ready on `/readyz`, killed on
//! drop, metrics read from `/metrics`), and polling a condition until a deadline instead of
//! sleeping a fixed time, and a RabbitMQ cluster of a test's own (`scripts/cluster-rabbitmq`).
//!
//! `baton bench` uses it at run time, so it must stay free of test-framework crates.

mod http;
mod ids;
mod ports;
mod rabbit_cluster;
mod redis_cluster;
mod redis_keys;
mod wait;
mod worker;

pub use http::{http_get, http_get_status, metric_sum};
pub use ids::{short_unique_id, unique_id, unique_prefix};
pub use ports::{free_port, try_free_port};
pub use rabbit_cluster::{ClusterError, ClusterLayout, RabbitCluster};
pub use redis_cluster::{ClusterError as RedisClusterError, RedisCluster};
pub use redis_keys::{delete_keys, delete_keys_blocking};
pub use wait::{eventually, wait_until};
pub use worker::{WorkerError, WorkerProcess};
