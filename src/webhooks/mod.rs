//! Stripe webhooks: signature checking now; the route and the event pipeline build on it.

pub mod signature;
