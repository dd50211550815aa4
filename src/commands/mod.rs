//! Commands for the people who run Billfold: `billfold doctor` (the deployment checked against
//! the Stripe account it is configured for) and `billfold portal apply` (the Customer Portal
//! configured from `billing.toml`). Both read Stripe's raw JSON through
//! [`crate::stripe_api::raw`], so they can say exactly what a field holds, whatever the
//! account's shapes.

pub mod doctor;
pub mod portal;
