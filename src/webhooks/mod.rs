//! Stripe webhooks: the route (limit → verify → parse once), signature checking, group
//! commit ([`batch`]) and the pipeline that applies each event exactly once and in order
//! through `billing::sync`.

pub mod admin;
mod batch;
pub mod event;
pub mod pipeline;
pub mod route;
pub mod signature;
