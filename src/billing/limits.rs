//! How often users may make Billfold call Stripe: sessions per user, re-syncs per customer,
//! and the budget all users share.

use std::time::Duration;

use crate::{error::AppError, limits::Rule, state::AppState, web::CurrentUser};

/// Portal and Checkout sessions per user.
pub static SESSIONS_PER_USER: Rule = Rule::new("sessions", 10, Duration::from_secs(60));
/// The Stripe API calls users can cause (sessions, re-syncs), all users together: what is
/// left of the account's Stripe rate limit stays for webhooks' re-fetches and the reconciler.
pub static USER_STRIPE_CALLS: Rule = Rule::new("stripe-user-calls", 50, Duration::from_secs(10));
/// Re-syncs of one customer on return from Checkout or the Portal: three in a row (a
/// Checkout and a portal return close together are both right), then one every ~3 s, on
/// whichever replica.
pub static RESYNCS_PER_CUSTOMER: Rule = Rule::new("resync", 3, Duration::from_secs(10));

/// Portal and Checkout sessions: within the user's own limit and the shared Stripe budget.
pub(super) async fn limit_sessions(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    state
        .limits
        .enforce(
            &[
                SESSIONS_PER_USER.on(user.id.to_string()),
                USER_STRIPE_CALLS.on("all"),
            ],
            "Too many attempts to open billing.",
        )
        .await
}
