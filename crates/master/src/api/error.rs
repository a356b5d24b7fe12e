//! API errors: `{"error": {"code", "message", "problems"?}}` with the contract's status codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub problems: Option<Vec<Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            problems: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} `{id}`"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 422 with every problem (`path` is a JSON path into the request body).
    pub fn invalid(code: &'static str, message: impl Into<String>, problems: Vec<Value>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message: message.into(),
            problems: Some(problems),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl<E: std::fmt::Display> From<E> for ApiError
where
    E: StoreFailure,
{
    fn from(e: E) -> Self {
        tracing::error!(error = %e, "storage failure");
        Self::internal(e.to_string())
    }
}

/// Errors of the master's dependencies (stores, broker): 503 for the client.
pub trait StoreFailure {}
impl StoreFailure for crate::history::HistoryError {}
impl StoreFailure for crate::backend::BackendError {}
impl StoreFailure for baton_engine::ports::PortError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(p) = self.problems {
            error["problems"] = Value::Array(p);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}
