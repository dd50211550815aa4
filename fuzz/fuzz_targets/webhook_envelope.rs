//! The webhook event envelope: any body is an event or a clean refusal, never a panic. An
//! accepted event has an `evt_` id and a type and keeps the body as delivered; its envelope
//! written out as a fresh event reads back the same.
#![no_main]

use axum::body::Bytes;
use billfold::webhooks::event::{Envelope, Kind, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = Envelope::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert!(env.id.starts_with("evt_"), "{:?}", env.id);
    assert!(!env.event_type.is_empty());
    assert_eq!(env.body(), data);
    let catalogue = matches!(
        Kind::of(&env.event_type),
        Some(Kind::Product { .. } | Kind::Price { .. })
    );
    match env.scope() {
        Scope::Catalogue => assert!(catalogue, "{}", env.event_type),
        Scope::Customer(_) => assert!(!catalogue, "{}", env.event_type),
    }

    let fresh = serde_json::json!({
        "id": env.id,
        "object": "event",
        "type": env.event_type,
        "created": env.created,
        "livemode": env.livemode,
        "api_version": env.api_version,
        "pending_webhooks": 1,
        "data": { "object": { "object": "unknown" } },
    });
    let bytes = serde_json::to_vec(&fresh).expect("a JSON value serialises");
    let again = Envelope::parse(Bytes::from(bytes)).expect("a well-formed event is accepted");
    assert_eq!(
        (
            &again.id,
            &again.event_type,
            again.created,
            again.livemode,
            &again.api_version
        ),
        (
            &env.id,
            &env.event_type,
            env.created,
            env.livemode,
            &env.api_version
        )
    );
});
