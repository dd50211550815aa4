//! Payment methods. A detached method keeps its row, without a customer, so a late
//! `attached` cannot bring it back.

use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect,
};
use stripe_shared::PaymentMethod;

use super::{
    decide_or_refetch,
    write::{newer_than, upsert_guarded, watermark_of},
    Applied, Fetched, Plan, Source, SyncError,
};
use crate::db::{
    clock::now,
    entities::{payment_method, stripe_customer, subscription},
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
    // The customer's row remembers its default (from `customer.updated` or a sync), so the
    // default is right whichever of the two arrives first. Without one, a new method is the
    // default if a subscription of its customer already pays with it.
    let remembered: Option<Option<String>> = match &customer_id {
        Some(cus) => {
            stripe_customer::Entity::find()
                .select_only()
                .column(stripe_customer::Column::DefaultPaymentMethod)
                .filter(stripe_customer::Column::CustomerId.eq(cus.as_str()))
                .into_tuple()
                .one(conn)
                .await?
        }
        None => None,
    };
    let (is_default, derived) = match (&customer_id, remembered.flatten()) {
        (None, _) => (false, true),
        (Some(_), Some(default)) => (default == id, true),
        (Some(cus), None) if watermark.is_none() => {
            let pays = subscription::Entity::find()
                .filter(subscription::Column::CustomerId.eq(cus.as_str()))
                .filter(subscription::Column::DefaultPaymentMethod.eq(id))
                .filter(subscription::Column::Deleted.eq(false))
                .one(conn)
                .await?
                .is_some();
            (pays, false)
        }
        (Some(_), None) => (false, false),
    };
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
    let mut updates = vec![
        C::CustomerId,
        C::Brand,
        C::Last4,
        C::ExpMonth,
        C::ExpYear,
        C::Livemode,
        C::StripeEventAt,
        C::UpdatedAt,
    ];
    // Which attached method is the default is the customer's to say (as its row remembers
    // it); a detached one is not.
    if derived {
        updates.push(C::IsDefault);
    }
    let guard = newer_than(
        Expr::col((payment_method::Entity, C::StripeEventAt)),
        source,
    );
    Ok(upsert_guarded(conn, row, updates, guard).await?)
}
