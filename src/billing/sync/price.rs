//! Prices and products. A product is ordered on its own row (`products`); its name and
//! active flag are copied onto each of its prices and onto its subscriptions' plan names
//! whenever that row takes a newer state.

use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
};
use stripe_shared::{Price, Product};

use super::{
    again_on_tie, decide, decide_or_refetch,
    write::{newer_than, upsert_guarded, watermark_of},
    Applied, Decision, Fetched, Plan, Source, SyncError,
};
use crate::db::{
    cache::catalogue_changed,
    clock::now,
    entities::{price, product as product_row, subscription},
};

/// A product's name and whether it can be sold, as its own row says.
async fn product_state(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<(String, bool)>, DbErr> {
    use product_row::Column as C;
    let row: Option<(String, bool, bool)> = product_row::Entity::find_by_id(id)
        .select_only()
        .columns([C::Name, C::Active, C::Deleted])
        // On PostgreSQL a concurrent rename holds the row until it commits; the share lock
        // waits for it, so a price written now never keeps the old name (see `apply_product`).
        .lock_shared()
        .into_tuple()
        .one(conn)
        .await?;
    Ok(row.map(|(name, active, deleted)| (name, active && !deleted)))
}

/// The product name for a price: from the expanded product, from the product's row, from a
/// price we already know, or from the API (and then remembered, with the price, in
/// `prices`, and in `products`).
pub(super) async fn product_name_for(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    p: &Price,
) -> Result<String, SyncError> {
    if let Some(product) = p.product.as_object() {
        return Ok(product.name.clone());
    }
    if let Some((name, active)) = product_state(conn, p.product.id().as_str()).await? {
        remember_price(conn, p, &name, Some(active)).await?;
        return Ok(name);
    }
    let known: Option<String> = price::Entity::find()
        .select_only()
        .column(price::Column::ProductName)
        .filter(
            price::Column::Id
                .eq(p.id.as_str())
                .or(price::Column::ProductId.eq(p.product.id().as_str())),
        )
        .into_tuple()
        .one(conn)
        .await?;
    if let Some(name) = known {
        remember_price(conn, p, &name, None).await?;
        return Ok(name);
    }
    let Some((product, read_at)) = fetched.product(p.product.id().as_str(), None)? else {
        // Stripe keeps a product while any price of it exists; should it not, the id is
        // the best name left, and a later product event or re-sync replaces it.
        return Ok(p.product.id().as_str().to_owned());
    };
    apply_product(conn, fetched, &product, Source::Api(read_at), false).await?;
    remember_price(conn, p, &product.name, Some(product.active)).await?;
    Ok(product.name)
}

/// Records a price seen inside another object if `prices` does not have it yet. It gets no
/// watermark: any price event about it is newer.
async fn remember_price(
    conn: &impl ConnectionTrait,
    p: &Price,
    product_name: &str,
    product_active: Option<bool>,
) -> Result<(), DbErr> {
    let row = price_row(p, product_name, product_active.unwrap_or(true), None);
    catalogue_changed();
    price::Entity::insert(row)
        .on_conflict(
            OnConflict::column(price::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn price_row(
    p: &Price,
    product_name: &str,
    product_active: bool,
    at: Option<i64>,
) -> price::ActiveModel {
    let recurring = p.recurring.as_ref();
    price::ActiveModel {
        id: Set(p.id.as_str().to_owned()),
        product_id: Set(p.product.id().as_str().to_owned()),
        product_name: Set(product_name.to_owned()),
        product_active: Set(product_active),
        nickname: Set(p.nickname.clone()),
        unit_amount: Set(p.unit_amount),
        currency: Set(p.currency.to_string()),
        interval: Set(recurring.map(|r| r.interval.as_str().to_owned())),
        interval_count: Set(recurring.and_then(|r| i32::try_from(r.interval_count).ok())),
        trial_period_days: Set(recurring
            .and_then(|r| r.trial_period_days)
            .and_then(|d| i32::try_from(d).ok())),
        active: Set(p.active),
        lookup_key: Set(p.lookup_key.clone()),
        livemode: Set(p.livemode),
        stripe_event_at: Set(at),
        updated_at: Set(now()),
    }
}

/// Applies a price (`price.created|updated|deleted`, or one read from the API). A deleted
/// price stays as a row, inactive, because subscriptions may still point at it.
pub async fn apply_price(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    p: &Price,
    source: Source,
    deletion: bool,
) -> Result<Applied, SyncError> {
    again_on_tie(
        source,
        || apply_price_once(conn, fetched, p, source, deletion),
        || watermark_of::<price::Entity>(conn, p.id.as_str(), price::Column::StripeEventAt),
    )
    .await
}

async fn apply_price_once(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    p: &Price,
    source: Source,
    deletion: bool,
) -> Result<Applied, SyncError> {
    use price::Column as C;
    let existing: Option<(Option<i64>, String, bool)> = price::Entity::find_by_id(p.id.as_str())
        .select_only()
        .columns([C::StripeEventAt, C::ProductName, C::ProductActive])
        .into_tuple()
        .one(conn)
        .await?;
    let watermark = existing.as_ref().and_then(|e| e.0);
    let refetch = |after| fetched.price(p.id.as_str(), after);
    let (source, refetched) = match decide_or_refetch(watermark, source, refetch)? {
        Plan::Stale => return Ok(Applied::Stale),
        Plan::Write { source, fetched } => (source, fetched),
    };
    let p = refetched.as_ref().unwrap_or(p);
    // An expanded product is ordered on its own row; the price then copies that row.
    if let Some(product) = p.product.as_object() {
        apply_embedded_product(conn, fetched, product, source).await?;
    }
    let (name, product_active) = match (
        product_state(conn, p.product.id().as_str()).await?,
        &existing,
    ) {
        (Some(own), _) => own,
        (None, Some((_, name, active))) => (name.clone(), *active),
        (None, None) => (product_name_for(conn, fetched, p).await?, true),
    };
    let mut row = price_row(p, &name, product_active, Some(source.at()));
    if deletion {
        row.active = Set(false);
    }
    let updates = [
        C::ProductId,
        C::ProductName,
        C::ProductActive,
        C::Nickname,
        C::UnitAmount,
        C::Currency,
        C::Interval,
        C::IntervalCount,
        C::TrialPeriodDays,
        C::Active,
        C::LookupKey,
        C::Livemode,
        C::StripeEventAt,
        C::UpdatedAt,
    ];
    let guard = newer_than(Expr::col((price::Entity, C::StripeEventAt)), source);
    catalogue_changed();
    Ok(upsert_guarded(conn, row, updates, guard).await?)
}

/// Applies a product (`product.created|updated|deleted`, or one read from the API) to its
/// own row, ordered like every other object; when the row takes it, its name and active flag
/// are copied onto every price of it and the plan name of every subscription on those
/// prices. The product's row is written first, so on PostgreSQL a concurrent subscription
/// write that reads its name (under a share lock) waits for this one and sees the new name.
/// A deletion is final unless something newer says otherwise: it wins a tie, and
/// a product the API no longer has (after a re-fetch) is deleted. A product no known price
/// uses is remembered for the prices to come, and changes nothing shown: ignored.
pub async fn apply_product(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    product: &Product,
    source: Source,
    deletion: bool,
) -> Result<Applied, SyncError> {
    let id = product.id.as_str();
    again_on_tie(
        source,
        || apply_product_once(conn, fetched, product, source, deletion),
        || watermark_of::<product_row::Entity>(conn, id, product_row::Column::StripeEventAt),
    )
    .await
}

/// Applies a product that came inside another object (a subscription's or a price's
/// expanded product) when it says something the product's row does not: a new product, a
/// new name, or a change of its active or deleted flags. A copy that only repeats the row
/// writes nothing. A subscription's writer runs in its customer's lane, and writing the
/// product locks its row and every subscription on it, other customers' too: were each
/// repeat written, every lane would take the same locks in its own order and, on
/// PostgreSQL, deadlock again and again. The product's own events order the row as before.
pub async fn apply_embedded_product(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    product: &Product,
    source: Source,
) -> Result<Applied, SyncError> {
    use product_row::Column as C;
    let row: Option<(String, bool, bool, bool)> =
        product_row::Entity::find_by_id(product.id.as_str())
            .select_only()
            .columns([C::Name, C::Active, C::Deleted, C::Livemode])
            .into_tuple()
            .one(conn)
            .await?;
    let repeats = row.is_some_and(|(name, active, deleted, livemode)| {
        name == product.name && active == product.active && !deleted && livemode == product.livemode
    });
    if repeats {
        return Ok(Applied::Stale);
    }
    apply_product(conn, fetched, product, source, false).await
}

async fn apply_product_once(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    product: &Product,
    source: Source,
    deletion: bool,
) -> Result<Applied, SyncError> {
    use product_row::Column as C;
    let id = product.id.as_str();
    let watermark = watermark_of::<product_row::Entity>(conn, id, C::StripeEventAt).await?;
    let (source, product, deleted) = if deletion {
        if matches!(watermark, Some(w) if w > source.at()) {
            return Ok(Applied::Stale);
        }
        (Source::Refetch(source.at()), product.clone(), true)
    } else {
        let refetching = decide(watermark, source) == Decision::Refetch;
        let refetch = |after| Ok(fetched.product(id, after)?.map(|(p, _)| p));
        match decide_or_refetch(watermark, source, refetch)? {
            Plan::Stale => return Ok(Applied::Stale),
            Plan::Write {
                source,
                fetched: Some(fetched),
            } => (source, fetched, false),
            Plan::Write {
                source,
                fetched: None,
            } => (source, product.clone(), refetching),
        }
    };
    let active = product.active && !deleted;
    let row = product_row::ActiveModel {
        id: Set(id.to_owned()),
        name: Set(product.name.clone()),
        active: Set(product.active),
        deleted: Set(deleted),
        livemode: Set(product.livemode),
        stripe_event_at: Set(Some(source.at())),
        updated_at: Set(now()),
    };
    let updates = [
        C::Name,
        C::Active,
        C::Deleted,
        C::Livemode,
        C::StripeEventAt,
        C::UpdatedAt,
    ];
    let guard = newer_than(Expr::col((product_row::Entity, C::StripeEventAt)), source);
    catalogue_changed();
    if upsert_guarded(conn, row, updates, guard).await? == Applied::Stale {
        return Ok(Applied::Stale);
    }
    let prices = price::Entity::update_many()
        .col_expr(
            price::Column::ProductName,
            Expr::value(product.name.clone()),
        )
        .col_expr(price::Column::ProductActive, Expr::value(active))
        .col_expr(price::Column::UpdatedAt, Expr::value(now()))
        .filter(price::Column::ProductId.eq(id))
        .exec(conn)
        .await?;
    // Rows written before subscriptions kept their product's id are found by their price.
    let subscriptions = subscription::Entity::update_many()
        .col_expr(
            subscription::Column::PlanName,
            Expr::value(product.name.clone()),
        )
        .filter(
            subscription::Column::ProductId
                .eq(id)
                .or(subscription::Column::PriceId.in_subquery(
                    price::Entity::find()
                        .select_only()
                        .column(price::Column::Id)
                        .filter(price::Column::ProductId.eq(id))
                        .into_query(),
                )),
        )
        .exec(conn)
        .await?;
    if prices.rows_affected == 0 && subscriptions.rows_affected == 0 {
        return Ok(Applied::Ignored);
    }
    Ok(Applied::Applied)
}
