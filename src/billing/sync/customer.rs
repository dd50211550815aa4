//! Customers: only those Billfold has linked to a user, and which of their payment
//! methods is the default.

use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use stripe_core::customer::RetrieveCustomerReturned;
use stripe_shared::Customer;

use super::{
    again_on_tie, decide_or_refetch,
    write::{newer_than, written},
    Applied, Fetched, Plan, Source, SyncError,
};
use crate::db::{
    clock,
    entities::{payment_method, stripe_customer},
};

/// Applies `customer.updated` (or a customer read from the API): email, name, and which
/// payment method is the default. The default is remembered on the customer's row, so a
/// card that arrives later still knows whether it is the one. Customers Billfold has not
/// linked to a user are ignored.
pub async fn apply_customer(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    cus: &Customer,
    source: Source,
) -> Result<Applied, SyncError> {
    let id = cus.id.as_str();
    again_on_tie(
        source,
        || apply_once(conn, fetched, cus, source),
        || async { Ok(customer_watermark(conn, id).await?.flatten()) },
    )
    .await
}

/// The customer row's watermark: `None` when Billfold does not know the customer.
async fn customer_watermark(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<Option<i64>>, DbErr> {
    use stripe_customer::Column as C;
    stripe_customer::Entity::find()
        .select_only()
        .column(C::StripeEventAt)
        .filter(C::CustomerId.eq(id))
        .into_tuple()
        .one(conn)
        .await
}

async fn apply_once(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    cus: &Customer,
    source: Source,
) -> Result<Applied, SyncError> {
    use stripe_customer::Column as C;
    let id = cus.id.as_str();
    let Some(watermark) = customer_watermark(conn, id).await? else {
        return Ok(Applied::Ignored);
    };
    let refetch = |after| fetched.customer(id, after);
    let (source, fetched) = match decide_or_refetch(watermark, source, refetch)? {
        Plan::Stale => return Ok(Applied::Stale),
        Plan::Write {
            fetched: Some(RetrieveCustomerReturned::DeletedCustomer(_)),
            ..
        } => return apply_customer_deleted(conn, id).await,
        Plan::Write {
            source,
            fetched: Some(RetrieveCustomerReturned::Customer(c)),
        } => (source, Some(c)),
        Plan::Write {
            source,
            fetched: None,
        } => (source, None),
    };
    let cus = fetched.as_ref().unwrap_or(cus);
    // The row exists, so this is an update; the guard is the same as an upsert's.
    let guard = newer_than(
        Expr::col((stripe_customer::Entity, C::StripeEventAt)),
        source,
    );
    let rows = stripe_customer::Entity::update_many()
        .col_expr(C::Email, Expr::value(cus.email.clone()))
        .col_expr(C::Name, Expr::value(cus.name.clone()))
        .col_expr(
            C::DefaultPaymentMethod,
            Expr::value(default_payment_method(cus)),
        )
        .col_expr(C::StripeEventAt, Expr::value(source.at()))
        .filter(C::CustomerId.eq(id))
        .filter(guard)
        .exec(conn)
        .await?
        .rows_affected;
    if written(rows) == Applied::Stale {
        return Ok(Applied::Stale);
    }
    set_default_payment_method(conn, id, default_payment_method(cus).as_deref()).await?;
    Ok(Applied::Applied)
}

/// The customer's default payment method, as its invoice settings name it.
pub(super) fn default_payment_method(cus: &Customer) -> Option<String> {
    cus.invoice_settings
        .as_ref()
        .and_then(|s| s.default_payment_method.as_ref())
        .map(|pm| pm.id().as_str().to_owned())
}

/// Marks exactly one (or no) payment method of a customer as the default.
pub(super) async fn set_default_payment_method(
    conn: &impl ConnectionTrait,
    customer_id: &str,
    default_pm: Option<&str>,
) -> Result<(), DbErr> {
    let is_default = match default_pm {
        Some(pm) => Expr::col(payment_method::Column::Id).eq(pm),
        None => Expr::value(false),
    };
    payment_method::Entity::update_many()
        .col_expr(payment_method::Column::IsDefault, is_default)
        .filter(payment_method::Column::CustomerId.eq(customer_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Applies `customer.deleted`. Final, like a subscription's deletion: the mapping to the
/// user stays (marked deleted) so invoices and history still resolve.
pub async fn apply_customer_deleted(
    conn: &impl ConnectionTrait,
    customer_id: &str,
) -> Result<Applied, SyncError> {
    let written = stripe_customer::Entity::update_many()
        .col_expr(stripe_customer::Column::Deleted, Expr::value(true))
        .filter(stripe_customer::Column::CustomerId.eq(customer_id))
        .exec(conn)
        .await?;
    Ok(if written.rows_affected > 0 {
        Applied::Applied
    } else {
        Applied::Ignored
    })
}

/// A customer just made for an organisation.
pub struct NewCustomer<'a> {
    /// The member who opened it.
    pub user_id: i64,
    pub org_id: i64,
    pub livemode: bool,
    pub customer_id: String,
    pub email: &'a str,
}

/// Links the organisation to its first Stripe customer in this mode. A row already there for
/// the organisation and mode (a concurrent request made the same customer) is kept as it is.
pub async fn link_customer(
    db: &sea_orm::DatabaseConnection,
    new: NewCustomer<'_>,
) -> Result<(), DbErr> {
    let row = stripe_customer::ActiveModel {
        user_id: Set(new.user_id),
        organization_id: Set(Some(new.org_id)),
        livemode: Set(new.livemode),
        customer_id: Set(new.customer_id),
        email: Set(Some(new.email.to_owned())),
        deleted: Set(false),
        created_at: Set(clock::now()),
        ..Default::default()
    };
    stripe_customer::Entity::insert(row)
        .on_conflict_do_nothing_on([
            stripe_customer::Column::OrganizationId,
            stripe_customer::Column::Livemode,
        ])
        .exec(db)
        .await?;
    Ok(())
}

/// Links the organisation to `new` in place of `old`, a customer Stripe said is deleted, keeping
/// `old` on the row. Only a request that still sees `old` swaps it: a concurrent one got the
/// same new customer (the same idempotency key) and finds the row swapped already. The old
/// customer's open Checkout session is remembered to be expired.
pub async fn replace_customer(
    db: &sea_orm::DatabaseConnection,
    org_id: i64,
    old: &str,
    new: &str,
) -> Result<(), DbErr> {
    use stripe_customer::Column as C;
    let txn = super::begin_write(db).await?;
    let open: Option<Option<String>> = stripe_customer::Entity::find()
        .select_only()
        .column(C::OpenCheckoutSession)
        .filter(C::OrganizationId.eq(org_id))
        .filter(C::CustomerId.eq(old))
        .into_tuple()
        .one(&*txn)
        .await?;
    let swapped = stripe_customer::Entity::update_many()
        .col_expr(C::CustomerId, Expr::value(new))
        .col_expr(C::PreviousCustomerId, Expr::value(old))
        .col_expr(C::Deleted, Expr::value(false))
        .col_expr(C::OpenCheckoutSession, Expr::value(None::<String>))
        .col_expr(C::DefaultPaymentMethod, Expr::value(None::<String>))
        .col_expr(C::StripeEventAt, Expr::value(None::<i64>))
        .filter(C::OrganizationId.eq(org_id))
        .filter(C::CustomerId.eq(old))
        .exec(&*txn)
        .await?
        .rows_affected;
    if let (1, Some(Some(session))) = (swapped, open) {
        super::open_checkout::remember_in(&*txn, &session, old).await?;
    }
    txn.commit().await
}
