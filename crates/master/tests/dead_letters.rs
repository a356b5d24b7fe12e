//! `GET /dead-letters` on a master with the AMQP backend and a worker: a dead-lettered start is
//! listed with its execution and reason, reading it takes nothing, filters and `limit` apply,
//! and the route needs the token like the rest of the API.

mod common;

use common::{Env, call_at};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_execution_is_listed_with_its_reason_behind_the_token() {
    let env = Env::start().await;
    let options = baton_amqp::AmqpOptions::from(&env.settings.connection);
    let execution_queue = options.topology.execution_queue.clone();
    let broker = baton_amqp::Broker::connect(options).await.unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let broken = json!({"name": "broken", "nodes": [{"id": "a", "name": "A", "type": "frobnicate"}], "edges": []});
    let message = json!({"workflow_id": "broken", "execution_id": id, "current_node": "$start",
        "workflow_definition": broken, "accumulated_context": {"$input": {}}});
    broker
        .publish(vec![baton_amqp::Outgoing::new(
            execution_queue,
            serde_json::to_vec(&message).unwrap(),
        )])
        .await
        .unwrap();
    env.wait_for(&id, |v| v["status"] == "failed").await;

    let path = format!("/dead-letters?execution={id}");
    let (status, page) = env.call("GET", &path, None).await;
    assert_eq!(status, 200, "{page}");
    let rows = page["dead_letters"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{page}");
    assert_eq!(rows[0]["execution_id"], id.as_str());
    assert_eq!(rows[0]["node_id"], "$start");
    let reason = rows[0]["reason"].as_str().unwrap();
    assert!(reason.contains("invalid workflow_definition"), "{reason}");
    let (_, again) = env.call("GET", &path, None).await;
    assert_eq!(
        again["dead_letters"], page["dead_letters"],
        "reading takes nothing"
    );
    let (_, other) = env
        .call("GET", "/dead-letters?reason=no-such-reason", None)
        .await;
    assert_eq!(other["dead_letters"], json!([]), "{other}");

    let (status, bad) = env.call("GET", "/dead-letters?limit=0", None).await;
    assert_eq!(status, 400, "{bad}");
    let url = format!("{}/dead-letters", env.masters[0]);
    let (status, _) = call_at(&env.http, &url, "GET", None, None).await;
    assert_eq!(status, 401, "the token is needed");
    broker.close().await;
}
