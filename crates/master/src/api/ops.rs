//! Operations and static files: readiness, metrics, the OpenAPI document, the dashboard.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");
const OPENAPI: &str = include_str!("../../openapi.json");

pub async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
}

pub async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
}

pub async fn app_css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS)
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn metrics(State(master): AppState) -> impl IntoResponse {
    master.metrics.render()
}

/// The runtime (broker) and the history store (Redis) answer. The body names the broker node
/// (it changes after a failover on a RabbitMQ cluster).
pub async fn readyz(State(master): AppState) -> (StatusCode, String) {
    let store = master.history.ping().await.is_ok();
    if store && master.backend.ready().await {
        match master.backend.broker_node() {
            Some(node) => (StatusCode::OK, format!("ready (RabbitMQ node {node})")),
            None => (StatusCode::OK, "ready".into()),
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready".into())
    }
}
