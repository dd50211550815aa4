//! Server-function form bodies, decoded as leptos decodes a form post into each function's
//! arguments: never a panic, and what decodes re-encodes (as leptos's own client encodes it)
//! to a body that decodes to the same arguments. The first byte picks the function.
#![no_main]

use std::fmt::Debug;

use billfold::{
    accounts::SignUp,
    auth::{LogIn, LogOut},
    billing::api::{CreateBillingAccount, GetBillingSummary, OpenBillingPortal, StartCheckout},
    error::AppError,
};
use billfold_fuzz::decode_form;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;

fn check<T>(body: &[u8])
where
    T: Serialize
        + Debug
        + leptos::server_fn::codec::FromReq<
            leptos::server_fn::codec::PostUrl,
            axum::http::Request<axum::body::Body>,
            AppError,
        >,
{
    match decode_form::<T>(body.to_vec()) {
        Ok(args) => {
            let encoded = serde_qs::to_string(&args).expect("arguments encode");
            let again = decode_form::<T>(encoded.clone().into_bytes())
                .unwrap_or_else(|e| panic!("{args:?} → {encoded:?} does not decode: {e:?}"));
            assert_eq!(format!("{again:?}"), format!("{args:?}"), "via {encoded:?}");
        }
        Err(e) => {
            // Always the client's fault (400), never an internal error.
            assert!(matches!(e, AppError::Invalid { field: None, .. }), "{e:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 7 {
        0 => check::<LogIn>(body),
        1 => check::<SignUp>(body),
        2 => check::<StartCheckout>(body),
        3 => check::<OpenBillingPortal>(body),
        4 => check::<GetBillingSummary>(body),
        5 => check::<LogOut>(body),
        _ => check::<CreateBillingAccount>(body),
    }
});
