//! OpenTelemetry traces, black-box: two `baton worker` processes export spans over OTLP/HTTP
//! (one in `http/protobuf`, the other in `http/json`) to a receiver this test runs, which
//! decodes what arrives. A 5-node execution whose hops land on both workers (prefetch 1, a
//! timer in between) shows up as one trace: one root (the start), every other span's parent
//! among the spans received, hop spans from both processes, and the http node's requests
//! carrying a `traceparent` of that trace whose parent is the node attempt's span. Through a
//! master, the trace starts at the API call: the caller's `traceparent` is the parent of the
//! request's span, which is the parent of the execution's start. `baton run` exports its run
//! as one trace too, flushed before it exits.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use baton_testkit::wait_until;
use common::distributed::{BOUND, Cluster, completion_of, free_port};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde_json::json;

/// One span as received.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    /// `service.instance.id` of the process that sent it.
    instance: String,
    /// The content type it came in.
    encoding: String,
    attributes: BTreeMap<String, String>,
}

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    /// The `traceparent` header of each request the workflow's http nodes made.
    traceparents: Vec<Option<String>>,
}

type Shared = Arc<Mutex<Received>>;

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /v1/traces`: an OTLP/HTTP receiver for both encodings.
async fn traces(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> &'static str {
    let encoding = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let request = if encoding.starts_with("application/x-protobuf") {
        ExportTraceServiceRequest::decode(body.as_ref()).expect("a protobuf trace export")
    } else {
        serde_json::from_slice(&body).expect("a JSON trace export")
    };
    let mut spans = Vec::new();
    for rs in &request.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let instance = resource
            .get("service.instance.id")
            .cloned()
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                spans.push(Span {
                    name: s.name.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    instance: instance.clone(),
                    encoding: encoding.clone(),
                    attributes: attributes(&s.attributes),
                });
            }
        }
    }
    shared.lock().unwrap().spans.extend(spans);
    ""
}

/// `POST /echo`: what the workflow's http nodes call.
async fn echo(State(shared): State<Shared>, headers: HeaderMap) -> axum::Json<serde_json::Value> {
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    shared.lock().unwrap().traceparents.push(traceparent);
    axum::Json(json!({"ok": true}))
}

/// The receiver on its own thread; returns its port.
fn start_receiver(shared: Shared) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/echo", post(echo))
        .with_state(shared);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    port
}

/// call → pause (timer) → call again → pause → call: five nodes, hops on both workers.
fn workflow(port: u16) -> serde_json::Value {
    let call = |id: &str| {
        json!({"id": id, "name": id, "type": "http",
               "parameters": {"method": "POST", "url": format!("http://127.0.0.1:{port}/echo")}})
    };
    let pause = |id: &str| {
        json!({"id": id, "name": id, "type": "wait",
               "parameters": {"amount": 100, "unit": "milliseconds"}})
    };
    let ids = ["c1", "p1", "c2", "p2", "c3"];
    let edges: Vec<_> = ids
        .windows(2)
        .enumerate()
        .map(|(i, w)| json!({"id": format!("e{i}"), "src": w[0], "dst": w[1]}))
        .collect();
    json!({"name": "traced", "version": 1,
           "nodes": [call("c1"), pause("p1"), call("c2"), pause("p2"), call("c3")],
           "edges": edges})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_on_two_workers_is_one_trace_at_the_otlp_receiver() {
    let shared: Shared = Arc::default();
    let port = start_receiver(shared.clone());
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut cluster = Cluster::new();
    for protocol in ["http/protobuf", "http/json"] {
        cluster
            .spawn_worker(&[
                ("BATON_PREFETCH", "1"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_SERVICE_NAME", "baton-worker-test"),
            ])
            .await;
    }
    let file = cluster.workflow_file("traced.json", &workflow(port));
    let out = cluster
        .submit(&file, &json!({}), &["--wait", "--timeout-secs", "120"])
        .await;
    let completion = completion_of(&out, &cluster);
    assert_eq!(completion["status"], "completed", "{completion:#}");
    let execution_id = completion["execution_id"].as_str().unwrap().to_string();

    // SIGTERM: each worker drains and flushes its spans before it exits.
    for i in 0..2 {
        cluster.terminate(i);
    }
    for i in 0..2 {
        let status = cluster.wait_exit(i, BOUND).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "worker {i} did not stop cleanly: {status:?}\n{}",
            cluster.log_tail(i, 40)
        );
    }

    let received = shared.lock().unwrap();
    let spans = &received.spans;
    eprintln!(
        "{} spans received: {} hop, {} node",
        spans.len(),
        spans.iter().filter(|s| s.name == "hop").count(),
        spans.iter().filter(|s| s.name == "node").count()
    );
    let context = || format!("{spans:#?}\n{}", cluster.logs());
    let hops: Vec<&Span> = spans.iter().filter(|s| s.name == "hop").collect();
    let nodes: Vec<&Span> = spans.iter().filter(|s| s.name == "node").collect();
    assert!(hops.len() >= 5, "hop spans: {}\n{}", hops.len(), context());
    assert_eq!(nodes.len(), 5, "one span per node attempt\n{}", context());

    // One trace.
    let trace_ids: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(trace_ids.len(), 1, "trace ids {trace_ids:?}\n{}", context());
    let trace_id = *trace_ids.first().unwrap();

    // One root, the start; every other span's parent was received too.
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "roots {roots:#?}");
    assert_eq!(roots[0].name, "start");
    assert_eq!(roots[0].attributes["execution_id"], execution_id);
    for s in spans.iter().filter(|s| !s.parent.is_empty()) {
        assert!(
            ids.contains(s.parent.as_str()),
            "orphan {s:#?}\n{}",
            context()
        );
    }
    // Hops are children of the start or of a hop (the one that sent or scheduled them), and
    // each node attempt is a child of its hop.
    let by_id: BTreeMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    for hop in &hops {
        let parent = by_id[hop.parent.as_str()];
        assert!(
            parent.name == "start" || parent.name == "hop",
            "hop {hop:#?} has parent {parent:#?}"
        );
        assert_eq!(hop.attributes["execution_id"], execution_id);
    }
    for node in &nodes {
        let parent = by_id[node.parent.as_str()];
        assert_eq!(parent.name, "hop", "{node:#?}");
        assert_eq!(parent.attributes["node_id"], node.attributes["node_id"]);
        assert_eq!(node.attributes["outcome"], "ok", "{node:#?}");
        assert!(node.attributes.contains_key("node_type"), "{node:#?}");
        assert!(node.attributes.contains_key("attempt"), "{node:#?}");
    }

    // The hops ran on both workers, which exported in both encodings.
    let instances: BTreeSet<&str> = hops.iter().map(|s| s.instance.as_str()).collect();
    assert_eq!(instances.len(), 2, "instances {instances:?}\n{}", context());
    let encodings: BTreeSet<&str> = spans.iter().map(|s| s.encoding.as_str()).collect();
    assert_eq!(encodings.len(), 2, "encodings {encodings:?}");

    // Each http call carried the trace on, as a child of its node attempt.
    assert_eq!(received.traceparents.len(), 3);
    let call_spans: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.attributes["node_type"] == "http")
        .map(|n| n.span_id.as_str())
        .collect();
    for traceparent in &received.traceparents {
        let traceparent = traceparent.as_deref().expect("a traceparent header");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!(parts[1], trace_id, "{traceparent}");
        assert!(
            call_spans.contains(parts[2]),
            "{traceparent} {call_spans:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_master_the_execution_trace_starts_at_the_api_call() {
    let shared: Shared = Arc::default();
    let port = start_receiver(shared.clone());
    let endpoint = format!("http://127.0.0.1:{port}");
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ];
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&otel).await;
    let master_port = free_port();
    let url = format!("http://127.0.0.1:{master_port}");
    let log = cluster.dir.join("master.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = cluster.command();
    cmd.arg("master")
        .arg("--insecure-no-auth")
        .env("BATON_MASTER_LISTEN", format!("127.0.0.1:{master_port}"))
        .env(
            "BATON_MASTER_KEY_PREFIX",
            format!("{}:master:", cluster.key_prefix),
        )
        .envs(otel)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let mut master = cmd.spawn().expect("spawn baton master");
    let master_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let http = reqwest::Client::new();
    let up = wait_until(
        Instant::now() + BOUND,
        Duration::from_millis(100),
        async || {
            let r = http.get(format!("{url}/readyz")).send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    assert!(up.is_some(), "master not ready\n{}", master_log());

    let definition = json!({"id": "traced-api", "name": "Traced", "nodes": [
        {"id": "a", "name": "A", "type": "log", "parameters": {"message": "one"}},
        {"id": "b", "name": "B", "type": "log", "parameters": {"message": "two"}}],
        "edges": [{"id": "e", "src": "a", "dst": "b"}]});
    let created = http
        .post(format!("{url}/workflows"))
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let started: serde_json::Value = http
        .post(format!("{url}/workflows/traced-api/executions"))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .json(&json!({"input": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let execution_id = started["execution_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no execution_id in {started}"))
        .to_string();
    let done = wait_until(
        Instant::now() + BOUND,
        Duration::from_millis(100),
        async || {
            let v: serde_json::Value = http
                .get(format!("{url}/executions/{execution_id}"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["status"] == "completed").then_some(())
        },
    )
    .await;
    assert!(done.is_some(), "not completed\n{}", master_log());

    // SIGTERM both: each flushes its spans before it exits.
    cluster.terminate(0);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &master.id().to_string()])
        .status();
    assert!(cluster.wait_exit(0, BOUND).await.is_some());
    let exited = wait_until(
        Instant::now() + BOUND,
        Duration::from_millis(50),
        async || master.try_wait().ok().flatten(),
    )
    .await;
    assert!(exited.is_some_and(|s| s.success()), "{}", master_log());

    let received = shared.lock().unwrap();
    let spans = &received.spans;
    let context = || format!("{spans:#?}\n{}\n{}", master_log(), cluster.logs());
    let request = spans
        .iter()
        .find(|s| s.name == "POST /workflows/{workflow_id}/executions")
        .unwrap_or_else(|| panic!("no span for the start request\n{}", context()));
    assert_eq!(request.trace_id, caller_trace);
    assert_eq!(
        request.parent, caller_span,
        "the caller's span is its parent"
    );
    assert_eq!(
        request.attributes["http.response.status_code"], "202",
        "{request:#?}"
    );
    let start = spans
        .iter()
        .find(|s| s.name == "start")
        .unwrap_or_else(|| panic!("no start span\n{}", context()));
    assert_eq!(start.parent, request.span_id, "{}", context());
    assert_eq!(start.attributes["execution_id"], execution_id);
    let hops: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "hop" && s.attributes["execution_id"] == execution_id)
        .collect();
    assert_eq!(hops.len(), 2, "{}", context());
    assert!(
        hops.iter().all(|h| h.trace_id == caller_trace),
        "{}",
        context()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_run_exports_one_trace_and_flushes_it_before_it_exits() {
    let shared: Shared = Arc::default();
    let port = start_receiver(shared.clone());
    let cluster = Cluster::new();
    let file = cluster.workflow_file("traced-run.json", &workflow(port));
    let mut cmd = cluster.command();
    cmd.arg("run").arg(&file).env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    let out = cluster.output(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Flushed before the process exited: everything is there already.
    let received = shared.lock().unwrap();
    let spans = &received.spans;
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "{spans:#?}");
    assert_eq!(roots[0].name, "run");
    let nodes: Vec<&Span> = spans.iter().filter(|s| s.name == "node").collect();
    assert_eq!(nodes.len(), 5, "{spans:#?}");
    for node in nodes {
        assert_eq!(node.trace_id, roots[0].trace_id);
        assert_eq!(node.parent, roots[0].span_id);
    }
    assert_eq!(received.traceparents.len(), 3);
    for traceparent in &received.traceparents {
        let traceparent = traceparent.as_deref().expect("a traceparent header");
        assert!(traceparent.contains(&roots[0].trace_id), "{traceparent}");
    }
}
