//! Broker outages while executions of slow `http` chains run, on a RabbitMQ node of the test's
//! own (`RabbitNode`), taken down by `rabbitmqctl stop_app`, by `rabbitmqctl stop` or by
//! SIGKILL, for 10 s or 30 s. Afterwards every execution has exactly one completion and repeats
//! at most the one node that was in flight when the broker went away; the workers are ready
//! again and a normal execution completes.
//!
//! The completions are read by an observer that connects only after the outage: the durable
//! completion queue keeps them, and an observer's own ack lost in the outage cannot pass for a
//! duplicated completion.
//!
//! CI runs the 10 s SIGKILL outage; the other five are `#[ignore]`d (long form):
//! `cargo nextest run -p baton-e2e --run-ignored ignored-only chaos_broker`. The test names
//! contain `broker_restart`, which `.config/nextest.toml` runs one at a time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::chaos::{Figures, FxApi, Tally, fx_chain_workflow, replace_exited, start_executions};
use common::distributed::{BOUND, Cluster, RabbitNode, new_execution_id};
use common::outage::{BrokerFault, outage};

const EXECUTIONS: usize = 20;
const NODES: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_broker_restart_sigkill_10s_loses_nothing_and_repeats_at_most_one_node() {
    broker_outage(BrokerFault::Kill, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form: --run-ignored ignored-only chaos_broker"]
async fn chaos_broker_restart_long_sigkill_30s() {
    broker_outage(BrokerFault::Kill, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form: --run-ignored ignored-only chaos_broker"]
async fn chaos_broker_restart_long_stop_10s() {
    broker_outage(BrokerFault::Stop, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form: --run-ignored ignored-only chaos_broker"]
async fn chaos_broker_restart_long_stop_30s() {
    broker_outage(BrokerFault::Stop, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form: --run-ignored ignored-only chaos_broker"]
async fn chaos_broker_restart_long_stop_app_10s() {
    broker_outage(BrokerFault::StopApp, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form: --run-ignored ignored-only chaos_broker"]
async fn chaos_broker_restart_long_stop_app_30s() {
    broker_outage(BrokerFault::StopApp, Duration::from_secs(30)).await;
}

async fn broker_outage(fault: BrokerFault, down: Duration) {
    let name = format!("broker_restart_{fault:?}_{}s", down.as_secs()).to_lowercase();
    if !RabbitNode::available() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true: rabbitmq-server must be installed for this test"
        );
        eprintln!("SKIPPED: rabbitmq-server/rabbitmqctl are not installed");
        return;
    }
    let t0 = Instant::now();
    // Declared before the cluster: dropped after it, so the cluster's cleanup still reaches it.
    let node = Arc::new(
        tokio::task::spawn_blocking(RabbitNode::start)
            .await
            .expect("start the RabbitMQ node"),
    );
    eprintln!(
        "[{:?}] RabbitMQ node {} up on port {}",
        t0.elapsed(),
        node.name,
        node.port
    );
    let api = FxApi::start((250, 350));
    let mut cluster = Cluster::with_amqp_url(node.amqp_url());
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let workflow = fx_chain_workflow("chaos-chain", NODES);
    let ids: Vec<String> = (0..EXECUTIONS).map(|_| new_execution_id()).collect();
    {
        let broker = cluster.broker().await;
        start_executions(&cluster, &broker, &workflow, &ids, &api).await;
        broker.close().await;
    }
    // The outage starts mid-chain: once about three nodes per execution have been called.
    let deadline = Instant::now() + BOUND;
    while api.total() < EXECUTIONS * 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls_before = api.total();
    eprintln!(
        "[{:?}] {calls_before} calls made ({} in flight); {fault:?} for {down:?}",
        t0.elapsed(),
        api.in_flight()
    );
    let n = node.clone();
    let went_down = Instant::now();
    tokio::task::spawn_blocking(move || outage(&n, fault, down))
        .await
        .expect("the outage");
    let came_back = Instant::now();
    eprintln!(
        "[{:?}] RabbitMQ node back ({} calls made meanwhile)",
        t0.elapsed(),
        api.total() - calls_before
    );

    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut tally = Tally::default();
    // A worker that exits because it cannot rebuild its session is restarted, as an
    // orchestrator would: that is allowed; losing or doubling work is not.
    let (all, restarts) = tally
        .wait_all_restarting(&mut completions, &ids, BOUND * 2, &mut cluster, 2, &[])
        .await;
    eprintln!(
        "[{:?}] completions for {}/{} executions",
        t0.elapsed(),
        tally.done(&ids),
        ids.len()
    );
    let mut not_ready = Vec::new();
    for w in cluster.running() {
        if !cluster.wait_ready(w, BOUND).await {
            not_ready.push(cluster.worker(w).name.clone());
        }
    }
    let restarts = restarts + replace_exited(&mut cluster, 2, &[]).await;
    let probe = vec![new_execution_id()];
    start_executions(
        &cluster,
        &broker,
        &fx_chain_workflow("probe", 3),
        &probe,
        &api,
    )
    .await;
    tally.wait_all(&mut completions, &probe, BOUND).await;
    tally.drain(&mut completions, Duration::from_secs(10)).await;

    let figures = Figures::measure(&api, &tally, &ids, NODES, &[(went_down, came_back)]);
    println!(
        "{} worker_restarts={restarts} elapsed={:?}",
        figures.summary(&name),
        t0.elapsed()
    );
    eprintln!("{}", figures.summary(&name));
    // One node per execution was in flight when the broker went away: it may run again.
    let mut failed = figures.violations(EXECUTIONS, Some(1));
    failed.extend(tally.aftermath(all, &not_ready, &probe[0]));
    broker.close().await;
    assert!(
        failed.is_empty(),
        "{}\n{}\n{}",
        figures.summary(&name),
        failed.join("\n"),
        cluster.logs()
    );
}
