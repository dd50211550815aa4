//! For tests: refusals the double answers instead of running a request (what Stripe says to a
//! restricted key without a permission, say), and a log of the API requests it received.
//! Neither is saved with the state: both belong to the test that set them up.

use std::collections::VecDeque;

use axum::{
    http::{header, Method, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// How many API requests the log keeps (the latest).
pub(crate) const LOGGED: usize = 1_000;

/// A refusal of every API request whose method and path match, in Stripe's error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `GET`, `POST`, … ; `None` for any method.
    pub method: Option<String>,
    /// The path under the API, e.g. `/v1/subscriptions/` (every subscription) or
    /// `/v1/subscriptions/sub_123`.
    pub path_prefix: String,
    pub status: u16,
    /// Stripe's `error.type`.
    pub kind: String,
    pub message: String,
}

impl Fault {
    /// What Stripe answers a restricted key that lacks the permission a request needs:
    /// 403, `permission_error`. No retry changes it; only the key's permissions do.
    pub fn missing_permission(method: &str, path_prefix: &str) -> Fault {
        Fault {
            method: Some(method.to_ascii_uppercase()),
            path_prefix: path_prefix.to_owned(),
            status: 403,
            kind: "permission_error".to_owned(),
            message: format!(
                "The provided key 'rk_test_****' does not have the required permissions for \
                 this endpoint ({method} {path_prefix}…). Add the permission to the key in the \
                 Dashboard, or use another key."
            ),
        }
    }

    pub(crate) fn matches(&self, method: &Method, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && path.starts_with(&self.path_prefix)
    }

    pub(crate) fn response(&self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::FORBIDDEN);
        let body = json!({"error": {"type": self.kind, "message": self.message}});
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// One API request as the double received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: String,
    /// Under the API, e.g. `/v1/events`.
    pub path: String,
    /// The raw query string (`types[0]=…&limit=100`), empty if none.
    pub query: String,
}

impl ApiRequest {
    /// The values of a query parameter, decoded: `types[]` or `types[0]`, `types[1]`, … all
    /// answer to `types`.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .filter(|(key, _)| {
                key == name
                    || key
                        .strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix('['))
                        .is_some_and(|rest| rest.ends_with(']'))
            })
            .map(|(_, value)| value.into_owned())
            .collect()
    }
}

/// The faults set up and the requests seen.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) refusals: Vec<Fault>,
    pub(crate) log: VecDeque<ApiRequest>,
}

impl Faults {
    pub(crate) fn record(&mut self, method: &Method, path: &str, query: &str) {
        if self.log.len() == LOGGED {
            self.log.pop_front();
        }
        self.log.push_back(ApiRequest {
            method: method.as_str().to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
        });
    }

    pub(crate) fn refusal(&self, method: &Method, path: &str) -> Option<Fault> {
        self.refusals
            .iter()
            .find(|f| f.matches(method, path))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_matches_its_method_and_path_prefix() {
        let f = Fault::missing_permission("get", "/v1/subscriptions/");
        assert!(f.matches(&Method::GET, "/v1/subscriptions/sub_1"));
        assert!(!f.matches(&Method::POST, "/v1/subscriptions/sub_1"));
        assert!(!f.matches(&Method::GET, "/v1/subscriptions"));
        assert_eq!(f.status, 403);
    }

    #[test]
    fn query_values_read_every_spelling_of_a_list() {
        let r = ApiRequest {
            method: "GET".into(),
            path: "/v1/events".into(),
            query: "types%5B0%5D=invoice.paid&types[1]=price.created&types[]=x&typesx=no&limit=100"
                .into(),
        };
        assert_eq!(
            r.query_values("types"),
            ["invoice.paid", "price.created", "x"]
        );
        assert_eq!(r.query_values("limit"), ["100"]);
    }
}
