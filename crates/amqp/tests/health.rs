//! Health without locks: what `Broker::health` and `Deliveries::health` report while the
//! connection works, while it hangs without closing (a wedged lapin looks the same from
//! here), and for a consumer that is cancelled or whose deliveries are dropped unsettled.
//! The hanging connection goes through a TCP proxy of the test's own; the test name contains
//! `reconnect`, so nextest runs it in the `broker` group.

mod support;

use baton_amqp::{AmqpOptions, Outgoing};
use std::time::{Duration, Instant};
use support::{
    Proxy, broker_addr, cleanup, connect, eventually, expect_delivery, unique_options, url_via_port,
};

async fn publish_one(broker: &baton_amqp::Broker, queue: &str, body: &[u8]) {
    broker
        .publish(vec![Outgoing::new(queue, body.to_vec())])
        .await
        .expect("publish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_rebuilds_a_session_whose_peer_hangs_and_health_says_so_meanwhile() {
    require_broker!();
    let base = unique_options();
    let proxy = Proxy::start(broker_addr(&base.url)).await;
    let opts = AmqpOptions {
        url: url_via_port(&base.url, proxy.port),
        publish_timeout: Duration::from_secs(3),
        ..base
    };
    let broker = connect(&opts).await;
    let queue = opts.topology.execution_queue.clone();
    let mut deliveries = broker.consume(&queue, "").await.unwrap();
    publish_one(&broker, &queue, b"1").await;
    expect_delivery(&mut deliveries).await.ack().await.unwrap();
    let health = broker.health();
    assert!(health.ready && health.usable(), "{health:?}");
    assert!(deliveries.health().active);

    // The peer stops answering but keeps the TCP connection open: no error, no close. The
    // publish gets no confirm within its deadline; the supervisor's probe gets no answer.
    proxy.freeze();
    let started = Instant::now();
    let stuck = broker
        .publish(vec![Outgoing::new(queue.clone(), b"2".to_vec())])
        .await;
    assert!(stuck.is_err(), "a publish into a hung connection must fail");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the publish deadline held: {:?}",
        started.elapsed()
    );
    eventually(
        "the hung session is given up (not ready)",
        Duration::from_secs(30),
        || !broker.health().ready,
    )
    .await;
    let health = broker.health();
    assert!(
        health.wedged_publishes + health.failed_probes >= 1,
        "{health:?}"
    );
    assert!(health.down_for.is_some(), "{health:?}");
    eventually(
        "the consumer reports it is not consuming",
        Duration::from_secs(10),
        || !deliveries.health().active,
    )
    .await;
    assert!(
        health.supervisor_silent_for < Duration::from_secs(20),
        "the supervisor keeps turning: {health:?}"
    );

    // The peer answers again: a new session, the consumer re-created, publishing works.
    proxy.restore().await;
    eventually("ready again", Duration::from_secs(60), || {
        broker.health().ready
    })
    .await;
    eventually("consuming again", Duration::from_secs(30), || {
        deliveries.health().active
    })
    .await;
    publish_one(&broker, &queue, b"3").await;
    loop {
        let d = expect_delivery(&mut deliveries).await;
        let body = d.body.clone();
        d.ack().await.unwrap();
        if body == b"3" {
            break;
        }
    }
    assert_eq!(broker.health().down_for, None);
    cleanup(broker).await;
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_consumer_reports_it_ended_and_dropped_deliveries_hold_their_slots() {
    require_broker!();
    let opts = AmqpOptions {
        prefetch: 2,
        ..unique_options()
    };
    let broker = connect(&opts).await;
    let queue = opts.topology.execution_queue.clone();
    let mut deliveries = broker.consume(&queue, "").await.unwrap();
    let probe = deliveries.health_probe();
    for body in [b"1", b"2", b"3"] {
        publish_one(&broker, &queue, body).await;
    }
    let first = expect_delivery(&mut deliveries).await;
    let second = expect_delivery(&mut deliveries).await;
    assert_eq!(probe.health().unsettled, 2);
    first.ack().await.unwrap();
    // A handler that panics drops its delivery unsettled: it keeps its prefetch slot.
    drop(second);
    let h = probe.health();
    assert_eq!((h.unsettled, h.leaked, h.free_slots), (0, 1, 1), "{h:?}");
    assert!(h.active && !h.ended, "{h:?}");

    deliveries.cancel().await;
    eventually(
        "the consumer reports it ended",
        Duration::from_secs(10),
        || probe.health().ended,
    )
    .await;
    assert!(!probe.health().active);
    drop(deliveries);
    cleanup(broker).await;
}
