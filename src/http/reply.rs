//! The HTTP error edge: an [`Error`] becomes a status and
//! `{"code", "message"}`.
//!
//! Owns: `IntoResponse for Error`, and logging (once, with the source
//! chain) the errors that are ours (`internal`, `outcome_unknown`).
//! Must not: put a cause or source in the answer (clients get the code and
//! message only).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::{Error, ErrorCode};

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.with_status(status)
    }
}

impl Error {
    pub(super) fn with_status(self, status: StatusCode) -> Response {
        let mut r = (
            status,
            Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response();
        if self.code == ErrorCode::Unauthorized {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}
