//! Integration tests: the real router on a real port, on a temporary SQLite database and,
//! when one answers, on a fresh PostgreSQL database per test; and the property tests of the
//! parsers strangers feed. One test binary, one module per story.
//!
//! What the stories share lives in `support/` (the app under test, the Stripe stand-ins,
//! billing helpers); a story imports `crate::support::…` and never another story.

// Stripe-shaped fixtures are large `json!` literals.
#![recursion_limit = "256"]

mod support;

mod access;
mod accounts;
mod admin;
mod big_database;
mod billing_mail;
mod billing_page;
mod billing_state;
mod catalog;
mod checkout;
mod checkout_expiries;
mod customer_at_sign_up;
mod customer_links;
mod doctor;
mod entitlements;
mod limits;
mod mail;
mod operations;
mod organizations;
mod parsers;
mod plan_switch;
mod portal;
mod reconcile;
mod resilience;
mod startup;
mod stripe_cli;
mod stripe_updates;
mod test_clocks;
mod truth_ordering;
mod webhooks;
mod webhooks_events;
mod webhooks_versions;
