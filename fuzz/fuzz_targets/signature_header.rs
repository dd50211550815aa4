//! `Stripe-Signature` header parsing: never panics; a parsed header has a v1 and written back
//! out parses to the same header; checking it against any body never panics either.
#![no_main]

use billfold::webhooks::signature::{verify, SignatureError, SignatureHeader};
use billfold_fuzz::header_string;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match SignatureHeader::parse(text) {
        Ok(header) => {
            assert!(!header.v1.is_empty(), "parsed without a v1: {text:?}");
            let again = header_string(&header);
            assert_eq!(
                SignatureHeader::parse(&again),
                Ok(header.clone()),
                "{text:?} → {again:?}"
            );
            // It verifies exactly when one of its v1s is the real signature (made by the
            // double's separate signer).
            let real = hex::decode(stripe_sim::signature::v1_signature(
                "whsec_fuzz",
                header.timestamp,
                b"{}",
            ))
            .expect("the signer writes hex");
            let checked = verify(Some(text), b"{}", &["whsec_fuzz"], header.timestamp, 300);
            assert_eq!(
                checked.is_ok(),
                header.v1.contains(&real),
                "{text:?}: {checked:?}"
            );
            if let Err(e) = checked {
                assert_eq!(e, SignatureError::Mismatch, "{text:?}");
            }
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    SignatureError::MalformedHeader | SignatureError::NoV1Signature
                ),
                "{text:?}: {e:?}"
            );
            assert!(verify(Some(text), b"{}", &["whsec_fuzz"], 0, 300).is_err());
        }
    }
});
