//! The master's HTTP API against a real master, RabbitMQ, Redis and worker: each endpoint's
//! happy path and its bad-input answers.

mod common;

use common::{Env, TOKEN, approval, call_at, hello, read_sse, until};
use serde_json::{Value, json};

fn problems(body: &Value) -> Vec<String> {
    body["error"]["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["path"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /workflows` reports every problem of a definition in one answer: a misspelled node
/// field, a negative wait, an unknown HTTP method and time zone, a script that does not
/// compile and a template naming no node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn post_workflows_reports_all_six_problems_of_a_definition_at_once() {
    let env = Env::start().await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/invalid/six-problems-at-once.json"
    ))
    .unwrap();
    let definition: Value = serde_json::from_str(&text).unwrap();
    let (status, body) = env.call("POST", "/workflows", Some(definition)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_workflow", "{body}");
    assert_eq!(
        problems(&body),
        [
            "$.nodes[0].timeout",
            "$.nodes[1].parameters.amount",
            "$.nodes[2].parameters.method",
            "$.nodes[3].parameters.timezone",
            "$.nodes[4].parameters.script",
            "$.nodes[5].parameters.message",
        ],
        "{body}"
    );
    let (status, _) = env.call("GET", "/workflows/corpus", None).await;
    assert_eq!(status, 404, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workflows_are_validated_versioned_listed_and_deleted() {
    let env = Env::start().await;
    let (status, v1) = env.call("POST", "/workflows", Some(hello("greeter"))).await;
    assert_eq!(status, 201, "{v1}");
    assert_eq!(
        (v1["workflow_id"].as_str(), v1["version"].as_u64()),
        (Some("greeter"), Some(1))
    );
    // The same definition again is the same version.
    let (status, again) = env.call("POST", "/workflows", Some(hello("greeter"))).await;
    assert_eq!((status, again["version"].as_u64()), (200, Some(1)));
    let mut changed = hello("greeter");
    changed["nodes"][1]["parameters"]["message"] = json!("Hi {{$input.name}}");
    let (status, v2) = env.call("POST", "/workflows", Some(changed)).await;
    assert_eq!((status, v2["version"].as_u64()), (201, Some(2)));
    // Without an id, the name is slugified.
    let mut named = hello("x");
    named.as_object_mut().unwrap().remove("id");
    named["name"] = json!("Order Routing (EU)");
    let (status, body) = env.call("POST", "/workflows", Some(named)).await;
    assert_eq!(
        (status, body["workflow_id"].as_str()),
        (201, Some("order-routing-eu"))
    );

    let (status, list) = env.call("GET", "/workflows", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workflow_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"greeter") && ids.contains(&"order-routing-eu"),
        "{list}"
    );

    let (status, show) = env.call("GET", "/workflows/greeter", None).await;
    assert_eq!(status, 200);
    assert_eq!(show["latest"]["version"], 2);
    assert_eq!(show["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        show["latest"]["definition"]["nodes"][1]["parameters"]["message"],
        "Hi {{$input.name}}"
    );
    let (_, old) = env.call("GET", "/workflows/greeter?version=1", None).await;
    assert_eq!(
        old["latest"]["definition"]["nodes"][1]["parameters"]["message"],
        "Hello {{$input.name}}"
    );

    // Bad input.
    let (status, body) = env.call("GET", "/workflows/greeter?version=9", None).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = env.call("GET", "/workflows/greeter?version=x", None).await;
    assert_eq!(status, 400);
    let (status, body) = env.call("GET", "/workflows/nope", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let invalid = json!({"id": "bad", "nodes": [
        {"id": "a", "name": "A", "type": "no-such-type"},
        {"id": "b", "name": "B", "type": "log"}
    ], "edges": [{"id": "e", "src": "a", "dst": "zz"}, {"id": "e2", "src": "yy", "dst": "b"}]});
    let (status, body) = env.call("POST", "/workflows", Some(invalid)).await;
    assert_eq!(status, 422, "{body}");
    let paths = problems(&body);
    assert!(paths.len() >= 3, "every problem is reported: {body}");
    assert!(paths.iter().any(|p| p.starts_with("$.nodes[0]")), "{body}");
    assert!(paths.iter().any(|p| p.starts_with("$.edges[0]")), "{body}");
    assert!(paths.iter().any(|p| p.starts_with("$.edges[1]")), "{body}");
    let (status, body) = env
        .call(
            "POST",
            "/workflows",
            Some(json!({"id": "a/b", "nodes": []})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(problems(&body).contains(&"$.id".to_string()), "{body}");
    let resp = env
        .http
        .post(env.url("/workflows"))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{body}"
    );
    let (status, _) = env.call("POST", "/workflows", Some(json!([1, 2]))).await;
    assert_eq!(status, 422);

    let (status, _) = env.call("DELETE", "/workflows/greeter", None).await;
    assert_eq!(status, 204);
    let (status, _) = env.call("DELETE", "/workflows/greeter", None).await;
    assert_eq!(status, 404);
    let (status, _) = env.call("GET", "/workflows/greeter", None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_requests_with_a_configured_token_pass_and_operations_are_open() {
    let env = Env::start().await;
    let (status, body) = call_at(&env.http, &env.url("/workflows"), "GET", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer"),
        "{body}"
    );
    let (status, _) = call_at(
        &env.http,
        &env.url("/workflows"),
        "GET",
        None,
        Some("wrong"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call_at(
        &env.http,
        &env.url("/workflows"),
        "GET",
        None,
        Some("second-token"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call_at(
        &env.http,
        &env.url(&format!("/workflows?access_token={TOKEN}")),
        "GET",
        None,
        None,
    )
    .await;
    assert_eq!(
        status, 401,
        "only the event stream accepts the token as a query parameter"
    );
    let (status, _) = call_at(
        &env.http,
        &env.url(&format!("/workflows?access_token={TOKEN}")),
        "POST",
        Some(hello("x")),
        None,
    )
    .await;
    assert_eq!(status, 401, "only GET accepts the token in the query");
    for open in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/",
        "/ui/app.js",
        "/ui/app.css",
    ] {
        let (status, _) = call_at(&env.http, &env.url(open), "GET", None, None).await;
        assert_eq!(status, 200, "{open} needs no token");
    }
    let (_, openapi) = call_at(&env.http, &env.url("/openapi.json"), "GET", None, None).await;
    assert_eq!(openapi["openapi"], "3.1.0");
    for route in [
        "/workflows",
        "/workflows/{workflow_id}",
        "/workflows/{workflow_id}/executions",
        "/workflows/{workflow_id}/webhook",
        "/workflows/{workflow_id}/schedules",
        "/workflows/{workflow_id}/schedules/{schedule_id}",
        "/executions",
        "/executions/{execution_id}",
        "/executions/{execution_id}/cancel",
        "/executions/{execution_id}/signals/{name}",
        "/executions/{execution_id}/replay",
        "/executions/{execution_id}/events",
        "/dead-letters",
        "/hooks/{workflow_id}",
        "/credentials",
        "/credentials/{credential_id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            openapi["paths"].get(route).is_some(),
            "openapi.json lists {route}"
        );
    }
    let resp = env.http.get(env.url("/metrics")).send().await.unwrap();
    let metrics = resp.text().await.unwrap();
    assert!(
        metrics.contains("baton_master_http_requests_total{route=\"/workflows\",status=\"401\"}"),
        "{metrics}"
    );
    let (status, body) = env.call("GET", "/no/such/route", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_execution_runs_on_the_worker_pool_and_its_history_shows_every_node() {
    let env = Env::start().await;
    env.put_workflow(hello("hello")).await;
    let id = env.run("hello", json!({"name": "Ada"})).await;
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    let view = env.finished(&id).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["trigger"], "api");
    assert_eq!(view["version"], 1);
    assert_eq!(view["input"], json!({"name": "Ada"}));
    assert!(
        view["duration_ms"].is_u64() && view["completed_at"].is_string(),
        "{view}"
    );
    let greet = &view["nodes"]["greet"];
    assert_eq!(greet["status"], "success", "{view}");
    assert_eq!(greet["output"]["message"], "Hello Ada");
    assert_eq!(greet["counts"]["success"], 1);
    assert_eq!(greet["attempts"], 1);
    assert!(greet["started_at"].is_string() && greet["executed_at"].is_string());
    assert_eq!(
        view["final_context"]["$Greet"]["message"], "Hello Ada",
        "{view}"
    );

    // List: newest first, filters, cursor.
    let second = env.run("hello", json!({"name": "Bo"})).await;
    env.finished(&second).await;
    let (status, page) = env.call("GET", "/executions?limit=1", None).await;
    assert_eq!(status, 200);
    assert_eq!(page["executions"][0]["execution_id"], second.as_str());
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (_, next) = env
        .call(
            "GET",
            &format!("/executions?limit=1&cursor={}", urlencode(&cursor)),
            None,
        )
        .await;
    assert_eq!(next["executions"][0]["execution_id"], id.as_str(), "{next}");
    let (_, filtered) = env
        .call("GET", "/executions?workflow=hello&status=completed", None)
        .await;
    assert_eq!(
        filtered["executions"].as_array().unwrap().len(),
        2,
        "{filtered}"
    );
    let (_, none) = env.call("GET", "/executions?status=failed", None).await;
    assert_eq!(none["executions"], json!([]));
    assert_eq!(none["next_cursor"], Value::Null);

    // Bad input.
    for bad in [
        "/executions?limit=0",
        "/executions?limit=abc",
        "/executions?status=weird",
        "/executions?cursor=zzz",
    ] {
        let (status, body) = env.call("GET", bad, None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = env.call("GET", "/executions/unknown-id", None).await;
    assert_eq!(status, 404);
    let (status, body) = env
        .call("POST", "/workflows/nope/executions", Some(json!({})))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = env
        .call(
            "POST",
            "/workflows/hello/executions",
            Some(json!({"version": 7})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = env
        .call(
            "POST",
            "/workflows/hello/executions",
            Some(json!({"version": "one"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = env
        .call(
            "POST",
            "/workflows/hello/executions",
            Some(json!({"inptu": {}})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("inptu"));
    let (status, _) = env
        .call("POST", "/workflows/hello/executions", Some(json!("x")))
        .await;
    assert_eq!(status, 400);
}

fn urlencode(s: &str) -> String {
    s.replace('|', "%7C")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_event_stream_sends_statuses_then_the_completion_live_and_after_the_fact() {
    let env = Env::start().await;
    env.put_workflow(approval("approval")).await;
    let id = env.run("approval", json!({})).await;
    let resp = env
        .http
        .get(env.url(&format!("/executions/{id}/events?access_token={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    env.wait_for(&id, |v| v["nodes"]["w"]["status"] == "waiting")
        .await;
    let (status, _) = env
        .call(
            "POST",
            &format!("/executions/{id}/signals/approve"),
            Some(json!({"data": {"by": "ada"}})),
        )
        .await;
    assert_eq!(status, 202);
    let events = read_sse(resp).await;
    let statuses: Vec<(&str, &str)> = events
        .iter()
        .filter(|(e, _)| e == "status")
        .map(|(_, d)| {
            (
                d["node_id"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(statuses.contains(&("w", "waiting")), "{events:?}");
    assert!(statuses.contains(&("ok", "success")), "{events:?}");
    let (last, completion) = events.last().unwrap();
    assert_eq!(last, "completion");
    assert_eq!(completion["status"], "completed");
    assert_eq!(completion["execution_id"], id.as_str());

    // A client connecting later gets the history and the completion, then the stream ends.
    let resp = env
        .http
        .get(env.url(&format!("/executions/{id}/events")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let replayed = read_sse(resp).await;
    assert!(
        replayed
            .iter()
            .any(|(e, d)| e == "status" && d["node_id"] == "ok"),
        "{replayed:?}"
    );
    assert_eq!(replayed.last().unwrap().0, "completion");
    let (status, _) = env.call("GET", "/executions/nope/events", None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_returns_the_same_execution() {
    let env = Env::start().await;
    env.put_workflow(hello("idem")).await;
    let post = |key: &'static str, input: Value| {
        env.http
            .post(env.url("/workflows/idem/executions"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", key)
            .json(&json!({ "input": input }))
            .send()
    };
    let first = post("k1", json!({"name": "A"})).await.unwrap();
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.unwrap();
    let again = post("k1", json!({"name": "A"})).await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again);
    let conflict = post("k1", json!({"name": "B"})).await.unwrap();
    assert_eq!(conflict.status().as_u16(), 409);
    let other = post("k2", json!({"name": "A"})).await.unwrap();
    assert_eq!(other.status().as_u16(), 202);
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["execution_id"], first["execution_id"]);
    env.finished(first["execution_id"].as_str().unwrap()).await;
    let (_, list) = env.call("GET", "/executions?workflow=idem", None).await;
    assert_eq!(list["executions"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signal_resumes_a_waiting_execution_and_cancel_halts_one() {
    let env = Env::start().await;
    env.put_workflow(approval("approve")).await;
    let signalled = env.run("approve", json!({})).await;
    env.wait_for(&signalled, |v| v["nodes"]["w"]["status"] == "waiting")
        .await;
    let (status, body) = env
        .call(
            "POST",
            &format!("/executions/{signalled}/signals/approve"),
            Some(json!({"data": {"by": "grace"}})),
        )
        .await;
    assert_eq!((status, body["name"].as_str()), (202, Some("approve")));
    let view = env.finished(&signalled).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(
        view["nodes"]["ok"]["output"]["message"],
        "approved by grace"
    );

    let cancelled = env.run("approve", json!({})).await;
    env.wait_for(&cancelled, |v| v["nodes"]["w"]["status"] == "waiting")
        .await;
    let (status, body) = env
        .call("POST", &format!("/executions/{cancelled}/cancel"), None)
        .await;
    assert_eq!(
        (status, body["cancel_requested"].as_bool()),
        (202, Some(true))
    );
    let view = env.finished(&cancelled).await;
    assert_eq!(view["status"], "halted", "{view}");
    assert_eq!(
        view["nodes"]["w"]["status"], "cancelled",
        "a wait parked when its execution was cancelled is closed as cancelled: {view}"
    );

    // Bad input.
    let (status, body) = env
        .call("POST", &format!("/executions/{cancelled}/cancel"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already finished")
    );
    let (status, _) = env
        .call(
            "POST",
            &format!("/executions/{signalled}/signals/approve"),
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = env.call("POST", "/executions/nope/cancel", None).await;
    assert_eq!(status, 404);
    let (status, _) = env.call("POST", "/executions/nope/signals/x", None).await;
    assert_eq!(status, 404);
    let (status, _) = env
        .call(
            "POST",
            &format!("/executions/{signalled}/signals/approve"),
            Some(json!({"dta": 1})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_reruns_from_a_node_with_the_stored_outputs() {
    let env = Env::start().await;
    env.put_workflow(hello("replayed")).await;
    let original = env.run("replayed", json!({"name": "Ada"})).await;
    env.finished(&original).await;
    let (status, body) = env
        .call(
            "POST",
            &format!("/executions/{original}/replay?from=done"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["replay_of"], original.as_str());
    let replay = body["execution_id"].as_str().unwrap().to_string();
    let view = env.finished(&replay).await;
    assert_eq!(
        (view["status"].as_str(), view["trigger"].as_str()),
        (Some("completed"), Some("replay")),
        "{view}"
    );
    assert_eq!(view["replay_of"], original.as_str());
    assert_eq!(
        view["nodes"]["done"]["output"]["message"], "bye Hello Ada",
        "the stored output of greet is used: {view}"
    );
    assert_eq!(
        view["nodes"]["greet"]["status"], "skipped",
        "greet did not run again: {view}"
    );

    // Bad input.
    let (status, _) = env
        .call("POST", &format!("/executions/{original}/replay"), None)
        .await;
    assert_eq!(status, 400);
    let (status, body) = env
        .call(
            "POST",
            &format!("/executions/{original}/replay?from=nope"),
            None,
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problems(&body), vec!["from"]);
    let (status, _) = env
        .call("POST", "/executions/nope/replay?from=done", None)
        .await;
    assert_eq!(status, 404);
    env.put_workflow(approval("waits")).await;
    let running = env.run("waits", json!({})).await;
    let (status, _) = env
        .call(
            "POST",
            &format!("/executions/{running}/replay?from=ok"),
            None,
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cron_schedule_fires_once_per_tick_with_two_masters() {
    let mut env = Env::start().await;
    env.add_master().await;
    env.put_workflow(hello("ticking")).await;
    let (status, schedule) = env
        .call("POST", "/workflows/ticking/schedules", Some(json!({"cron": "* * * * * *", "timezone": "Europe/Paris", "input": {"name": "Cron"}})))
        .await;
    assert_eq!(status, 201, "{schedule}");
    let sid = schedule["schedule_id"].as_str().unwrap().to_string();
    assert!(schedule["next_run_at"].is_string());
    let (_, listed) = env.call("GET", "/workflows/ticking/schedules", None).await;
    assert_eq!(listed["schedules"][0]["schedule_id"], sid.as_str());
    // Let a few ticks fire, on either master.
    let ticks = until(|| async {
        let (_, page) = env.call("GET", "/executions?workflow=ticking", None).await;
        let n = page["executions"].as_array().map(Vec::len).unwrap_or(0);
        (n >= 4).then_some(())
    });
    ticks.await;
    let (status, _) = env
        .call(
            "DELETE",
            &format!("/workflows/ticking/schedules/{sid}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, page) = env
        .call("GET", "/executions?workflow=ticking&limit=500", None)
        .await;
    let runs = page["executions"].as_array().unwrap();
    assert!(runs.iter().all(|r| r["trigger"] == "cron"));
    // Exactly one execution per claimed tick: were a tick fired by both masters, there would
    // be more executions than claims (one claim key per schedule and tick time).
    let mut conn = env.redis().await;
    let claims: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}tick:{sid}:*", env.settings.master_key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(runs.len() >= 4, "{page}");
    assert_eq!(runs.len(), claims.len(), "{page}");
    for r in runs {
        env.finished(r["execution_id"].as_str().unwrap()).await;
    }

    // Bad input.
    let (status, body) = env
        .call(
            "POST",
            "/workflows/ticking/schedules",
            Some(json!({"cron": "every minute", "timezone": "Mars/Olympus"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problems(&body), vec!["$.cron", "$.timezone"]);
    let (status, _) = env
        .call(
            "POST",
            "/workflows/nope/schedules",
            Some(json!({"cron": "* * * * *"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .call(
            "DELETE",
            &format!("/workflows/ticking/schedules/{sid}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_are_stored_without_ever_returning_their_data() {
    let env = Env::start().await;
    let (status, created) = env
        .call(
            "POST",
            "/credentials",
            Some(
                json!({"name": "api", "type": "bearer", "data": {"token": "very-secret"},
                        "hosts": ["api.example.com", "*.example.org"], "workflows": ["billing"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(!created.to_string().contains("very-secret"));
    assert_eq!(
        created["hosts"],
        json!(["api.example.com", "*.example.org"])
    );
    assert_eq!(created["workflows"], json!(["billing"]));
    let id = created["credential_id"].as_str().unwrap().to_string();
    let (status, list) = env.call("GET", "/credentials", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["credentials"][0]["credential_id"], id.as_str());
    assert!(!list.to_string().contains("very-secret"));
    let (status, body) = env
        .call("POST", "/credentials", Some(json!({"name": "", "data": 3})))
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        problems(&body),
        vec!["$.name", "$.type", "$.data", "$.hosts"]
    );
    let (status, body) = env
        .call(
            "POST",
            "/credentials",
            Some(json!({"name": "a", "type": "token", "data": {"token": "x"},
                        "hosts": ["https://api.example.com:443"]})),
        )
        .await;
    assert_eq!(status, 422, "a URL is not a host pattern: {body}");
    assert_eq!(problems(&body), vec!["$.hosts"]);
    let (status, _) = env
        .call("DELETE", &format!("/credentials/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = env
        .call("DELETE", &format!("/credentials/{id}"), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executions_started_outside_the_master_are_recorded_from_their_events() {
    let env = Env::start().await;
    // A start message published directly (as `baton submit` does).
    let options = baton_amqp::AmqpOptions::from(&env.settings.connection);
    let execution_queue = options.topology.execution_queue.clone();
    let broker = baton_amqp::Broker::connect(options).await.unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let message = json!({"workflow_id": "cli-flow", "execution_id": id, "current_node": "$start",
        "workflow_definition": hello("cli-flow"), "accumulated_context": {"$input": {"name": "Cli"}}});
    broker
        .publish(vec![baton_amqp::Outgoing::new(
            execution_queue,
            serde_json::to_vec(&message).unwrap(),
        )])
        .await
        .unwrap();
    let view = env.wait_for(&id, |v| v["status"] == "completed").await;
    assert_eq!(
        (view["trigger"].as_str(), view["workflow_id"].as_str()),
        (Some("cli"), Some("cli-flow"))
    );
    assert_eq!(view["nodes"]["greet"]["output"]["message"], "Hello Cli");
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_keeps_at_most_the_configured_number_of_executions() {
    let env = Env::start_with(|s| s.master_max_executions = 2).await;
    env.put_workflow(hello("bounded")).await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let id = env.run("bounded", json!({ "name": name })).await;
        env.finished(&id).await;
        ids.push(id);
    }
    let (_, page) = env.call("GET", "/executions", None).await;
    let listed: Vec<&str> = page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["execution_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[2].as_str(), ids[1].as_str()], "{page}");
    let (status, _) = env
        .call("GET", &format!("/executions/{}", ids[0]), None)
        .await;
    assert_eq!(status, 404, "the oldest record was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_replica_streams_every_event_whichever_replica_consumed_it() {
    let mut env = Env::start().await;
    env.add_master().await;
    env.add_master().await;
    env.put_workflow(approval("shared")).await;
    let id = env.run("shared", json!({})).await;
    // Subscribe on every replica; the three compete for the status and completion queues.
    let mut streams = Vec::new();
    for base in &env.masters {
        let resp = env
            .http
            .get(format!(
                "{base}/executions/{id}/events?access_token={TOKEN}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        streams.push(resp);
    }
    env.wait_for(&id, |v| v["nodes"]["w"]["status"] == "waiting")
        .await;
    let (status, _) = env
        .call_on(
            2,
            "POST",
            &format!("/executions/{id}/signals/approve"),
            Some(json!({"data": {"by": "b"}})),
        )
        .await;
    assert_eq!(status, 202);
    for resp in streams {
        let events = read_sse(resp).await;
        assert!(
            events
                .iter()
                .any(|(e, d)| e == "status" && d["node_id"] == "ok" && d["status"] == "success"),
            "{events:?}"
        );
        assert_eq!(events.last().unwrap().1["status"], "completed");
    }
    for i in 0..3 {
        let (_, view) = env
            .call_on(i, "GET", &format!("/executions/{id}"), None)
            .await;
        assert_eq!(
            view["status"], "completed",
            "replica {i} reads the shared history"
        );
    }
}
