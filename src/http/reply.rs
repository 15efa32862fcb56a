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
    /// The answer with `status`; a failure on our side is logged here,
    /// once, with its source chain (the HTTP edge).
    pub(super) fn with_status(self, status: StatusCode) -> Response {
        self.log_at_edge("http");
        let mut body = json!({ "code": self.code, "message": self.message });
        if let (Some(extra), Some(obj)) = (self.details.as_deref(), body.as_object_mut()) {
            for (k, v) in extra {
                obj.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let mut r = (status, Json(body)).into_response();
        if self.code == ErrorCode::Unauthorized {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::test_log::errors_logged;

    #[test]
    fn the_http_edge_logs_an_internal_error_once_with_its_source() {
        let (logged, r) = errors_logged(|| {
            let e = Error::internal_in("ledger", std::io::Error::other("disk on fire"));
            e.into_response()
        });
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(logged[0].contains("ledger: disk on fire"), "{logged:?}");
    }

    #[tokio::test]
    async fn details_join_the_body_next_to_code_and_message() {
        let e = Error::new(ErrorCode::NotEligible, "not eligible")
            .with_detail("missing", json!({ "followers": 1 }))
            .with_detail("code", json!("overridden?"));
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({ "code": "not_eligible", "message": "not eligible", "missing": { "followers": 1 } })
        );
    }

    #[test]
    fn the_http_edge_logs_outcome_unknown_but_not_client_errors() {
        let (logged, _) = errors_logged(|| {
            let _ = Error::outcome_unknown_because("reply lost").into_response();
            let _ = Error::bad_request("nope").into_response();
            let _ = Error::unauthorized("who?").into_response();
        });
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(logged[0].contains("reply lost"), "{logged:?}");
    }
}
