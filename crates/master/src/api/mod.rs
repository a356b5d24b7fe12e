//! The HTTP API (the contract in `openapi.json`): routes, auth, request helpers.

pub mod credentials;
pub mod dead_letters;
pub mod error;
pub mod events;
pub mod executions;
pub mod guard;
pub mod ops;
pub mod triggers;
pub mod webhooks;
pub mod workflows;

use baton_core::value::kind_name;
use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Query, Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::Value;

use crate::app::Master;
use crate::metrics_names as m;
use error::ApiError;

pub type AppState = State<Arc<Master>>;

/// The path of the only route that accepts `?access_token=` (an `EventSource` cannot send
/// headers).
pub const EVENT_STREAM_ROUTE: &str = "/executions/{execution_id}/events";

/// Every route of the contract with the default HTTP limits.
pub fn router(master: Arc<Master>) -> Router {
    router_with(master, &crate::server::HttpLimits::default())
}

/// Every route of the contract behind the guards: security headers, JSON errors, the
/// request timeout and the body limit of `limits`; ids checked on every route.
pub fn router_with(master: Arc<Master>, limits: &crate::server::HttpLimits) -> Router {
    let open = Router::new()
        .route("/", get(ops::index))
        .route("/ui/app.js", get(ops::app_js))
        .route("/ui/app.css", get(ops::app_css))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/hooks/{workflow_id}", post(webhooks::hook))
        .route_layer(middleware::from_fn(guard::check_ids))
        .route_layer(middleware::from_fn(count_requests));
    let guarded = Router::new()
        .route("/workflows", post(workflows::create).get(workflows::list))
        .route(
            "/workflows/{workflow_id}",
            get(workflows::show).delete(workflows::remove),
        )
        .route(
            "/workflows/{workflow_id}/executions",
            post(executions::start),
        )
        .route(
            "/workflows/{workflow_id}/webhook",
            put(webhooks::enable)
                .get(webhooks::show)
                .delete(webhooks::disable),
        )
        .route(
            "/workflows/{workflow_id}/schedules",
            post(triggers::add_schedule).get(triggers::list_schedules),
        )
        .route(
            "/workflows/{workflow_id}/schedules/{schedule_id}",
            delete(triggers::remove_schedule),
        )
        .route("/executions", get(executions::list))
        .route("/dead-letters", get(dead_letters::list))
        .route("/executions/{execution_id}", get(executions::show))
        .route(
            "/executions/{execution_id}/cancel",
            post(executions::cancel),
        )
        .route(
            "/executions/{execution_id}/signals/{name}",
            post(executions::signal),
        )
        .route(
            "/executions/{execution_id}/replay",
            post(executions::replay),
        )
        .route(EVENT_STREAM_ROUTE, get(events::stream))
        .route(
            "/credentials",
            post(credentials::create).get(credentials::list),
        )
        .route("/credentials/{credential_id}", delete(credentials::remove))
        .route_layer(middleware::from_fn(guard::check_ids))
        .route_layer(middleware::from_fn_with_state(master.clone(), auth))
        // Outside auth, so refused requests are counted too; a route layer sees the route.
        .route_layer(middleware::from_fn(count_requests));
    let (request_timeout, max_body_bytes) = (limits.request_timeout, limits.max_body_bytes);
    open.merge(guarded)
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such route (see /openapi.json)",
            )
        })
        .with_state(master)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn(move |r, n| {
            guard::request_timeout(request_timeout, r, n)
        }))
        .layer(middleware::from_fn(move |r, n| {
            guard::json_errors(max_body_bytes, r, n)
        }))
        .layer(middleware::from_fn(guard::security_headers))
}

/// Bearer token in `Authorization`; on the event stream only (an `EventSource` cannot send
/// headers), also `?access_token=` (URL-decoded).
async fn auth(State(master): AppState, request: Request, next: Next) -> Response {
    if master.tokens.is_none() {
        return next.run(request).await;
    }
    let header_token = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let event_stream = request.method() == Method::GET
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| p.as_str() == EVENT_STREAM_ROUTE);
    let token = match header_token {
        Some(h) => match h.strip_prefix("Bearer ") {
            Some(t) => Some(t.trim().to_string()),
            None => {
                return ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
                    .into_response();
            }
        },
        None if event_stream => Query::<HashMap<String, String>>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(mut q)| q.remove("access_token")),
        None => None,
    };
    match token {
        None => ApiError::unauthorized(
            "missing token: send `Authorization: Bearer <token>` (tokens come from BATON_API_TOKENS; \
             `?access_token=` is accepted on the event stream only)",
        )
        .into_response(),
        Some(t) if master.token_ok(&t) => next.run(request).await,
        Some(_) => ApiError::unauthorized("invalid token").into_response(),
    }
}

async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = if baton_telemetry::enabled() {
        traced(&route, request, next).await
    } else {
        next.run(request).await
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!(m::HTTP_REQUESTS, "route" => route, "status" => status).increment(1);
    response
}

/// A request in a span of its own (traces exported): a child of the caller's `traceparent`,
/// the parent of what the request publishes (a start message carries it, so an execution's
/// trace starts at the API call).
async fn traced(route: &str, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let span = tracing::info_span!("http request", otel.name = %format!("{method} {route}"), http.request.method = %method, http.route = %route, http.response.status_code = tracing::field::Empty);
    let parent = request
        .headers()
        .get(baton_telemetry::context::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    baton_telemetry::context::set_parent(&span, parent);
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// Parses a JSON body; an empty body is `default`.
pub fn json_body(bytes: &[u8], default: Option<Value>) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return default
            .ok_or_else(|| ApiError::bad_request("the request body is empty; JSON expected"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// A body that must be a JSON object.
pub fn object_body(
    bytes: &[u8],
    default_empty: bool,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let default = default_empty.then(|| Value::Object(Default::default()));
    match json_body(bytes, default)? {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            kind_name(&other)
        ))),
    }
}

/// One problem of a 422 answer.
pub fn problem(path: &str, message: impl Into<String>) -> Value {
    serde_json::json!({"path": path, "message": message.into()})
}
