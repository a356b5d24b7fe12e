//! Webhooks against a real master, RabbitMQ, Redis and worker: off until enabled (the same 404
//! as an unknown id), Standard Webhooks signatures (replays, clock skew, bad signatures
//! refused), JSON bodies only, bearer webhooks, and secrets sealed in Redis.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Env, TOKEN, hello};
use hmac::Mac;
use serde_json::{Value, json};

/// `webhook-signature` computed here from the specification (not by the master's code):
/// `v1,` + base64(HMAC-SHA256(base64-decoded secret, "id.timestamp.body")).
fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A Standard Webhooks delivery.
struct Delivery<'a> {
    id: &'a str,
    timestamp: i64,
    body: &'a str,
    signature: String,
    content_type: &'a str,
}

impl<'a> Delivery<'a> {
    fn signed(secret: &str, id: &'a str, body: &'a str) -> Self {
        Self::signed_at(secret, id, now(), body)
    }

    fn signed_at(secret: &str, id: &'a str, timestamp: i64, body: &'a str) -> Self {
        Self {
            id,
            timestamp,
            body,
            signature: sign(secret, id, timestamp, body),
            content_type: "application/json",
        }
    }
}

async fn deliver(env: &Env, master: usize, workflow: &str, d: &Delivery<'_>) -> (u16, Value) {
    let resp = env
        .http
        .post(format!("{}/hooks/{workflow}", env.masters[master]))
        .header("content-type", d.content_type)
        .header("webhook-id", d.id)
        .header("webhook-timestamp", d.timestamp.to_string())
        .header("webhook-signature", &d.signature)
        .body(d.body.to_string())
        .send()
        .await
        .expect("the master answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Enables a signed webhook with a generated secret; returns the secret.
async fn enable(env: &Env, workflow: &str) -> String {
    let (status, body) = env
        .call(
            "PUT",
            &format!("/workflows/{workflow}/webhook"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["secret"]
        .as_str()
        .expect("a generated secret")
        .to_string()
}

async fn executions_of(env: &Env, workflow: &str) -> usize {
    let (_, list) = env
        .call("GET", &format!("/executions?workflow={workflow}"), None)
        .await;
    list["executions"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_is_off_by_default_and_answers_exactly_like_an_unknown_id() {
    let env = Env::start().await;
    env.put_workflow(hello("stored")).await;
    let plain = |workflow: &'static str| {
        env.http
            .post(env.url(&format!("/hooks/{workflow}")))
            .json(&json!({"name": "x"}))
            .send()
    };
    let unknown = plain("no-such-workflow").await.unwrap();
    let unknown = (unknown.status().as_u16(), unknown.text().await.unwrap());
    assert_eq!(unknown.0, 404);
    let stored = plain("stored").await.unwrap();
    let stored = (stored.status().as_u16(), stored.text().await.unwrap());
    assert_eq!(
        stored, unknown,
        "a stored workflow's webhook is off until enabled"
    );
    let (status, body) = env.call("GET", "/workflows/stored/webhook", None).await;
    assert_eq!(status, 404, "{body}");

    // Enabled then disabled, or deleted with its workflow: the same answer again.
    enable(&env, "stored").await;
    let (status, _) = env.call("DELETE", "/workflows/stored/webhook", None).await;
    assert_eq!(status, 204);
    let again = plain("stored").await.unwrap();
    assert_eq!(
        (again.status().as_u16(), again.text().await.unwrap()),
        unknown
    );
    let secret = enable(&env, "stored").await;
    let (status, _) = env.call("DELETE", "/workflows/stored", None).await;
    assert_eq!(status, 204);
    let (status, body) = deliver(
        &env,
        0,
        "stored",
        &Delivery::signed(&secret, "msg_after_delete", "{}"),
    )
    .await;
    assert_eq!((status, body.to_string()), (404, unknown.1.clone()));
    assert_eq!(executions_of(&env, "stored").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_request_starts_the_workflow_once_and_its_replay_is_refused_on_every_replica() {
    let mut env = Env::start().await;
    env.add_master().await;
    env.put_workflow(hello("signed")).await;
    let secret = enable(&env, "signed").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (status, shown) = env.call("GET", "/workflows/signed/webhook", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["auth"], "signature");
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown once: {shown}"
    );

    let body = r#"{"name": "Signed"}"#;
    let delivery = Delivery::signed(&secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", body);
    let (status, started) = deliver(&env, 0, "signed", &delivery).await;
    assert_eq!(status, 202, "{started}");
    let view = env
        .finished(started["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(
        (view["trigger"].as_str(), view["status"].as_str()),
        (Some("webhook"), Some("completed"))
    );
    assert_eq!(view["nodes"]["greet"]["output"]["message"], "Hello Signed");

    for replica in [0, 1, 0] {
        let (status, refused) = deliver(&env, replica, "signed", &delivery).await;
        assert_eq!(status, 409, "replay on replica {replica}: {refused}");
        assert_eq!(refused["error"]["code"], "webhook_replayed");
    }
    // The same id re-signed with a new timestamp is the same message.
    let resigned = Delivery::signed_at(&secret, delivery.id, now() + 1, body);
    assert_eq!(deliver(&env, 1, "signed", &resigned).await.0, 409);
    assert_eq!(executions_of(&env, "signed").await, 1);

    // A new message is accepted; the id is remembered per workflow, in Redis with a TTL.
    let (status, _) = deliver(&env, 1, "signed", &Delivery::signed(&secret, "msg_2", body)).await;
    assert_eq!(status, 202);
    let mut redis = env.redis().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!(
            "{}hookmsg:signed:msg_2",
            env.settings.master_key_prefix
        ))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        (590..=600).contains(&ttl),
        "remembered for 10 minutes: {ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skewed_timestamps_and_bad_or_missing_signatures_are_refused() {
    let env = Env::start().await;
    env.put_workflow(hello("strict")).await;
    let secret = enable(&env, "strict").await;
    let body = r#"{"name": "x"}"#;
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut cases = vec![
        (
            "6 minutes old",
            Delivery::signed_at(&secret, "m1", now() - 360, body),
        ),
        (
            "6 minutes ahead",
            Delivery::signed_at(&secret, "m2", now() + 360, body),
        ),
        ("another secret", Delivery::signed(other, "m3", body)),
    ];
    let mut tampered = Delivery::signed(&secret, "m4", body);
    tampered.body = r#"{"name": "y"}"#;
    cases.push(("another body", tampered));
    let mut other_id = Delivery::signed(&secret, "m5", body);
    other_id.id = "m5-changed";
    cases.push(("another id", other_id));
    let mut shifted = Delivery::signed(&secret, "m6", body);
    shifted.timestamp += 1;
    cases.push(("another timestamp", shifted));
    let mut garbage = Delivery::signed(&secret, "m7", body);
    garbage.signature = "v1,bm90IGEgc2lnbmF0dXJl".into();
    cases.push(("a wrong signature", garbage));
    let mut old_scheme = Delivery::signed(&secret, "m8", body);
    old_scheme.signature = old_scheme.signature.replacen("v1,", "sha256=", 1);
    cases.push(("another scheme", old_scheme));
    for (what, delivery) in &cases {
        let (status, refused) = deliver(&env, 0, "strict", delivery).await;
        assert_eq!(status, 401, "{what}: {refused}");
        assert_eq!(refused["error"]["code"], "unauthorized", "{what}");
    }
    let (_, skew) = deliver(&env, 0, "strict", &cases[0].1).await;
    assert!(
        skew["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tolerance"),
        "{skew}"
    );
    let unsigned = env
        .http
        .post(env.url("/hooks/strict"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let unsigned: Value = unsigned.json().await.unwrap();
    assert!(
        unsigned["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webhook-signature"),
        "{unsigned}"
    );
    // The API's token is no substitute for the signature.
    let with_token = env
        .http
        .post(env.url("/hooks/strict"))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status().as_u16(), 401);
    assert_eq!(executions_of(&env, "strict").await, 0);
    // A signed body that is not JSON is a 400.
    let (status, bad) = deliver(&env, 0, "strict", &Delivery::signed(&secret, "m9", "{nope")).await;
    assert_eq!(status, 400, "{bad}");
    // Refused deliveries are not remembered: the genuine ones still go through.
    for id in ["m3", "m9"] {
        let (status, _) = deliver(&env, 0, "strict", &Delivery::signed(&secret, id, body)).await;
        assert_eq!(status, 202, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_body_that_is_not_json_is_refused_even_when_signed() {
    let env = Env::start().await;
    env.put_workflow(hello("typed")).await;
    let secret = enable(&env, "typed").await;
    for (i, content_type) in [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("ct{i}");
        let mut delivery = Delivery::signed(&secret, &id, r#"{"name": "x"}"#);
        delivery.content_type = content_type;
        let (status, body) = deliver(&env, 0, "typed", &delivery).await;
        assert_eq!(status, 415, "{content_type}: {body}");
        assert_eq!(body["error"]["code"], "unsupported_media_type");
    }
    // A browser's cross-origin simple request: text/plain, foreign Origin, no CORS grant.
    let resp = env
        .http
        .post(env.url("/hooks/typed"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(r#"{"name": "csrf"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let preflight = env
        .http
        .request(reqwest::Method::OPTIONS, env.url("/hooks/typed"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(executions_of(&env, "typed").await, 0);
    let mut delivery = Delivery::signed(&secret, "ct-ok", r#"{"name": "x"}"#);
    delivery.content_type = "application/json; charset=utf-8";
    assert_eq!(deliver(&env, 0, "typed", &delivery).await.0, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bearer_webhook_needs_one_of_the_api_tokens() {
    let env = Env::start_with(|s| s.credentials_key = None).await;
    env.put_workflow(hello("tokened")).await;
    let (status, body) = env
        .call("PUT", "/workflows/tokened/webhook", Some(json!({})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("no_vault")),
        "a signed webhook needs the vault key to seal its secret: {body}"
    );
    let (status, body) = env
        .call(
            "PUT",
            "/workflows/tokened/webhook",
            Some(json!({"auth": "bearer"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"], "bearer");
    assert!(body.get("secret").is_none());
    let post = |token: Option<&'static str>| {
        let mut req = env
            .http
            .post(env.url("/hooks/tokened"))
            .json(&json!({"name": "Bearer"}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(post(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status().as_u16(), 401);
    let resp = post(Some(TOKEN)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let started: Value = resp.json().await.unwrap();
    let view = env
        .finished(started["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(view["nodes"]["greet"]["output"]["message"], "Hello Bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enabling_a_webhook_checks_its_input() {
    let env = Env::start().await;
    env.put_workflow(hello("checked")).await;
    for (body, path) in [
        (json!({"secret": 5}), "$.secret"),
        (json!({"secret": "s3cret"}), "$.secret"),
        (json!({"secret": "whsec_c2hvcnQ="}), "$.secret"),
        (json!({"auth": "basic"}), "$.auth"),
        (
            json!({"auth": "bearer", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            "$.secret",
        ),
        (json!({"url": "x"}), "$.url"),
    ] {
        let (status, answer) = env
            .call("PUT", "/workflows/checked/webhook", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["problems"][0]["path"], path, "{body}");
    }
    let (status, _) = env
        .call("PUT", "/workflows/nope/webhook", Some(json!({})))
        .await;
    assert_eq!(status, 404);
    // A given secret is used as is and not echoed.
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, answer) = env
        .call(
            "PUT",
            "/workflows/checked/webhook",
            Some(json!({"secret": given})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(!answer.to_string().contains("MfKQ9r8G"), "{answer}");
    let (status, _) = deliver(&env, 0, "checked", &Delivery::signed(given, "given", "{}")).await;
    assert_eq!(status, 202);
}

/// Every string of every key under the test's prefixes (strings, hashes, lists, sets, zsets).
async fn every_stored_value(env: &Env) -> Vec<(String, String)> {
    let mut redis = env.redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("t-{}*", env.id))
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        let values: Vec<String> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .unwrap(),
            ],
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut redis)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut redis)
                .await
                .unwrap(),
            _ => Vec::new(),
        };
        out.extend(values.into_iter().map(|v| (key.clone(), v)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_secrets_are_sealed_in_redis_and_erased_with_their_webhook() {
    let env = Env::start().await;
    env.put_workflow(hello("sealed-a")).await;
    env.put_workflow(hello("sealed-b")).await;
    let generated = enable(&env, "sealed-a").await;
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, _) = env
        .call(
            "PUT",
            "/workflows/sealed-b/webhook",
            Some(json!({"secret": given})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        deliver(
            &env,
            0,
            "sealed-a",
            &Delivery::signed(&generated, "a1", "{}")
        )
        .await
        .0,
        202
    );
    let stored = every_stored_value(&env).await;
    let hook_key = format!("{}hook:sealed-a", env.settings.master_key_prefix);
    let record = stored
        .iter()
        .find(|(k, _)| *k == hook_key)
        .map(|(_, v)| v.clone())
        .expect("the enabled webhook is stored");
    assert!(record.contains(r#""sealed_secret":"v1."#), "{record}");
    for secret in [generated.as_str(), given] {
        let encoded = secret.strip_prefix("whsec_").unwrap();
        let hex_bytes = hex::encode(STANDARD.decode(encoded).unwrap());
        for (key, value) in &stored {
            assert!(
                !value.contains(encoded) && !value.contains(&hex_bytes),
                "{key} holds a webhook secret in clear: {value}"
            );
        }
    }
    // Disabling erases the sealed secret.
    env.call("DELETE", "/workflows/sealed-a/webhook", None)
        .await;
    let stored = every_stored_value(&env).await;
    assert!(!stored.iter().any(|(k, _)| *k == hook_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clear_text_secret_left_by_an_older_master_is_erased_and_the_webhook_is_off() {
    let env = Env::start().await;
    env.put_workflow(hello("legacy")).await;
    let key = format!("{}hook:legacy", env.settings.master_key_prefix);
    let mut redis = env.redis().await;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("old-clear-secret")
        .query_async(&mut redis)
        .await
        .unwrap();
    let resp = env
        .http
        .post(env.url("/hooks/legacy"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let left: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(left, None, "the clear-text secret is erased");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_with_another_vault_key_refuses_to_start_and_the_webhook_stays_signed() {
    let env = Env::start().await;
    env.put_workflow(hello("rekeyed")).await;
    let secret = enable(&env, "rekeyed").await;
    // The vault records its key's id: a master with another key could not open the sealed
    // secrets (nor the credentials), so it refuses to start instead of answering 503s.
    let mut rekeyed = env.settings.clone();
    rekeyed.credentials_key = Some(baton_vault::VaultKey::generate().to_base64().to_string());
    let refused = baton_master::distributed(&rekeyed, env.shutdown.clone()).await;
    let error = refused
        .err()
        .expect("a master with another key refuses to start");
    assert!(
        error.to_string().contains("does not match the vault"),
        "{error}"
    );
    // The master with the right key still checks and accepts the signed delivery.
    assert_eq!(
        deliver(&env, 0, "rekeyed", &Delivery::signed(&secret, "k1", "{}"))
            .await
            .0,
        202
    );
}
