//! Webhook verification against the double's separate signer: a delivery signed with the
//! endpoint's secret verifies exactly when its timestamp is within the tolerance; a changed
//! body byte, or only another secret, never verifies; extra v0/v1 items do not get in the way.
#![no_main]

use billfold::webhooks::signature::{verify, SignatureError};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use stripe_sim::signature::{header_value, v1_signature};

const TOLERANCE: i64 = 300;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(secret), Ok(other), Ok(t), Ok(skew), Ok(extras), Ok(flip_at), Ok(flip)) = (
        u.arbitrary::<String>(),
        u.arbitrary::<String>(),
        u.arbitrary::<i64>(),
        u.arbitrary::<i16>(),
        u.arbitrary::<u8>(),
        u.arbitrary::<usize>(),
        u.arbitrary::<u8>(),
    ) else {
        return;
    };
    let body = u.take_rest();
    let now = t.saturating_add(i64::from(skew));

    // Stripe's header, maybe with a rotated-out secret's v1 and a v0 around it.
    let mut header = header_value(&secret, t, body);
    if extras & 1 != 0 {
        header = format!("{header},v1={}", v1_signature(&other, t, body));
    }
    if extras & 2 != 0 {
        header = format!("{header},v0=deadbeef");
    }
    if extras & 4 != 0 {
        header = header.replace(',', " , ");
    }

    let result = verify(
        Some(&header),
        body,
        &[other.as_str(), secret.as_str()],
        now,
        TOLERANCE,
    );
    let diff = i128::from(now) - i128::from(t);
    if diff > i128::from(TOLERANCE) {
        assert_eq!(result.err(), Some(SignatureError::TooOld), "{header}");
        return;
    }
    if diff < -i128::from(TOLERANCE) {
        assert_eq!(result.err(), Some(SignatureError::InFuture), "{header}");
        return;
    }
    let parsed = result.unwrap_or_else(|e| panic!("a good signature refused: {e:?} ({header})"));
    assert_eq!(parsed.timestamp, t);

    // HMAC pads a short key with zero bytes, so `k` and `k\0` are one key: only secrets that
    // differ beyond that are different (Stripe's `whsec_…` secrets never hold a NUL).
    if secret.trim_end_matches('\0') != other.trim_end_matches('\0') {
        let signed_with_secret_only = header_value(&secret, t, body);
        assert_eq!(
            verify(
                Some(&signed_with_secret_only),
                body,
                &[other.as_str()],
                now,
                TOLERANCE
            )
            .err(),
            Some(SignatureError::Mismatch),
            "verified under a secret it was not signed with"
        );
    }
    if !body.is_empty() && flip != 0 {
        let mut changed = body.to_vec();
        let i = flip_at % changed.len();
        changed[i] ^= flip;
        assert_eq!(
            verify(Some(&header), &changed, &[secret.as_str()], now, TOLERANCE).err(),
            Some(SignatureError::Mismatch),
            "a changed body verified"
        );
    }
});
