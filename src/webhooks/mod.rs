//! Stripe webhooks: the route, signature checking, and the pipeline that applies each
//! event exactly once and in order through `billing::sync`.

pub mod admin;
pub mod event;
mod group_commit;
pub mod pipeline;
pub mod route;
pub mod signature;
