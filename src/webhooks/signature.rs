//! `Stripe-Signature`: how Stripe signs a webhook and how Billfold checks it.
//!
//! The header is `t=<unix>,v1=<hex>[,v1=<hex>…]` (other schemes such as `v0` are ignored).
//! The signed bytes are `"<t>.<raw body>"`, HMAC-SHA256 keyed with the whole secret string,
//! `whsec_` included. Any matching `v1` under any configured secret is enough: that is how
//! secret rotation works. Comparison is constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was not accepted. The text is safe to return to the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    MissingHeader,
    #[error("malformed Stripe-Signature header")]
    MalformedHeader,
    #[error("no v1 signature in Stripe-Signature header")]
    NoV1Signature,
    #[error("timestamp outside the tolerance (too old)")]
    TooOld,
    #[error("timestamp outside the tolerance (in the future)")]
    InFuture,
    #[error("no signature matches the payload")]
    Mismatch,
}

/// The parts of a `Stripe-Signature` header that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    /// Every `v1` signature, decoded from hex.
    pub v1: Vec<Vec<u8>>,
}

impl SignatureHeader {
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for item in header.split(',') {
            let (key, value) = item
                .trim()
                .split_once('=')
                .ok_or(SignatureError::MalformedHeader)?;
            match key {
                "t" => {
                    let t = value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::MalformedHeader)?;
                    if timestamp.replace(t).is_some() {
                        return Err(SignatureError::MalformedHeader);
                    }
                }
                // A v1 that is not hex can never match; skip it rather than fail the others.
                "v1" => {
                    if let Ok(bytes) = hex::decode(value) {
                        v1.push(bytes);
                    }
                }
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::MalformedHeader)?;
        if v1.is_empty() {
            return Err(SignatureError::NoV1Signature);
        }
        Ok(SignatureHeader { timestamp, v1 })
    }
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a delivery: header present and well-formed, timestamp within `tolerance_secs` of
/// `now` (either way), and some `v1` made with some secret over exactly these bytes.
pub fn verify<S: AsRef<str>>(
    header: Option<&str>,
    body: &[u8],
    secrets: &[S],
    now: i64,
    tolerance_secs: i64,
) -> Result<SignatureHeader, SignatureError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::MissingHeader)?;
    let parsed = SignatureHeader::parse(header)?;
    if parsed.timestamp < now.saturating_sub(tolerance_secs) {
        return Err(SignatureError::TooOld);
    }
    if parsed.timestamp > now.saturating_add(tolerance_secs) {
        return Err(SignatureError::InFuture);
    }
    let matched = secrets.iter().any(|secret| {
        let expected = mac(secret.as_ref(), parsed.timestamp, body);
        parsed
            .v1
            .iter()
            .any(|sig| expected.clone().verify_slice(sig).is_ok())
    });
    if matched {
        Ok(parsed)
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The verifier's own MAC, turned into a signer for these table tests only; the reference
    // vector below anchors it. The app signs nothing: deliveries in the integration tests are
    // signed by the Stripe test double's separate signer.
    fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    }

    fn header_value(secret: &str, timestamp: i64, body: &[u8]) -> String {
        format!("t={timestamp},v1={}", sign(secret, timestamp, body))
    }

    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    const SECRET: &str = "whsec_test_secret";
    const T: i64 = 1_700_000_000;
    const REFERENCE: &str = "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd";

    #[test]
    fn matches_stripes_reference_vector() {
        assert_eq!(sign(SECRET, T, BODY), REFERENCE);
        let header = format!("t={T},v1={REFERENCE}");
        assert!(verify(Some(&header), BODY, &[SECRET], T, 300).is_ok());
    }

    #[test]
    fn each_failure_says_which_check_failed() {
        let good = header_value(SECRET, T, BODY);
        let mut tampered = BODY.to_vec();
        tampered[8] ^= 1;
        // (header, body, secret, now, expected failure)
        type Case<'a> = (Option<String>, &'a [u8], &'a str, i64, SignatureError);
        let cases: Vec<Case> = vec![
            (None, BODY, SECRET, T, SignatureError::MissingHeader),
            (
                Some("".into()),
                BODY,
                SECRET,
                T,
                SignatureError::MissingHeader,
            ),
            (
                Some("garbage".into()),
                BODY,
                SECRET,
                T,
                SignatureError::MalformedHeader,
            ),
            (
                Some("t=abc,v1=00".into()),
                BODY,
                SECRET,
                T,
                SignatureError::MalformedHeader,
            ),
            (
                Some(format!("v1={REFERENCE}")),
                BODY,
                SECRET,
                T,
                SignatureError::MalformedHeader,
            ),
            (
                Some(format!("t={T},v0={REFERENCE}")),
                BODY,
                SECRET,
                T,
                SignatureError::NoV1Signature,
            ),
            (
                Some(good.clone()),
                &tampered,
                SECRET,
                T,
                SignatureError::Mismatch,
            ),
            (
                Some(good.clone()),
                BODY,
                "whsec_other",
                T,
                SignatureError::Mismatch,
            ),
            (
                Some(good.clone()),
                BODY,
                SECRET,
                T + 301,
                SignatureError::TooOld,
            ),
            (
                Some(good.clone()),
                BODY,
                SECRET,
                T - 301,
                SignatureError::InFuture,
            ),
        ];
        for (header, body, secret, now, want) in cases {
            assert_eq!(
                verify(header.as_deref(), body, &[secret], now, 300),
                Err(want),
                "{header:?}"
            );
        }
        // Exactly at the edge of the tolerance is still accepted.
        assert!(verify(Some(&good), BODY, &[SECRET], T + 300, 300).is_ok());
        assert!(verify(Some(&good), BODY, &[SECRET], T - 300, 300).is_ok());
    }

    #[test]
    fn rotation_any_v1_under_any_secret() {
        let old = sign("whsec_old", T, BODY);
        let new = sign("whsec_new", T, BODY);
        let header = format!("t={T},v1={old},v1={new},v0=deadbeef");
        assert!(verify(Some(&header), BODY, &["whsec_new"], T, 300).is_ok());
        assert!(verify(Some(&header), BODY, &["whsec_old"], T, 300).is_ok());
        let single = format!("t={T},v1={new}");
        assert!(verify(Some(&single), BODY, &["whsec_old", "whsec_new"], T, 300).is_ok());
        assert_eq!(
            verify(Some(&single), BODY, &["whsec_old", "whsec_x"], T, 300),
            Err(SignatureError::Mismatch)
        );
        // A garbled v1 next to a good one does not spoil it.
        let mixed = format!("t={T},v1=zz-not-hex,v1={new}");
        assert!(verify(Some(&mixed), BODY, &["whsec_new"], T, 300).is_ok());
    }
}
