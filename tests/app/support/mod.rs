//! What the stories share, and the only thing they import from each other: a story file
//! (`checkout.rs`, `webhooks.rs`, …) uses `crate::support::…` and never another story file.
//!
//! - [`app`]: the app under test ([`app::TestApp`]) on SQLite or PostgreSQL, with the Stripe
//!   double mounted in it unless the test brings a Stripe of its own; `on_both_databases!`.
//! - [`billing`]: a signed-up user and their customer, the billing server functions called as
//!   the page calls them, a subscription written into the tables or made in Stripe.
//! - The Stripe stand-ins, from the whole double to canned answers (docs/TESTING.md says which
//!   to use for what): [`standalone_stripe`], [`stripe_stand_in`], [`stripe_stub`] with the
//!   Stripe-shaped objects of [`stripe_objects`].
//! - [`mail_catcher`]: a real SMTP server (MailDev) and the mails it caught.
//! - [`portal_confirm`]: Stripe's confirmation of a plan switch, opened and confirmed.
//! - [`rows`]: the tables read and written by hand.
//! - [`patience`]: waiting for the app's background work by the clock, not by a count.
//!
//! The throw-away databases themselves come from the `billfold-test-support` crate, which the
//! benchmarks and the proof use too.

pub mod app;
pub mod billing;
pub mod mail_catcher;
pub mod patience;
pub mod portal_confirm;
pub mod rows;
pub mod standalone_stripe;
pub mod stripe_objects;
pub mod stripe_stand_in;
pub mod stripe_stub;

pub(crate) use app::on_both_databases;
