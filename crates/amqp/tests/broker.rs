//! Broker behaviour against a real RabbitMQ: topology, publishing, consuming, settling.

mod support;

use baton_amqp::{
    AmqpOptions, Broker, DEAD_LETTERED_AT_HEADER, Error, Headers, Outgoing, QueueType,
    REASON_HEADER,
};
use std::collections::BTreeSet;
use std::time::Duration;
use support::{cleanup, connect, expect_delivery, next_within, unique_options};

#[tokio::test]
async fn topology_declared_twice_is_fine() {
    require_broker!();
    let opts = unique_options();
    let first = connect(&opts).await;
    assert!(first.is_ready());
    // A second broker (another worker) declares the same topology: idempotent.
    let second = connect(&opts).await;
    assert!(second.is_ready());
    assert_eq!(second.options(), &opts);
    // Both publish into the same queues.
    second
        .publish(vec![Outgoing::new(
            opts.topology.status_queue.clone(),
            b"{}".to_vec(),
        )])
        .await
        .unwrap();
    second.close().await;
    assert!(!second.is_ready());
    assert!(first.is_ready(), "closing one broker leaves the other");
    cleanup(first).await;
}

#[tokio::test]
async fn publish_consume_ack_round_trip_with_headers() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "round-trip")
        .await
        .unwrap();
    assert_eq!(deliveries.queue(), opts.topology.execution_queue);
    let body = br#"{"execution_id":"e1","node_id":"n1"}"#.to_vec();
    broker
        .publish(vec![
            Outgoing::new(opts.topology.execution_queue.clone(), body.clone())
                .with_header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .with_header("x-empty", ""),
        ])
        .await
        .unwrap();
    let delivery = expect_delivery(&mut deliveries).await;
    assert_eq!(delivery.body, body);
    assert_eq!(
        delivery.header("traceparent"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(delivery.header("x-empty"), Some(""));
    assert!(!delivery.redelivered);
    assert_eq!(delivery.routing_key, opts.topology.execution_queue);
    assert_eq!(delivery.exchange, opts.topology.exchange);
    assert_eq!(delivery.delivery_count, None);
    assert!(delivery.acked().await.unwrap(), "acked on a live channel");

    // Acked: not redelivered, even to a fresh consumer after this one is cancelled.
    deliveries.cancel().await;
    assert!(
        next_within(&mut deliveries, Duration::from_secs(2))
            .await
            .is_none(),
        "the stream ends after cancel"
    );
    let mut again = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    assert!(
        next_within(&mut again, Duration::from_millis(300))
            .await
            .is_none()
    );
    drop(again);
    cleanup(broker).await;
}

#[tokio::test]
async fn batch_goes_to_each_routing_key() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut execution = broker
        .consume(&opts.topology.execution_queue, "e")
        .await
        .unwrap();
    let mut status = broker
        .consume(&opts.topology.status_queue, "s")
        .await
        .unwrap();
    let mut completion = broker
        .consume(&opts.topology.completion_queue, "c")
        .await
        .unwrap();
    broker
        .publish(vec![
            Outgoing::new(opts.topology.status_queue.clone(), b"1".to_vec()),
            Outgoing::new(opts.topology.execution_queue.clone(), b"2".to_vec()),
            Outgoing::new(opts.topology.completion_queue.clone(), b"3".to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(expect_delivery(&mut status).await.body, b"1");
    assert_eq!(expect_delivery(&mut execution).await.body, b"2");
    assert_eq!(expect_delivery(&mut completion).await.body, b"3");
    broker.publish(Vec::new()).await.unwrap();
    cleanup(broker).await;
}

#[tokio::test]
async fn unroutable_publish_is_an_error() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let nowhere = format!("{}.nowhere", opts.topology.execution_queue);
    let err = broker
        .publish(vec![Outgoing::new(nowhere.clone(), b"{}".to_vec())])
        .await
        .unwrap_err();
    match &err {
        Error::Unroutable {
            routing_key,
            reply_code,
            ..
        } => {
            assert_eq!(routing_key, &nowhere);
            assert_eq!(*reply_code, 312);
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }
    assert!(!err.is_transient());

    // In a batch, the routable messages are still published and the batch fails.
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    let err = broker
        .publish(vec![
            Outgoing::new(opts.topology.execution_queue.clone(), b"ok".to_vec()),
            Outgoing::new(nowhere.clone(), b"lost".to_vec()),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unroutable { .. }), "{err}");
    assert_eq!(expect_delivery(&mut deliveries).await.body, b"ok");

    // The publishing channels are still usable.
    broker
        .publish(vec![Outgoing::new(
            opts.topology.execution_queue.clone(),
            b"after".to_vec(),
        )])
        .await
        .unwrap();
    assert_eq!(expect_delivery(&mut deliveries).await.body, b"after");
    cleanup(broker).await;
}

#[tokio::test]
async fn dead_letter_carries_the_reason() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut dead = broker
        .consume(&opts.topology.dead_letter_queue, "dlq")
        .await
        .unwrap();
    let mut original = Headers::new();
    original.insert("traceparent".into(), "00-abc-def-01".into());
    broker
        .dead_letter(
            b"not json".to_vec(),
            "invalid message: expected value",
            original,
        )
        .await
        .unwrap();
    let delivery = expect_delivery(&mut dead).await;
    assert_eq!(delivery.body, b"not json");
    assert_eq!(
        delivery.header(REASON_HEADER),
        Some("invalid message: expected value")
    );
    assert_eq!(delivery.header("traceparent"), Some("00-abc-def-01"));
    let at = delivery.header(DEAD_LETTERED_AT_HEADER).expect("timestamp");
    assert!(
        at.ends_with('Z') && at.contains('T') && at.len() == "2026-01-01T00:00:00.000Z".len(),
        "{at}"
    );
    delivery.ack().await.unwrap();
    cleanup(broker).await;
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries() {
    require_broker!();
    let opts = AmqpOptions {
        prefetch: 3,
        ..unique_options()
    };
    let broker = connect(&opts).await;
    let batch = (0..10)
        .map(|i| {
            Outgoing::new(
                opts.topology.execution_queue.clone(),
                format!("{i}").into_bytes(),
            )
        })
        .collect();
    broker.publish(batch).await.unwrap();
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(expect_delivery(&mut deliveries).await);
    }
    assert!(
        next_within(&mut deliveries, Duration::from_millis(500))
            .await
            .is_none(),
        "a 4th delivery arrived with 3 unacked and prefetch 3"
    );
    held.remove(0).ack().await.unwrap();
    let fourth = expect_delivery(&mut deliveries).await;
    assert_eq!(fourth.body, b"3");
    assert!(
        next_within(&mut deliveries, Duration::from_millis(300))
            .await
            .is_none()
    );
    // Settle everything: the rest arrives.
    fourth.ack().await.unwrap();
    for d in held {
        d.ack().await.unwrap();
    }
    let mut seen = 4;
    while seen < 10 {
        expect_delivery(&mut deliveries).await.ack().await.unwrap();
        seen += 1;
    }
    cleanup(broker).await;
}

#[tokio::test]
async fn nack_requeue_redelivers_with_redelivered_flag() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    broker
        .publish(vec![Outgoing::new(
            opts.topology.execution_queue.clone(),
            b"again".to_vec(),
        )])
        .await
        .unwrap();
    let first = expect_delivery(&mut deliveries).await;
    assert!(!first.redelivered);
    first.nack_requeue().await.unwrap();
    let second = expect_delivery(&mut deliveries).await;
    assert_eq!(second.body, b"again");
    assert!(second.redelivered);
    // reject (no requeue): gone for good.
    second.reject().await.unwrap();
    assert!(
        next_within(&mut deliveries, Duration::from_millis(300))
            .await
            .is_none()
    );
    cleanup(broker).await;
}

#[tokio::test]
async fn quorum_queues_declare_and_count_deliveries() {
    require_broker!();
    let opts = AmqpOptions {
        queue_type: QueueType::Quorum,
        prefetch: 2,
        ..unique_options()
    };
    let broker = connect(&opts).await;
    // Declared twice with the same arguments: fine.
    let second = connect(&opts).await;
    second.close().await;
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    broker
        .publish(vec![
            Outgoing::new(opts.topology.execution_queue.clone(), b"q".to_vec())
                .with_header("k", "v"),
        ])
        .await
        .unwrap();
    let first = expect_delivery(&mut deliveries).await;
    assert_eq!(first.header("k"), Some("v"));
    assert_eq!(first.delivery_count, None);
    first.nack_requeue().await.unwrap();
    let second = expect_delivery(&mut deliveries).await;
    assert!(second.redelivered);
    assert_eq!(second.delivery_count, Some(1));
    second.ack().await.unwrap();
    broker
        .dead_letter(b"x".to_vec(), "why", Headers::new())
        .await
        .unwrap();
    cleanup(broker).await;
}

#[tokio::test]
async fn redeclaring_with_another_queue_type_is_a_permanent_error() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let started = std::time::Instant::now();
    let err = Broker::connect(AmqpOptions {
        queue_type: QueueType::Quorum,
        ..opts.clone()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Topology { .. }), "{err}");
    assert!(!err.is_transient(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no retry loop on a permanent error"
    );
    // The first broker is unaffected.
    broker
        .publish(vec![Outgoing::new(
            opts.topology.execution_queue.clone(),
            b"{}".to_vec(),
        )])
        .await
        .unwrap();
    cleanup(broker).await;
}

#[tokio::test]
async fn consuming_a_missing_queue_is_an_error() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let err = broker
        .consume(&format!("{}.missing", opts.topology.execution_queue), "")
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    // The connection survives the channel error.
    assert!(broker.is_ready());
    broker
        .publish(vec![Outgoing::new(
            opts.topology.execution_queue.clone(),
            b"{}".to_vec(),
        )])
        .await
        .unwrap();
    cleanup(broker).await;
}

#[tokio::test]
async fn cancel_stops_new_deliveries_and_keeps_received_ones_settleable() {
    require_broker!();
    let opts = AmqpOptions {
        prefetch: 5,
        ..unique_options()
    };
    let broker = connect(&opts).await;
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "drain")
        .await
        .unwrap();
    broker
        .publish(vec![Outgoing::new(
            opts.topology.execution_queue.clone(),
            b"1".to_vec(),
        )])
        .await
        .unwrap();
    let held = expect_delivery(&mut deliveries).await;
    deliveries.cancel().await;
    broker
        .publish(vec![Outgoing::new(
            opts.topology.execution_queue.clone(),
            b"2".to_vec(),
        )])
        .await
        .unwrap();
    assert!(
        next_within(&mut deliveries, Duration::from_secs(2))
            .await
            .is_none(),
        "no delivery after cancel; the stream ends"
    );
    // The delivery received before the cancel can still be acked (its channel stays open).
    held.ack().await.unwrap();
    let mut other = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    assert_eq!(expect_delivery(&mut other).await.body, b"2");
    assert!(
        next_within(&mut other, Duration::from_millis(300))
            .await
            .is_none(),
        "message 1 was acked, not redelivered"
    );
    cleanup(broker).await;
}

#[tokio::test]
async fn close_ends_streams_and_later_calls_fail() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    broker
        .publish(vec![Outgoing::new(
            opts.topology.execution_queue.clone(),
            b"x".to_vec(),
        )])
        .await
        .unwrap();
    let held = expect_delivery(&mut deliveries).await;
    broker.close().await;
    assert!(!broker.is_ready());
    assert!(
        next_within(&mut deliveries, Duration::from_secs(5))
            .await
            .is_none(),
        "stream ends on close"
    );
    // Settling a delivery of the closed connection is a no-op, and says the ack did not go.
    assert!(!held.acked().await.unwrap(), "acked on a closed connection");
    let err = broker
        .publish(vec![Outgoing::new(
            opts.topology.execution_queue.clone(),
            b"y".to_vec(),
        )])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
    // Clean up with a fresh broker (the message was requeued by the close).
    cleanup(connect(&opts).await).await;
}

#[tokio::test]
async fn concurrent_publishers_lose_nothing() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let broker = broker.clone();
            let queue = opts.topology.execution_queue.clone();
            let status = opts.topology.status_queue.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    broker
                        .publish(vec![
                            Outgoing::new(queue.clone(), format!("{t}-{i}-a").into_bytes()),
                            Outgoing::new(status.clone(), b"s".to_vec()),
                            Outgoing::new(queue.clone(), format!("{t}-{i}-b").into_bytes()),
                        ])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut seen = BTreeSet::new();
    while seen.len() < 800 {
        let d = expect_delivery(&mut deliveries).await;
        assert!(seen.insert(String::from_utf8(d.body.clone()).unwrap()));
        d.ack().await.unwrap();
    }
    assert!(
        next_within(&mut deliveries, Duration::from_millis(300))
            .await
            .is_none()
    );
    cleanup(broker).await;
}

#[tokio::test]
async fn subscription_gets_copies_without_taking_from_the_shared_queues() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut subscription = broker
        .subscribe(&[
            opts.topology.status_queue.clone(),
            opts.topology.completion_queue.clone(),
        ])
        .await
        .unwrap();
    assert!(subscription.queue().starts_with("baton.subscription."));
    broker
        .publish(vec![
            Outgoing::new(opts.topology.status_queue.clone(), b"status".to_vec()),
            Outgoing::new(
                opts.topology.execution_queue.clone(),
                b"not subscribed".to_vec(),
            ),
            Outgoing::new(
                opts.topology.completion_queue.clone(),
                b"completion".to_vec(),
            ),
        ])
        .await
        .unwrap();
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        let d = expect_delivery(&mut subscription).await;
        got.insert(String::from_utf8(d.body.clone()).unwrap());
        d.ack().await.unwrap();
    }
    assert_eq!(
        got,
        BTreeSet::from(["status".to_owned(), "completion".to_owned()])
    );
    assert!(
        next_within(&mut subscription, Duration::from_millis(300))
            .await
            .is_none()
    );
    // The shared queue still has its copy.
    let mut status = broker
        .consume(&opts.topology.status_queue, "")
        .await
        .unwrap();
    assert_eq!(expect_delivery(&mut status).await.body, b"status");
    subscription.cancel().await;
    cleanup(broker).await;
}

#[tokio::test]
async fn a_message_to_a_queue_skips_the_exchange_and_its_bindings() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut watcher = broker
        .subscribe(std::slice::from_ref(&opts.topology.execution_queue))
        .await
        .unwrap();
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    broker
        .publish(vec![
            Outgoing::to_queue(opts.topology.execution_queue.clone(), b"direct".to_vec())
                .with_header("traceparent", "00-x"),
            Outgoing::new(opts.topology.execution_queue.clone(), b"routed".to_vec()),
        ])
        .await
        .unwrap();
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        let d = expect_delivery(&mut deliveries).await;
        if d.body == b"direct" {
            assert_eq!(d.header("traceparent"), Some("00-x"));
            assert_eq!(d.exchange, "", "the default exchange");
        }
        got.insert(String::from_utf8(d.body.clone()).unwrap());
        d.ack().await.unwrap();
    }
    assert_eq!(got, BTreeSet::from(["direct".into(), "routed".into()]));
    // Only the message routed through the exchange reached the watcher's binding.
    let copy = expect_delivery(&mut watcher).await;
    assert_eq!(copy.body, b"routed");
    copy.ack().await.unwrap();
    assert!(
        next_within(&mut watcher, Duration::from_millis(300))
            .await
            .is_none()
    );
    // A queue that does not exist: returned, an error like any unroutable message.
    let nowhere = format!("{}.nowhere", opts.topology.execution_queue);
    let err = broker
        .publish(vec![Outgoing::to_queue(nowhere.clone(), b"{}".to_vec())])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unroutable { routing_key, .. } if routing_key == &nowhere),
        "{err:?}"
    );
    watcher.cancel().await;
    cleanup(broker).await;
}

/// Sequential hops: consume one message, publish its successor plus a status and a completion
/// (3 confirmed messages), ack. Prints p50/p99; run with
/// `cargo test -p baton-amqp --release --test broker -- --ignored --nocapture hop_latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "latency measurement; run explicitly"]
async fn hop_latency() {
    require_broker!();
    let opts = unique_options();
    let broker = connect(&opts).await;
    let mut deliveries = broker
        .consume(&opts.topology.execution_queue, "")
        .await
        .unwrap();
    // Status and completion consumers, as RTES and the archivist would be.
    let mut drains = Vec::new();
    for queue in [&opts.topology.status_queue, &opts.topology.completion_queue] {
        let mut stream = broker.consume(queue, "").await.unwrap();
        drains.push(tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(d) = stream.next().await {
                d.ack().await.unwrap();
            }
        }));
    }
    let hops = 2000;
    broker
        .publish(vec![Outgoing::new(
            opts.topology.execution_queue.clone(),
            b"0".to_vec(),
        )])
        .await
        .unwrap();
    let mut times = Vec::with_capacity(hops);
    let mut publish_times = Vec::with_capacity(hops);
    let mut ack_times = Vec::with_capacity(hops);
    let mut last = std::time::Instant::now();
    for i in 0..hops {
        let d = expect_delivery(&mut deliveries).await;
        let now = std::time::Instant::now();
        times.push(now - last);
        last = now;
        let next = format!("{}", i + 1).into_bytes();
        let publish_started = std::time::Instant::now();
        broker
            .publish(vec![
                Outgoing::new(
                    opts.topology.status_queue.clone(),
                    b"{\"status\":\"success\"}".to_vec(),
                )
                .with_header("traceparent", "00-abc-def-01"),
                Outgoing::new(opts.topology.execution_queue.clone(), next)
                    .with_header("traceparent", "00-abc-def-01"),
                Outgoing::new(opts.topology.completion_queue.clone(), b"{}".to_vec()),
            ])
            .await
            .unwrap();
        let ack_started = std::time::Instant::now();
        publish_times.push(ack_started - publish_started);
        d.ack().await.unwrap();
        ack_times.push(ack_started.elapsed());
    }
    publish_times.sort();
    ack_times.sort();
    println!(
        "publish of 3 (confirmed): p50 {:?} p90 {:?}; ack: p50 {:?}",
        publish_times[hops / 2],
        publish_times[hops * 9 / 10],
        ack_times[hops / 2]
    );
    for drain in &drains {
        drain.abort();
    }
    times.remove(0);
    times.sort();
    let p = |q: f64| times[((times.len() as f64) * q) as usize];
    println!(
        "hop latency over {} hops: p50 {:?} p90 {:?} p99 {:?} max {:?}",
        times.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        times.last().unwrap()
    );
    cleanup(broker).await;
}

#[tokio::test]
async fn wrong_credentials_fail_fast() {
    require_broker!();
    let opts = unique_options();
    let (scheme, rest) = opts.url.split_once("://").unwrap();
    let hostpath = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let started = std::time::Instant::now();
    let err = Broker::connect(AmqpOptions {
        url: format!("{scheme}://baton-nobody:wrong-secret@{hostpath}"),
        ..opts
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(!err.is_transient(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no retry loop on refused credentials"
    );
    assert!(
        !err.to_string().contains("wrong-secret"),
        "password leaked: {err}"
    );
}
