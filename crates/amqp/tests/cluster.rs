//! A URL list (`amqp://a,amqp://b,…`): the broker connects to the first node that answers and,
//! when its connection is lost, moves to the next, keeping confirmed publishing and its
//! consumers. Once through two TCP proxies in front of the shared broker (fast, every run), once
//! on a 3-node cluster of the test's own (`scripts/cluster-rabbitmq`) with quorum queues and a
//! node stopped under load. The names contain `reconnect`: nextest runs them one at a time.

mod support;

use baton_amqp::{AmqpOptions, Broker, Deliveries, Outgoing, QueueType};
use baton_testkit::RabbitCluster;
use std::collections::BTreeSet;
use std::time::Duration;
use support::{Proxy, broker_addr, cleanup, connect, eventually, next_within, unique_options};

async fn publish_one(broker: &Broker, queue: &str, body: String) {
    broker
        .publish(vec![Outgoing::new(
            queue.to_owned(),
            body.clone().into_bytes(),
        )])
        .await
        .unwrap_or_else(|e| panic!("publish {body}: {e}"));
}

/// Reads (and acks) until every body of `want` was seen or `within` passed; returns what was
/// seen (a redelivery after a node loss may repeat a body: it counts once).
async fn collect(
    deliveries: &mut Deliveries,
    want: &BTreeSet<String>,
    within: Duration,
) -> BTreeSet<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = BTreeSet::new();
    while !want.is_subset(&seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(d) = next_within(deliveries, left.min(Duration::from_secs(1))).await else {
            if left.is_zero() {
                break;
            }
            continue;
        };
        seen.insert(String::from_utf8_lossy(&d.body).into_owned());
        // A delivery of a lost connection cannot be acked: it comes back.
        let _ = d.ack().await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_a_url_list_connects_to_the_first_node_that_answers_and_moves_to_the_next_on_loss()
 {
    require_broker!();
    let base = unique_options();
    let target = broker_addr(&base.url);
    let (a, b) = (Proxy::start(target).await, Proxy::start(target).await);
    // A port nothing listens on comes first: it is skipped.
    let dead = baton_testkit::free_port();
    let node = |port: u16| support::url_via_port(&base.url, port);
    let opts = AmqpOptions {
        url: format!("{},{},{}", node(dead), node(a.port), node(b.port)),
        ..base
    };
    let broker = connect(&opts).await;
    let redacted = |port: u16| format!("amqp://guest:***@127.0.0.1:{port}/%2f");
    assert_eq!(broker.node(), Some(redacted(a.port)));
    assert_eq!(broker.health().node, Some(redacted(a.port)));
    let queue = opts.topology.execution_queue.clone();
    let mut deliveries = broker.consume(&queue, "cluster-survivor").await.unwrap();
    publish_one(&broker, &queue, "before".into()).await;

    // Node a goes away (its port refuses connections from now on).
    a.cut();
    publish_one(&broker, &queue, "after".into()).await;
    eventually("the broker on node b", Duration::from_secs(20), || {
        broker.node() == Some(redacted(b.port))
    })
    .await;
    let want: BTreeSet<String> = ["before", "after"].map(str::to_owned).into();
    let seen = collect(&mut deliveries, &want, Duration::from_secs(20)).await;
    assert!(want.is_subset(&seen), "the consumer on node b saw {seen:?}");
    assert!(broker.is_ready());

    // Node b goes away too: round robin skips the dead port and comes back to a.
    a.restore().await;
    b.cut();
    publish_one(&broker, &queue, "third".into()).await;
    eventually("the broker back on node a", Duration::from_secs(20), || {
        broker.node() == Some(redacted(a.port))
    })
    .await;
    let want: BTreeSet<String> = ["third"].map(str::to_owned).into();
    let seen = collect(&mut deliveries, &want, Duration::from_secs(20)).await;
    assert!(
        want.is_subset(&seen),
        "the consumer back on node a saw {seen:?}"
    );
    cleanup(broker).await;
}

/// The test's own cluster, or `None` (skipped) when RabbitMQ is not installed outside CI.
fn own_cluster() -> Option<RabbitCluster> {
    if !RabbitCluster::available() && !std::env::var("CI").is_ok_and(|v| v == "true") {
        eprintln!("SKIPPED: rabbitmq-server is not installed");
        return None;
    }
    Some(RabbitCluster::up().unwrap_or_else(|e| panic!("start the test's cluster: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_on_a_cluster_quorum_queues_keep_every_confirmed_message_when_the_connected_node_stops()
 {
    let Some(cluster) = tokio::task::spawn_blocking(own_cluster).await.unwrap() else {
        return;
    };
    let cluster = std::sync::Arc::new(cluster);
    let opts = AmqpOptions {
        url: cluster.amqp_url().to_owned(),
        queue_type: QueueType::Quorum,
        ..unique_options()
    };
    let broker = connect(&opts).await;
    let on = broker.node().expect("connected to a node");
    assert!(
        on.contains(&format!(":{}/", cluster.port(1))),
        "first node first: {on}"
    );
    let queue = opts.topology.execution_queue.clone();

    // The delivery limit is a policy (RFC 0004): set on one node, it applies cluster-wide.
    // (`--apply-to quorum_queues` exists only from RabbitMQ 3.12; `queues` works everywhere.)
    let pattern = format!("^{}$", regex_escape(&queue));
    let definition = r#"{"delivery-limit": 1000}"#;
    let c = cluster.clone();
    let listed = tokio::task::spawn_blocking(move || {
        c.ctl(
            1,
            &[
                "-q",
                "set_policy",
                "--apply-to",
                "queues",
                "baton-limit",
                &pattern,
                definition,
            ],
        )?;
        c.ctl(3, &["-q", "list_queues", "name", "type", "policy"])
    })
    .await
    .unwrap()
    .expect("set the policy, list the queues on node 3");
    let line = listed
        .lines()
        .find(|l| l.starts_with(&queue))
        .unwrap_or_default();
    assert!(
        line.contains("quorum") && line.contains("baton-limit"),
        "node 3 sees {queue} as a quorum queue under the policy: {listed}"
    );

    let mut deliveries = broker.consume(&queue, "cluster-consumer").await.unwrap();
    // Publishes run on while node 1 (the connected one) stops: each must be confirmed.
    let publisher = {
        let broker = broker.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                publish_one(&broker, &queue, format!("m{i}")).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_node(1))
        .await
        .unwrap()
        .expect("stop node 1");
    publisher
        .await
        .expect("every publish confirmed across the node loss");
    let now_on = broker.node().expect("connected again");
    assert!(
        !now_on.contains(&format!(":{}/", cluster.port(1))),
        "moved off node 1: {now_on}"
    );

    let want: BTreeSet<String> = (0..200).map(|i| format!("m{i}")).collect();
    let seen = collect(&mut deliveries, &want, Duration::from_secs(60)).await;
    let missing: Vec<_> = want.difference(&seen).collect();
    assert!(missing.is_empty(), "lost across the node loss: {missing:?}");

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_node(1))
        .await
        .unwrap()
        .expect("start node 1 again");
    publish_one(&broker, &queue, "after the restart".into()).await;
    let want: BTreeSet<String> = ["after the restart"].map(str::to_owned).into();
    assert!(want.is_subset(&collect(&mut deliveries, &want, Duration::from_secs(30)).await));
    cleanup(broker).await;
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}

fn regex_escape(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            let escape = !c.is_ascii_alphanumeric() && c != '-' && c != '_';
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect()
}
