//! Integration tests: the real router on a real port, on a temporary SQLite database and,
//! when one answers, on a fresh PostgreSQL database per test.

// Stripe-shaped fixtures are large `json!` literals.
#![recursion_limit = "256"]

mod helpers;

mod access;
mod accounts;
mod admin;
mod billing;
mod billing_support;
mod checkout_expiries;
mod customer_links;
mod doctor;
mod limits;
mod operations;
mod reconcile;
mod resilience;
mod standalone_stripe;
mod startup;
mod truth_ordering;
mod webhooks;
mod webhooks_events;
mod webhooks_support;
mod webhooks_versions;
