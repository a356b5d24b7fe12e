//! Reconnects: the broker closes our connection, the network drops, the topology disappears.
//! Each test only disturbs its own connection (unique connection name / its own TCP proxy), so
//! they can share the broker with other tests; nextest still runs them in the `broker` group.

mod support;

use baton_amqp::{AmqpOptions, Broker, Outgoing};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{
    Proxy, broker_addr, cleanup, close_connections_named, connect, eventually, expect_delivery,
    next_within, unique_options, url_via_port,
};

async fn publish_one(broker: &Broker, queue: &str, body: &[u8]) {
    broker
        .publish(vec![Outgoing::new(queue.to_owned(), body.to_vec())])
        .await
        .unwrap_or_else(|e| panic!("publish {:?}: {e}", String::from_utf8_lossy(body)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_after_the_broker_closes_the_connection() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let name = broker.connection_name().to_owned();
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "survivor")
        .await
        .unwrap();
    publish_one(&broker, &opts.topology.execution_queue, b"before").await;
    expect_delivery(&mut deliveries).await.ack().await.unwrap();

    // Held unacked across the drop: the broker redelivers it.
    publish_one(&broker, &opts.topology.execution_queue, b"held").await;
    let held = expect_delivery(&mut deliveries).await;
    assert!(!held.redelivered);

    let Some(closed) = close_connections_named(&name) else {
        eprintln!("SKIPPED: rabbitmqctl unavailable");
        return;
    };
    assert_eq!(closed, 1, "exactly our connection is closed");

    // Acking a delivery of the dead connection is a no-op.
    held.ack().await.unwrap();

    // Publishing waits for the recovery and succeeds.
    let started = Instant::now();
    publish_one(&broker, &opts.topology.execution_queue, b"after").await;
    eprintln!("publish after the close took {:?}", started.elapsed());

    // The same stream continues: the held message (redelivered) and the new one.
    let mut got = BTreeMap::new();
    while got.len() < 2 {
        let d = expect_delivery(&mut deliveries).await;
        got.insert(String::from_utf8(d.body.clone()).unwrap(), d.redelivered);
        d.ack().await.unwrap();
    }
    assert_eq!(got.get("held"), Some(&true), "{got:?}");
    assert_eq!(got.get("after"), Some(&false), "{got:?}");
    eventually("ready again", Duration::from_secs(10), || broker.is_ready()).await;

    // And again: a second close is survived as well.
    assert_eq!(close_connections_named(&name), Some(1));
    publish_one(&broker, &opts.topology.execution_queue, b"after-2").await;
    let d = expect_delivery(&mut deliveries).await;
    assert_eq!(d.body, b"after-2");
    d.ack().await.unwrap();
    assert!(
        next_within(&mut deliveries, Duration::from_millis(300))
            .await
            .is_none()
    );
    cleanup(broker).await;
}

/// How an outage looks from the client.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// Connections dropped, new ones refused (the broker is down): lapin's own recovery copes.
    Refused,
    /// Connections dropped, new ones accepted and closed at once (a proxy or load balancer
    /// without a backend): lapin's recovery stalls in its handshake afterwards, so the
    /// supervisor rebuilds the connection itself.
    AcceptedAndClosed,
}

async fn survive_outage(outage: Outage) {
    let base = unique_options();
    let proxy = Proxy::start(broker_addr(&base.url)).await;
    let opts = AmqpOptions {
        url: url_via_port(&base.url, proxy.port),
        ..base
    };
    let broker = connect(&opts).await;
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    publish_one(&broker, &opts.topology.execution_queue, b"1").await;
    let held = expect_delivery(&mut deliveries).await;

    // Outage of 3 s.
    match outage {
        Outage::Refused => proxy.cut(),
        Outage::AcceptedAndClosed => proxy.drop_all(),
    }
    eventually(
        "not ready during the outage",
        Duration::from_secs(5),
        || !broker.is_ready(),
    )
    .await;
    // Settling a delivery of the lost connection is a no-op.
    held.ack().await.unwrap();
    let publisher = {
        let broker = broker.clone();
        let queue = opts.topology.execution_queue.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            publish_one(&broker, &queue, b"2").await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore().await;
    let waited = publisher.await.unwrap();
    eprintln!("{outage:?}: the publish waited {waited:?} for the recovery");
    assert!(waited >= Duration::from_secs(2), "{waited:?}");

    // The stream continues: the unsettled message is redelivered, then the new one.
    let mut got = BTreeMap::new();
    while got.len() < 2 {
        let d = expect_delivery(&mut deliveries).await;
        got.insert(String::from_utf8(d.body.clone()).unwrap(), d.redelivered);
        d.ack().await.unwrap();
    }
    assert_eq!(got.get("1"), Some(&true), "{got:?}");
    assert_eq!(got.get("2"), Some(&false), "{got:?}");
    eventually("ready again", Duration::from_secs(10), || broker.is_ready()).await;
    cleanup(broker).await;
    // The proxy lives until the end of the test (the broker connects through it).
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_after_the_broker_was_unreachable() {
    require_broker!();
    survive_outage(Outage::Refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_when_lapin_recovery_stalls() {
    require_broker!();
    survive_outage(Outage::AcceptedAndClosed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_subscription_declares_its_queue_again() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut subscription = broker
        .subscribe(std::slice::from_ref(&opts.topology.status_queue))
        .await
        .unwrap();
    publish_one(&broker, &opts.topology.status_queue, b"1").await;
    expect_delivery(&mut subscription)
        .await
        .ack()
        .await
        .unwrap();

    // The subscription queue disappears (as a non-durable queue does when the broker
    // restarts): the consumer is re-created and declares and binds it again.
    let conn = lapin::Connection::connect(&opts.url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_delete(
            subscription.queue().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let _ = conn.close(200, "OK".into()).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        publish_one(&broker, &opts.topology.status_queue, b"2").await;
        if let Some(d) = next_within(&mut subscription, Duration::from_millis(300)).await {
            assert_eq!(d.body, b"2");
            d.ack().await.unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "subscription never came back");
    }
    subscription.cancel().await;
    cleanup(broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_redeclares_the_topology_when_the_queue_disappears() {
    require_broker!();
    let opts = AmqpOptions {
        publish_timeout: Duration::from_secs(2),
        ..unique_options()
    };
    let broker = connect(&opts).await;
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    publish_one(&broker, &opts.topology.execution_queue, b"1").await;
    expect_delivery(&mut deliveries).await.ack().await.unwrap();

    // Someone deletes the queues and the exchange: the broker cancels our consumer; re-creating
    // it fails with NOT_FOUND, so the supervisor declares the topology again.
    let vandal = connect(&opts).await;
    vandal.delete_topology().await.unwrap();
    vandal.close().await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match broker
            .publish(vec![Outgoing::new(
                opts.topology.execution_queue.clone(),
                b"2".to_vec(),
            )])
            .await
        {
            Ok(()) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let d = expect_delivery(&mut deliveries).await;
    assert_eq!(d.body, b"2");
    d.ack().await.unwrap();
    assert!(broker.is_ready());
    cleanup(broker).await;
}
