//! Commands for the people who run Billfold: `billfold doctor` (the deployment checked against
//! the Stripe account it is configured for), `billfold catalog apply` (the plans for sale made
//! real in Stripe) and `billfold portal apply` (the Customer Portal configured from
//! `billing.toml`). They read Stripe's raw JSON through
//! [`crate::stripe_api::raw`], so they can say exactly what a field holds, whatever the
//! account's shapes.

pub mod catalog;
pub mod doctor;
pub mod portal;
