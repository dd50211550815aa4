//! Security headers on everything a browser gets from the app for a user: no framing
//! (clickjacking the Manage Billing and Cancel buttons), no MIME sniffing, no referrer
//! beyond the site, HSTS when the app is served over https, and a Content-Security-Policy
//! that runs the app's own scripts only, and no WASM.
//!
//! A page has one inline script (the one that answers its forms in place); a page carries a
//! fresh nonce for it, and the policy names that nonce ([`page_policy`]). Every other response
//! gets the policy without a nonce: it runs no inline script at all.

use axum::{
    body::Body,
    extract::State,
    http::{
        header::{
            CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
            X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
        },
        HeaderValue, Request,
    },
    middleware::Next,
    response::Response,
};

use crate::state::AppState;

/// The policy, with `'nonce-…'` for the page's own inline script when there is one.
/// No page compiles WASM, so the policy does not allow it; forms may post
/// anywhere (`form-action` is left out) because the Checkout and Portal buttons are sent on to
/// Stripe.
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let scripts = match nonce {
        Some(n) => format!("'self' 'nonce-{n}'"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// The policy of every response but a page's, made once.
static WITHOUT_NONCE: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
    HeaderValue::from_str(&content_security_policy(None))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"))
});

/// Called while a page renders (server side): gives the page a fresh nonce for its inline
/// script and sends the policy that allows it.
pub fn page_policy() {
    leptos::nonce::provide_nonce();
    let Some(nonce) = leptos::nonce::use_nonce() else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(Some(&nonce.to_string()))) {
        super::set_response_header(CONTENT_SECURITY_POLICY, value);
    }
}

/// Middleware: the headers on every response of the routes a browser uses for a user. A
/// policy a page already set (with its nonce) is kept.
pub async fn security_headers(
    State(state): State<AppState>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, WITHOUT_NONCE.clone());
    }
    if state.config.secure_cookies() {
        headers.insert(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_pages_own_script_and_no_framing() {
        let with = content_security_policy(Some("abc123"));
        assert!(with.contains("script-src 'self' 'nonce-abc123';"), "{with}");
        assert!(with.contains("frame-ancestors 'none'"), "{with}");
        assert!(!with.contains("unsafe-inline"), "{with}");
        let without = content_security_policy(None);
        assert!(without.contains("script-src 'self';"), "{without}");
        assert!(!without.contains("nonce"), "{without}");
    }
}
