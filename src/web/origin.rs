//! The cross-origin guard (CSRF): state-changing requests must come from this site.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, Request, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::state::AppState;

/// Middleware: state-changing requests from another origin are refused (CSRF). Layered on
/// the routes a browser acts on for a user; machine routes (webhooks) are not under it.
///
/// A browser always sends `Origin` on a cross-origin POST; it must equal `APP_URL`'s origin
/// (or the origin the request was addressed to). Requests with neither `Origin` nor `Referer`
/// come from non-browser clients, which carry no ambient cookies to abuse.
pub async fn origin_guard(
    State(state): State<AppState>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let safe_method = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe_method || same_origin(req.headers(), &state.config.app_origin()) {
        return next.run(req).await;
    }
    tracing::warn!(path = %req.uri().path(), "cross-origin request refused");
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({ "error": "Cross-origin request refused." })),
    )
        .into_response()
}

/// Whether a request's `Sec-Fetch-Site`, `Origin` and `Referer` say it came from this site.
pub fn same_origin(headers: &HeaderMap, app_origin: &str) -> bool {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if header_str("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    let host_origin = header_str("host").map(|h| format!("//{h}"));
    let matches = |origin: &str| {
        origin == app_origin
            || host_origin
                .as_deref()
                .is_some_and(|h| origin.split_once(':').is_some_and(|(_, rest)| rest == h))
    };
    if let Some(origin) = header_str("origin") {
        return origin != "null" && matches(origin);
    }
    if let Some(referer) = header_str("referer") {
        return url::Url::parse(referer)
            .map(|u| matches(&u.origin().ascii_serialization()))
            .unwrap_or(false);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_checks() {
        let app = "http://127.0.0.1:3000";
        let host = ("host", "127.0.0.1:3000");
        assert!(same_origin(
            &headers(&[host, ("origin", "http://127.0.0.1:3000")]),
            app
        ));
        assert!(same_origin(
            &headers(&[
                ("host", "localhost:3000"),
                ("origin", "http://localhost:3000")
            ]),
            app
        ));
        assert!(!same_origin(
            &headers(&[host, ("origin", "https://evil.example")]),
            app
        ));
        assert!(!same_origin(&headers(&[host, ("origin", "null")]), app));
        assert!(same_origin(
            &headers(&[host, ("referer", "http://127.0.0.1:3000/login")]),
            app
        ));
        assert!(!same_origin(
            &headers(&[host, ("referer", "https://evil.example/x")]),
            app
        ));
        assert!(!same_origin(
            &headers(&[host, ("sec-fetch-site", "cross-site")]),
            app
        ));
        assert!(same_origin(&headers(&[host]), app), "non-browser clients");
    }
}
