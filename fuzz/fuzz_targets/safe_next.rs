//! The `next=` redirect target: whatever comes in, what goes out is a path on this site, and a
//! target that was already safe is kept as it was (trimmed).
#![no_main]

use billfold::auth::validate::safe_next;
use libfuzzer_sys::fuzz_target;

const DEFAULT: &str = "/settings/billing";

fn is_same_site_path(s: &str) -> bool {
    s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s.chars().any(char::is_control)
        && !s.starts_with("/api/")
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let out = safe_next(Some(input));
    assert!(is_same_site_path(&out), "{input:?} → {out:?}");
    // What a browser resolves it against is this site: no scheme, no authority.
    let base = url::Url::parse("https://billing.example.com/login").expect("a URL");
    let resolved = base.join(&out).expect("a path resolves");
    assert_eq!(resolved.host_str(), Some("billing.example.com"), "{out:?}");
    assert_eq!(resolved.scheme(), "https");
    // The header it becomes is valid (axum's Redirect::to panics on one that is not).
    assert!(axum::http::HeaderValue::from_str(&out).is_ok(), "{out:?}");
    if is_same_site_path(input.trim()) {
        assert_eq!(out, input.trim());
    } else {
        assert_eq!(out, DEFAULT, "{input:?}");
    }
    assert_eq!(safe_next(Some(&out)), out, "not idempotent");
});
