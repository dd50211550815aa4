//! Payment methods. A detached method keeps its row, without a customer, so a late
//! `attached` cannot bring it back.

use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect,
};
use stripe_shared::PaymentMethod;

use super::{
    again_on_tie, decide_or_refetch,
    write::{newer_than, upsert_guarded, watermark_of},
    Applied, Fetched, Plan, Source, SyncError,
};
use crate::db::{
    clock::now,
    entities::{payment_method, stripe_customer},
};

/// Applies a payment method (`payment_method.attached|updated|automatically_updated`, or
/// `detached` with `detached = true`, or one read from the API).
pub async fn apply_payment_method(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    pm: &PaymentMethod,
    source: Source,
    detached: bool,
) -> Result<Applied, SyncError> {
    again_on_tie(
        source,
        || apply_once(conn, fetched, pm, source, detached),
        || {
            watermark_of::<payment_method::Entity>(
                conn,
                pm.id.as_str(),
                payment_method::Column::StripeEventAt,
            )
        },
    )
    .await
}

async fn apply_once(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    pm: &PaymentMethod,
    source: Source,
    detached: bool,
) -> Result<Applied, SyncError> {
    use payment_method::Column as C;
    let id = pm.id.as_str();
    let watermark = watermark_of::<payment_method::Entity>(conn, id, C::StripeEventAt).await?;
    let refetch = |after| fetched.payment_method(id, after);
    let (source, fetched) = match decide_or_refetch(watermark, source, refetch)? {
        Plan::Stale => return Ok(Applied::Stale),
        Plan::Write { source, fetched } => (source, fetched),
    };
    let refetched = fetched.is_some();
    let pm = fetched.as_ref().unwrap_or(pm);
    let customer_id = if detached && !refetched {
        None
    } else {
        pm.customer.as_ref().map(|c| c.id().as_str().to_owned())
    };
    // Stripe's default is the customer's to name (`invoice_settings.default_payment_method`),
    // and the customer's row remembers it (from `customer.updated` or a sync), so the
    // default is right whichever of the two arrives first. Until the customer names one,
    // no card is the default.
    let remembered: Option<Option<String>> = match &customer_id {
        Some(cus) => {
            stripe_customer::Entity::find()
                .select_only()
                .column(stripe_customer::Column::DefaultPaymentMethod)
                .filter(stripe_customer::Column::CustomerId.eq(cus.as_str()))
                // On PostgreSQL, a concurrent `customer.updated` holds this row until it
                // commits; a share lock waits for it and reads what it wrote, so the two
                // never miss each other (SQLite has one writer and needs no lock).
                .lock_shared()
                .into_tuple()
                .one(conn)
                .await?
        }
        None => None,
    };
    let is_default = customer_id.is_some() && remembered.flatten().as_deref() == Some(id);
    let card = pm.card.as_ref();
    let row = payment_method::ActiveModel {
        id: Set(id.to_owned()),
        customer_id: Set(customer_id.clone()),
        brand: Set(card.map(|c| c.brand.clone())),
        last4: Set(card.map(|c| c.last4.clone())),
        exp_month: Set(card.and_then(|c| i32::try_from(c.exp_month).ok())),
        exp_year: Set(card.and_then(|c| i32::try_from(c.exp_year).ok())),
        is_default: Set(is_default),
        livemode: Set(pm.livemode),
        stripe_event_at: Set(Some(source.at())),
        updated_at: Set(now()),
    };
    let updates = [
        C::CustomerId,
        C::Brand,
        C::Last4,
        C::ExpMonth,
        C::ExpYear,
        C::IsDefault,
        C::Livemode,
        C::StripeEventAt,
        C::UpdatedAt,
    ];
    let guard = newer_than(
        Expr::col((payment_method::Entity, C::StripeEventAt)),
        source,
    );
    Ok(upsert_guarded(conn, row, updates, guard).await?)
}
