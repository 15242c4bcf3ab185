//! The one error type of the HTTP API: every failure leaves the server as
//! `{"error": code, "message": …}` with a status that says what happened.
//! 5xx bodies stay generic; the detail goes to the log with the request id.

use aicockpit_workspace::{FileError, WorkspaceError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An API error: a stable machine-readable code, a sentence for people.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds a client should wait (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in first: send `Authorization: Bearer acp_…` (see `aicockpit admin token`) or log in",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A server-side failure: the detail is logged, the client sees a generic sentence.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; the server log has the detail",
        )
    }

    /// A request to a WebSocket route that is not a WebSocket upgrade (a
    /// client looking into why its upgrade failed gets the quota or access
    /// error first, then this).
    pub fn not_a_websocket(
        rejection: axum::extract::ws::rejection::WebSocketUpgradeRejection,
    ) -> ApiError {
        ApiError::new(
            rejection.status(),
            "not_a_websocket",
            format!(
                "open this route as a WebSocket ({}); every check before the upgrade passed",
                rejection.body_text()
            ),
        )
    }

    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(error: crate::db::DbError) -> ApiError {
        ApiError::internal(error)
    }
}

impl From<FileError> for ApiError {
    fn from(error: FileError) -> ApiError {
        match &error {
            FileError::Escape { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "path_escape", error.to_string())
            }
            FileError::NotFound { .. } => ApiError::not_found(error.to_string()),
            FileError::NotAFile { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_a_file",
                error.to_string(),
            ),
            FileError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                error.to_string(),
            ),
            FileError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ApiError::not_found(error.to_string()),
                std::io::ErrorKind::AlreadyExists => ApiError::conflict(error.to_string()),
                std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::DirectoryNotEmpty => ApiError::bad_request(error.to_string()),
                std::io::ErrorKind::PermissionDenied => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "permission_denied",
                    error.to_string(),
                ),
                _ => ApiError::internal(error),
            },
        }
    }
}

impl From<WorkspaceError> for ApiError {
    fn from(error: WorkspaceError) -> ApiError {
        use WorkspaceError as W;
        match error {
            W::File(file) => file.into(),
            W::NotFound { .. } => ApiError::not_found(error.to_string()),
            W::NameTaken { .. } | W::ContainerNameTaken { .. } => {
                ApiError::conflict(error.to_string())
            }
            W::NotRunning { .. } | W::Missing { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_running", error.to_string())
            }
            W::InvalidRequest(_) | W::DevContainer(_) | W::Backup(_) => {
                ApiError::bad_request(error.to_string())
            }
            W::Unsupported { .. } => ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "unsupported",
                error.to_string(),
            ),
            W::ImageMissing { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "image_missing",
                error.to_string(),
            ),
            W::DockerUnavailable { .. } | W::DockerPermission { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "docker_unavailable",
                error.to_string(),
            )
            .with_retry_after(5),
            other => ApiError::internal(other),
        }
    }
}

/// JSON bodies that fail to parse are refused with our error shape, naming what is wrong.
pub struct Json<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) if stalled(&rejection) => Err(ApiError::body_stalled()),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad_body",
                rejection.body_text(),
            )),
        }
    }
}

/// Whether a body error is the request body's idle timeout.
pub fn stalled(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        next = error.source();
    }
    false
}

impl ApiError {
    /// `408 body_timeout`: the request body stopped coming.
    /// A request body that could not be read to its end: stalled (`408`)
    /// or broken off (`400`).
    pub fn body_broke(error: axum::Error) -> ApiError {
        if stalled(&error) {
            ApiError::body_stalled()
        } else {
            ApiError::bad_request(format!("the request body broke off: {error}"))
        }
    }

    pub fn body_stalled() -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body stopped coming before it was complete: send it without long pauses, or retry",
        )
    }
}
