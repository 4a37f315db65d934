//! `ApiError`: every error a handler answers with, and the one place that maps each to its
//! status and its JSON body `{"error": "..."}` (with `Retry-After` on a 503, and the detail,
//! which may name the daemon's paths, logged rather than told).

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::json;

/// An API error: its status and a message, answered as `{"error": message}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no job with id {0}")]
    UnknownJob(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the upload is larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The type rules (`--accept`, `--reject`) refuse a file of the upload: 415.
    #[error("{0}")]
    Refused(String),
    /// The request could not be served now (a full disk, no descriptors left, a folder
    /// gone): 503 with `Retry-After`. The client is told `what` failed, never paths: `detail`
    /// (with the daemon's paths) goes to the log only.
    #[error("{what}; try again later")]
    Unavailable { what: String, detail: String },
    /// As `Unavailable`, for an upload some of whose files were already taken by the pipeline
    /// (they are processed, and listed in the answer).
    #[error("{what}; try again later")]
    PartlyStored {
        what: String,
        detail: String,
        accepted: Vec<crate::web::upload::Accepted>,
    },
    /// The client sent nothing for this long in the middle of its request body.
    #[error("no data received for {0:?}: the request was dropped")]
    Timeout(std::time::Duration),
}

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 5;

impl ApiError {
    /// A 503 for `what` that failed with `err`: the kind of the error is told, its text (which
    /// may name files) is logged.
    pub fn unavailable(what: &str, err: &std::io::Error) -> ApiError {
        ApiError::Unavailable {
            what: format!("{what} ({})", err.kind()),
            detail: err.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::UnknownJob(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Refused(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } | ApiError::PartlyStored { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Unavailable { what, detail }
        | ApiError::PartlyStored { what, detail, .. } = self
        {
            log::error!("{what}: {detail}");
            response.insert_header(("Retry-After", RETRY_AFTER_SECONDS.to_string()));
        }
        if let ApiError::PartlyStored { accepted, .. } = self {
            return response.json(json!({ "error": self.to_string(), "jobs": accepted }));
        }
        if matches!(
            self,
            ApiError::TooLarge(_) | ApiError::Timeout(_) | ApiError::Refused(_)
        ) {
            // The rest of the body is not read: the connection cannot carry another request.
            response.insert_header(("Connection", "close"));
        }
        response.json(json!({ "error": self.to_string() }))
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    /// A blocking thread that could not run the work (the pool is shutting down).
    fn from(err: actix_web::error::BlockingError) -> ApiError {
        ApiError::Unavailable {
            what: "the server is busy or stopping".to_string(),
            detail: err.to_string(),
        }
    }
}
