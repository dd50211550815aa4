//! Stripe's error envelope: `{"error":{"type","code","message","param"}}` with Stripe's statuses.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

/// An API failure as Stripe would report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// `invalid_request_error`, `card_error`, `idempotency_error`, `api_error`.
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    pub decline_code: Option<&'static str>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            code: None,
            message: message.into(),
            param: None,
            decline_code: None,
        }
    }

    fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// 400 with no particular parameter at fault.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400: this parameter's value is not acceptable. Stripe names the parameter and gives no
    /// `code` for a value outside what the parameter takes (its codes are for narrower cases:
    /// [`ApiError::invalid_integer`], `parameter_invalid_empty`, …).
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::invalid_request(message).with_param(param)
    }

    /// 400 `parameter_invalid_integer`: this parameter takes an integer.
    pub fn invalid_integer(param: &str, value: &str) -> Self {
        Self::invalid_request(format!("Invalid integer: {value}"))
            .with_code("parameter_invalid_integer")
            .with_param(param)
    }

    /// 400: a required parameter is absent.
    pub fn missing_param(param: &str) -> Self {
        Self::invalid_request(format!("Missing required param: {param}."))
            .with_code("parameter_missing")
            .with_param(param)
    }

    /// 400: a parameter this endpoint does not know.
    pub fn unknown_param(param: &str) -> Self {
        Self::invalid_request(format!("Received unknown parameter: {param}"))
            .with_code("parameter_unknown")
            .with_param(param)
    }

    /// 404 `resource_missing`; `param` names the request parameter that held the id.
    pub fn no_such(what: &str, id: &str, param: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No such {what}: '{id}'"),
        )
        .with_code("resource_missing")
        .with_param(param)
    }

    /// 404 `invoice_upcoming_none`: nothing will be invoiced for this customer or subscription.
    pub fn upcoming_none(customer: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No upcoming invoices for customer: {customer}"),
        )
        .with_code("invoice_upcoming_none")
    }

    /// 404 for a URL that names no endpoint.
    pub fn unrecognized_url(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "Unrecognized request URL ({method}: {path}). This Stripe test double implements \
                 the part of the API Billfold uses."
            ),
        )
    }

    /// 401: no key, or not a key at all.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
    }

    /// 403: a live-mode key reached the test double, which never touches real money.
    pub fn live_key_refused() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "This is Billfold's local Stripe test double: live-mode keys (sk_live_/rk_live_) are \
             refused. Use a test key such as sk_test_123.",
        )
        .with_code("livemode_mismatch")
    }

    /// 402: the card was declined.
    pub fn card_declined(decline_code: &'static str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::PAYMENT_REQUIRED, "card_error", message)
            .with_code("card_declined");
        e.decline_code = Some(decline_code);
        e
    }

    /// 400: the same idempotency key was used with other parameters.
    pub fn idempotency_mismatch(key: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            format!(
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with. Try using a key other than '{key}' if you meant to \
                 execute a different request."
            ),
        )
    }

    /// 400: the object is not in a state that allows this.
    pub fn state(message: impl Into<String>) -> Self {
        Self::invalid_request(message)
    }

    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({
            "type": self.kind,
            "message": self.message,
        });
        if let Some(code) = self.code {
            error["code"] = json!(code);
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        if let Some(decline) = self.decline_code {
            error["decline_code"] = json!(decline);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_stripes_fields() {
        let e = ApiError::no_such("customer", "cus_x", "customer");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(
            e.body(),
            json!({"error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": "No such customer: 'cus_x'",
                "param": "customer",
            }})
        );
        let d = ApiError::card_declined("insufficient_funds", "Your card has insufficient funds.");
        assert_eq!(d.status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(d.body()["error"]["decline_code"], "insufficient_funds");
        assert_eq!(d.body()["error"]["type"], "card_error");
    }
}
