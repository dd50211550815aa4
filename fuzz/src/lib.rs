//! What the fuzz targets share: decoding a server function's form body the way leptos does,
//! and writing a `Stripe-Signature` header back out.

use axum::{
    body::Body,
    http::{header::CONTENT_TYPE, Request},
};
use billfold::{error::AppError, webhooks::signature::SignatureHeader};
use futures_util::FutureExt;
use leptos::server_fn::codec::{FromReq, PostUrl};

/// Decodes `body` into a server function's arguments exactly as the server does for a form
/// post (`PostUrl`: the body read as UTF-8, then `serde_qs` in non-strict mode, depth 5).
pub fn decode_form<T>(body: Vec<u8>) -> Result<T, AppError>
where
    T: FromReq<PostUrl, Request<Body>, AppError>,
{
    let request = Request::post("/api/fuzz")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("a request from a static method, URI and header");
    // The body is in memory, so reading it never waits.
    T::from_req(request)
        .now_or_never()
        .expect("decoding an in-memory body completes on the first poll")
}

/// The canonical header for a parsed one: `t=<t>,v1=<hex>[,v1=<hex>…]`.
pub fn header_string(header: &SignatureHeader) -> String {
    let mut out = format!("t={}", header.timestamp);
    for sig in &header.v1 {
        out.push_str(",v1=");
        out.push_str(&hex::encode(sig));
    }
    out
}
