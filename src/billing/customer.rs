//! The organisation's Stripe customer: found, created on first need or at sign-up, and
//! replaced when Stripe deleted it ([`on_the_customer`] runs a call on it and recovers from
//! that). A user acts for their current organisation (`CurrentUser::org`).

use std::collections::HashMap;

use ::stripe::StripeError;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{
    limits::USER_STRIPE_CALLS,
    stripe_errors::{send_idempotent, stripe_failure},
};
use crate::{db::entities::stripe_customer, error::AppError, state::AppState, web::CurrentUser};

pub(super) fn livemode(state: &AppState) -> bool {
    state.config.stripe.mode.livemode()
}

/// The organisation's Stripe customer in this mode, unless Stripe deleted it.
pub(super) fn live_customer(
    state: &AppState,
    org_id: i64,
) -> sea_orm::Select<stripe_customer::Entity> {
    stripe_customer::Entity::find()
        .filter(stripe_customer::Column::OrganizationId.eq(org_id))
        .filter(stripe_customer::Column::Livemode.eq(livemode(state)))
        .filter(stripe_customer::Column::Deleted.eq(false))
}

/// The organisation's customer id in the current mode, if it has one.
pub async fn find_customer(state: &AppState, org_id: i64) -> Result<Option<String>, AppError> {
    Ok(live_customer(state, org_id)
        .one(&state.db)
        .await?
        .map(|c| c.customer_id))
}

/// The current organisation's Stripe customer, created on first need. One per organisation
/// per mode, whatever the concurrency: Stripe replays the same idempotency key's customer, and
/// the database keeps one row per (organisation, mode). Its email is the organisation's
/// billing address (a personal organisation's: its user's), its name a team's name.
pub async fn ensure_customer(state: &AppState, user: &CurrentUser) -> Result<String, AppError> {
    let org = &user.org;
    let existing = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::OrganizationId.eq(org.id))
        .filter(stripe_customer::Column::Livemode.eq(livemode(state)))
        .one(&state.db)
        .await?;
    // A customer deleted in Stripe is replaced: the new one gets a key of its own.
    let replaces = match existing {
        Some(row) if !row.deleted => return Ok(row.customer_id),
        Some(row) => Some(row.customer_id),
        None => None,
    };
    // Tied to this installation: another database on the same Stripe account has users with
    // the same ids, and must never be handed this one's customer. A personal organisation
    // keeps the key its user's customer had before organisations (its only member's id).
    let mode = if livemode(state) { "live" } else { "test" };
    let base = if org.personal {
        format!(
            "billfold-{}-customer-{mode}-{}",
            state.installation_id, user.id
        )
    } else {
        format!(
            "billfold-{}-customer-{mode}-org-{}",
            state.installation_id, org.id
        )
    };
    let key = match &replaces {
        None => base,
        Some(old) => format!("{base}-after-{old}"),
    };
    let email = billing_email(state, user).await?;
    let mut request = stripe_core::customer::CreateCustomer::new()
        .email(email.clone())
        .metadata(HashMap::from([
            ("user_id".to_owned(), user.id.to_string()),
            ("organization_id".to_owned(), org.id.to_string()),
        ]));
    if !org.personal {
        request = request.name(org.name.clone());
    }
    let created = send_idempotent(state, &request, &key).await;
    crate::metrics::stripe_request("customers.create", &created);
    let customer = created
        .map_err(|e| stripe_failure("create_customer", e))?
        .id
        .to_string();

    match replaces {
        None => {
            crate::billing::sync::link_customer(
                &state.db,
                crate::billing::sync::NewCustomer {
                    user_id: user.id,
                    org_id: org.id,
                    livemode: livemode(state),
                    customer_id: customer,
                    email: &email,
                },
            )
            .await?;
        }
        Some(old) => {
            crate::billing::sync::replace_customer(&state.db, org.id, &old, &customer).await?;
        }
    }
    find_customer(state, org.id)
        .await?
        .ok_or_else(|| AppError::internal("customer row missing right after insert"))
}

/// The one rule of where an organisation's receipts and invoices go (its Stripe customer's
/// email): a team's billing address, a personal organisation's user's address.
pub async fn billing_address(
    conn: &impl sea_orm::ConnectionTrait,
    org: &crate::db::entities::organization::Model,
) -> Result<Option<String>, sea_orm::DbErr> {
    if let Some(email) = &org.billing_email {
        return Ok(Some(email.clone()));
    }
    let Some(user_id) = org.personal_of else {
        return Ok(None);
    };
    Ok(crate::db::entities::user::Entity::find_by_id(user_id)
        .one(conn)
        .await?
        .map(|u| u.email))
}

/// [`billing_address`] of the current organisation (the acting user's address if it has none).
async fn billing_email(state: &AppState, user: &CurrentUser) -> Result<String, AppError> {
    let org = crate::db::entities::organization::Entity::find_by_id(user.org.id)
        .one(&state.db)
        .await?;
    let address = match org {
        Some(org) => billing_address(&state.db, &org).await?,
        None => None,
    };
    Ok(address.unwrap_or_else(|| user.email.clone()))
}

/// Sign-up creates the customer, but never fails or hangs because Stripe is slow or down:
/// slow, it is made after the answer; down, the first billing action creates it (same
/// idempotency key, so still one customer).
pub async fn create_customer_at_sign_up(state: &AppState, user: &CurrentUser) {
    // Within the budget of user-triggered Stripe calls; else made when first needed.
    if let Err(refused) = state.limits.check(&[USER_STRIPE_CALLS.on("all")]).await {
        tracing::info!(
            user_id = user.id,
            ?refused,
            "customer deferred: Stripe budget spent"
        );
        return;
    }
    // The sign-up waits five seconds at most; the work goes on past that in a task of its own,
    // so a slow Stripe never leaves a database write cut off halfway.
    let making = {
        let (state, user) = (state.clone(), user.clone());
        tokio::spawn(async move {
            if let Err(e) = ensure_customer(&state, &user).await {
                tracing::warn!(user_id = user.id, error = %e, "no Stripe customer at sign-up");
            }
        })
    };
    if tokio::time::timeout(std::time::Duration::from_secs(5), making)
        .await
        .is_err()
    {
        tracing::warn!(
            user_id = user.id,
            "Stripe slow at sign-up; the customer is made after the answer"
        );
    }
}

/// Whether Stripe no longer knows the customer Billfold holds for the user (deleted in
/// Stripe's Dashboard, or the database was pointed at another Stripe account): no retry with
/// that id can ever succeed.
fn customer_missing(err: &StripeError) -> bool {
    matches!(
        err,
        StripeError::Stripe(e, 400 | 404)
            if e.code.as_ref().is_some_and(|c| c.as_str() == "resource_missing")
                && e.param.as_deref() == Some("customer")
    )
}

/// What Stripe says of a customer it answered `resource_missing` for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CustomerStanding {
    /// Stripe deleted it: reading it answers `deleted: true`.
    Deleted,
    /// The key's account has no such customer, deleted or not.
    NotInAccount,
    /// It is there after all.
    Present,
}

/// Reads the customer (`GET /v1/customers/{id}`): only Stripe's own word that it is
/// deleted lets Billfold replace it.
async fn customer_standing(
    state: &AppState,
    customer_id: &str,
) -> Result<CustomerStanding, StripeError> {
    use stripe_core::customer::{RetrieveCustomer, RetrieveCustomerReturned};
    let read = RetrieveCustomer::new(customer_id).send(&state.stripe).await;
    crate::metrics::stripe_request("customers.retrieve", &read);
    match read {
        Ok(RetrieveCustomerReturned::DeletedCustomer(_)) => Ok(CustomerStanding::Deleted),
        Ok(RetrieveCustomerReturned::Customer(_)) => Ok(CustomerStanding::Present),
        Err(StripeError::Stripe(e, 404))
            if e.code
                .as_ref()
                .is_some_and(|c| c.as_str() == "resource_missing") =>
        {
            Ok(CustomerStanding::NotInAccount)
        }
        Err(e) => Err(e),
    }
}

/// The key's Stripe account has no such customer, not even a deleted one: the key is another
/// account's than the one the customer was made in. Replacing the customer would hand the user
/// a new, empty one, on every click, and cut them off from the plan they pay for; so the link
/// is kept, the operators get an alert, and the user an error that is not theirs to fix.
async fn customer_not_in_account(
    state: &AppState,
    user: &CurrentUser,
    customer_id: &str,
    action: &str,
) -> AppError {
    tracing::error!(
        customer = %customer_id,
        user_id = user.id,
        action,
        "Stripe's account has no such customer, not even a deleted one: STRIPE_SECRET_KEY is \
         most likely another account's. The customer is kept; billing is refused until the \
         key is fixed"
    );
    let detail = format!(
        "Stripe's account has no customer {customer_id} (user {}), not even a deleted one: \
         STRIPE_SECRET_KEY is most likely another account's than the one it was made in. \
         The user cannot open billing until the key is fixed (`billfold doctor` checks it).",
        user.id
    );
    let alert = crate::billing::sync::Alert {
        kind: crate::billing::sync::CUSTOMER_NOT_IN_ACCOUNT,
        customer_id,
        object_id: customer_id,
        detail: &detail,
    };
    if let Err(e) = crate::billing::sync::raise_alert(&state.db, alert).await {
        tracing::error!(error = %e, customer = %customer_id, "could not record the alert");
    }
    AppError::Upstream(
        "Billing is misconfigured; the operators have been told. Please try again later.".into(),
    )
}

/// Runs `call` on the user's customer. If Stripe answers that the customer does not exist,
/// Billfold reads it: one Stripe says is deleted is marked so (as `customer.deleted` does),
/// the user gets a new one, and `call` runs once more on that, so the user is never stuck.
/// One the account has never had is kept, and refused ([`customer_not_in_account`]).
pub(super) async fn on_the_customer<T, F, Fut>(
    state: &AppState,
    user: &CurrentUser,
    customer_id: String,
    action: &str,
    call: F,
) -> Result<T, AppError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, StripeError>, AppError>>,
{
    match call(customer_id.clone()).await? {
        Err(e) if customer_missing(&e) => {
            match customer_standing(state, &customer_id).await {
                Ok(CustomerStanding::Deleted) => {}
                Ok(CustomerStanding::NotInAccount) => {
                    return Err(customer_not_in_account(state, user, &customer_id, action).await)
                }
                Ok(CustomerStanding::Present) => return Err(stripe_failure(action, e)),
                Err(read) => return Err(stripe_failure(action, read)),
            }
            tracing::warn!(
                customer = %customer_id,
                action,
                "Stripe deleted the customer; replacing it"
            );
            crate::billing::sync::apply_customer_deleted(&state.db, &customer_id)
                .await
                .map_err(AppError::internal)?;
            let replacement = ensure_customer(state, user).await?;
            call(replacement)
                .await?
                .map_err(|e| stripe_failure(action, e))
        }
        answer => answer.map_err(|e| stripe_failure(action, e)),
    }
}
