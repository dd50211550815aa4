//! Billing: the single writer of the billing tables ([`sync`]).

#[cfg(feature = "ssr")]
pub mod sync;
