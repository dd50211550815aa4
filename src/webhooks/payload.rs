//! How an event's payload is stored: deflated, as `deflate:` and the compressed bytes in
//! base64, in the same text column as before. A Stripe event is JSON that repeats its keys
//! and ids, so this stores a ~6 KB subscription event in well under half its size, and the
//! rows every delivery writes (and the pages of the table that compete for the disk with
//! every commit) shrink with it. A payload stored before, plain JSON, reads back as it is.
//!
//! The one reader of a stored payload is [`text`]; the one writer, [`stored`].

use std::borrow::Cow;

use base64::{engine::general_purpose::STANDARD, Engine};
use flate2::{read::DeflateDecoder, write::DeflateEncoder, Compression};

/// What a deflated payload starts with. Stripe's events are JSON objects (`{…`), so the two
/// never meet.
const DEFLATED: &str = "deflate:";

/// Bodies shorter than this are kept as they are: deflating them saves too little.
const WORTH_DEFLATING: usize = 512;

/// The largest payload [`text`] inflates: four times the largest body the webhook route
/// accepts, so a row someone edited by hand cannot make a reader allocate without bound.
const MAX_INFLATED: u64 = 4 * 1024 * 1024;

/// The text to store for a delivered body (the body itself when deflating saves nothing).
pub fn stored(body: &[u8]) -> String {
    let plain = || String::from_utf8_lossy(body).into_owned();
    if body.len() < WORTH_DEFLATING {
        return plain();
    }
    // Level 1: most of the saving, at a small cost per event on the webhook path.
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(body.len() / 3), Compression::fast());
    let deflated = std::io::Write::write_all(&mut encoder, body)
        .and_then(|()| encoder.finish())
        .ok();
    match deflated {
        Some(bytes) if DEFLATED.len() + bytes.len().div_ceil(3) * 4 < body.len() => {
            let mut out = String::with_capacity(DEFLATED.len() + bytes.len().div_ceil(3) * 4);
            out.push_str(DEFLATED);
            STANDARD.encode_string(&bytes, &mut out);
            out
        }
        _ => plain(),
    }
}

/// The payload as delivered, from what was stored (an emptied payload stays empty). A stored
/// text that does not inflate reads as itself, so an operator still sees what is there.
pub fn text(stored: &str) -> Cow<'_, str> {
    let Some(encoded) = stored.strip_prefix(DEFLATED) else {
        return Cow::Borrowed(stored);
    };
    let inflated = STANDARD.decode(encoded).ok().and_then(|bytes| {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        let reader = std::io::Read::take(DeflateDecoder::new(bytes.as_slice()), MAX_INFLATED);
        std::io::copy(&mut { reader }, &mut out).ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    });
    match inflated {
        Some(text) => Cow::Owned(text),
        None => Cow::Borrowed(stored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(padding: usize) -> String {
        format!(
            r#"{{"id":"evt_1","object":"event","type":"customer.subscription.updated","data":{{"object":{{"id":"sub_1","customer":"cus_1","items":"{}"}}}}}}"#,
            "price_1 ".repeat(padding)
        )
    }

    #[test]
    fn a_payload_reads_back_as_delivered_and_stores_smaller() {
        let body = event(600);
        let kept = stored(body.as_bytes());
        assert!(kept.starts_with(DEFLATED), "{kept}");
        assert!(
            kept.len() * 3 < body.len(),
            "{} of {}",
            kept.len(),
            body.len()
        );
        assert_eq!(text(&kept), body);
    }

    #[test]
    fn small_and_earlier_payloads_are_kept_as_they_are() {
        let small = event(0);
        assert_eq!(stored(small.as_bytes()), small);
        assert_eq!(text(&small), small);
        let earlier = event(600);
        assert!(matches!(text(&earlier), Cow::Borrowed(s) if s == earlier));
        assert_eq!(text(""), "");
    }

    #[test]
    fn a_stored_text_that_does_not_inflate_reads_as_itself() {
        for broken in [
            "deflate:",
            "deflate:!!!",
            "deflate:AAAA",
            "deflate:eyJpZCI6MX0=",
        ] {
            assert_eq!(text(broken), broken);
        }
    }

    #[test]
    fn a_body_that_is_not_utf8_is_stored_as_the_text_it_reads_as() {
        let body = [b'{', 0xff, b'}'];
        assert_eq!(stored(&body), "{\u{fffd}}");
    }
}
