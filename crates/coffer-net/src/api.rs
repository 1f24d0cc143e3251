//! The error body every Coffer service returns, and its HTTP status.

use serde::{Deserialize, Serialize};

/// A refusal or failure, as JSON: `{"error": "refused", "check": "measurement",
/// "message": "...", "reasons": [...]}`.
///
/// `error` is one of `refused` (a check failed: HTTP 403, or 401 for request
/// authentication), `bad_request` (400), `not_found` (404), `conflict` (409), `internal`
/// (500). `check` names the failed check, stable for matching; `reasons` lists every failed
/// check of an appraisal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub check: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl ApiError {
    pub fn new(error: &str, check: &str, message: impl Into<String>) -> Self {
        Self {
            error: error.to_owned(),
            check: check.to_owned(),
            message: message.into(),
            reasons: Vec::new(),
        }
    }

    pub fn with_reasons(mut self, reasons: Vec<String>) -> Self {
        self.reasons = reasons;
        self
    }

    /// The HTTP status for `error`.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match (self.error.as_str(), self.check.as_str()) {
            ("refused", "request_signature" | "unknown_party") => S::UNAUTHORIZED,
            ("refused", _) => S::FORBIDDEN,
            ("bad_request", _) => S::BAD_REQUEST,
            ("not_found", _) => S::NOT_FOUND,
            ("conflict", _) => S::CONFLICT,
            ("unavailable", _) => S::SERVICE_UNAVAILABLE,
            ("rate_limited", _) => S::TOO_MANY_REQUESTS,
            _ => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this is a refusal (exit code 1) rather than a usage or I/O failure (2).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.error.as_str(),
            "refused" | "conflict" | "not_found" | "rate_limited"
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]: {}", self.error, self.check, self.message)?;
        for r in &self.reasons {
            write!(f, "\n  - {r}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        (self.status(), axum::Json(self)).into_response()
    }
}
