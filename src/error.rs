//! One error type at the edge: a status code and a message a user can act on.
//!
//! The cause of an internal failure is logged on the server with the request's span and
//! never sent to the client: the client only ever sees [`AppError`]'s own messages.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// What a request naming a price outside the catalogue is told (by Checkout and the plan
/// switch, and by a form that carries the refusal in its address).
pub const NOT_FOR_SALE: &str =
    "That plan is not for sale. Choose one of the plans on the billing page.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Bad input; `field` names the form field it belongs to, when there is one.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    #[error("Please log in to continue.")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; the client may try again after `retry_after_secs` (sent as
    /// `Retry-After`).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// A dependency (Stripe, the database) is down; try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The server is saturated for a moment (sent as 503 with `Retry-After`).
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    /// Stripe refused a request for a reason a retry will not change.
    #[error("{0}")]
    Upstream(String),
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// The request never got an answer (client side only).
    #[error("Could not reach the server. Check your connection and try again.")]
    Transport,
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// Refused for too many attempts: `message`, then "Try again in …" from `wait`.
    pub fn rate_limited(message: &str, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs().max(1);
        let when = if secs > 90 {
            format!("{} minutes", secs.div_ceil(60))
        } else {
            format!("{secs} seconds")
        };
        AppError::RateLimited {
            message: format!("{message} Try again in {when}."),
            retry_after_secs: secs,
        }
    }

    /// Refused because the server is saturated: a quick 503 with `Retry-After`.
    pub fn busy(wait: std::time::Duration) -> Self {
        AppError::Busy {
            message: "The service is busy right now. Please try again in a few seconds.".into(),
            retry_after_secs: wait.as_secs().max(1),
        }
    }

    /// The seconds a client should wait before trying again, for a rate limit.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::RateLimited {
                retry_after_secs, ..
            }
            | AppError::Busy {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The message for one form field, if this error is about that field.
    pub fn field_message(&self, name: &str) -> Option<String> {
        match self {
            AppError::Invalid {
                field: Some(f),
                message,
            } if f == name => Some(message.clone()),
            _ => None,
        }
    }

    /// Whether this error belongs under a field rather than at the top of a form.
    pub fn is_field_error(&self) -> bool {
        matches!(self, AppError::Invalid { field: Some(_), .. })
    }

    pub fn status(&self) -> u16 {
        match self {
            AppError::Invalid { .. } => 400,
            AppError::Unauthorized => 401,
            AppError::Forbidden(_) => 403,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::RateLimited { .. } => 429,
            AppError::Unavailable(_) | AppError::Busy { .. } => 503,
            AppError::Upstream(_) => 502,
            AppError::Internal | AppError::Transport => 500,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(message)
            | ServerFnErrorErr::MissingArg(message)
            | ServerFnErrorErr::Deserialization(message) => AppError::Invalid {
                field: None,
                message: format!("The form could not be read: {message}"),
            },
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => AppError::Transport,
            _ => AppError::Internal,
        }
    }
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::AppError;
    use axum::{
        http::StatusCode,
        response::{IntoResponse, Response},
        Json,
    };

    impl AppError {
        /// Logs the real cause and returns the generic internal error.
        #[track_caller]
        pub fn internal(cause: impl std::fmt::Display) -> Self {
            let at = std::panic::Location::caller();
            tracing::error!(%cause, location = %at, "internal error");
            AppError::Internal
        }
    }

    impl From<sea_orm::DbErr> for AppError {
        #[track_caller]
        fn from(e: sea_orm::DbErr) -> Self {
            AppError::internal(e)
        }
    }

    impl IntoResponse for AppError {
        fn into_response(self) -> Response {
            let status =
                StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let retry_after = self.retry_after();
            let mut res = (
                status,
                Json(serde_json::json!({ "error": self.to_string() })),
            )
                .into_response();
            if let Some(secs) = retry_after {
                res.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, secs.into());
            }
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_are_found_by_name() {
        let e = AppError::invalid("email", "Enter a valid email address.");
        assert_eq!(
            e.field_message("email").as_deref(),
            Some("Enter a valid email address.")
        );
        assert_eq!(e.field_message("password"), None);
        assert!(e.is_field_error());
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn errors_round_trip_through_the_wire_encoding() {
        let e = AppError::Conflict("An account with this email already exists.".into());
        let bytes = e.ser();
        assert_eq!(AppError::de(bytes), e);
    }
}
