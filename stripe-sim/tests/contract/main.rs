//! Contract tests for the Stripe test double: each one drives it through async-stripe's own
//! client (or over raw HTTP where the wire itself is the point), so a response or an event
//! that async-stripe cannot parse fails here.

mod clock;
mod entitlements;
mod errors;
mod events;
mod helpers;
mod hosted;
mod payment_methods;
mod plan_change;
mod plans;
mod resources;
mod test_clocks;
mod webhooks;
