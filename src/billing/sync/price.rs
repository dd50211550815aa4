//! Prices, and the products Billfold knows only through them (a product's name and
//! active flag live on each of its prices).

use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
};
use stripe_shared::{Price, Product};

use super::{
    decide_or_refetch,
    write::{newer_than, upsert_guarded},
    Applied, Plan, Source, SyncError,
};
use crate::db::{
    clock::now,
    entities::{price, subscription},
};

/// The product name for a price: from the expanded product, from a price we already know,
/// or from the API (and then remembered, with the price, in `prices`).
pub(super) async fn product_name_for(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    p: &Price,
) -> Result<String, SyncError> {
    if let Some(product) = p.product.as_object() {
        return Ok(product.name.clone());
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
    let product = stripe_product::product::RetrieveProduct::new(p.product.id().as_str())
        .send(stripe)
        .await?;
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
        livemode: Set(p.livemode),
        stripe_event_at: Set(at),
        updated_at: Set(now()),
    }
}

/// Applies a price (`price.created|updated|deleted`, or one read from the API). A deleted
/// price stays as a row, inactive, because subscriptions may still point at it.
pub async fn apply_price(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
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
    let refetch = || async move {
        stripe_product::price::RetrievePrice::new(p.id.as_str())
            .expand(vec!["product".to_owned()])
            .send(stripe)
            .await
    };
    let (source, fetched) = match decide_or_refetch(watermark, source, refetch).await? {
        Plan::Stale => return Ok(Applied::Stale),
        Plan::Write { source, fetched } => (source, fetched),
    };
    let p = fetched.as_ref().unwrap_or(p);
    let (name, product_active) = match (p.product.as_object(), &existing) {
        (Some(product), _) => (product.name.clone(), product.active),
        (None, Some((_, name, active))) => (name.clone(), *active),
        (None, None) => (product_name_for(conn, stripe, p).await?, true),
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
        C::Livemode,
        C::StripeEventAt,
        C::UpdatedAt,
    ];
    let guard = newer_than(Expr::col((price::Entity, C::StripeEventAt)), source);
    Ok(upsert_guarded(conn, row, updates, guard).await?)
}

/// Applies a product (`product.created|updated|deleted`): its name and active flag on
/// every price of it, and the plan name of every subscription on those prices. Billfold
/// keeps no product rows of its own, so a product with no known price changes nothing.
pub async fn apply_product(
    conn: &impl ConnectionTrait,
    product: &Product,
    deletion: bool,
) -> Result<Applied, SyncError> {
    let id = product.id.as_str();
    let active = product.active && !deletion;
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
    if prices.rows_affected == 0 {
        return Ok(Applied::Ignored);
    }
    subscription::Entity::update_many()
        .col_expr(
            subscription::Column::PlanName,
            Expr::value(product.name.clone()),
        )
        .filter(
            subscription::Column::PriceId.in_subquery(
                price::Entity::find()
                    .select_only()
                    .column(price::Column::Id)
                    .filter(price::Column::ProductId.eq(id))
                    .into_query(),
            ),
        )
        .exec(conn)
        .await?;
    Ok(Applied::Applied)
}
