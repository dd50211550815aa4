//! The plan catalogue: the prices the plan picker offers, and loading Stripe's prices into
//! the database.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::{db::entities::price, state::AppState};

/// The prices the plan picker offers: active recurring prices of active products, in this
/// mode. The portal's plan switching (`billfold portal apply`, `billfold doctor`) must
/// allow exactly these.
pub fn picker_prices(livemode: bool) -> sea_orm::Select<price::Entity> {
    price::Entity::find()
        .filter(price::Column::Active.eq(true))
        .filter(price::Column::ProductActive.eq(true))
        .filter(price::Column::Livemode.eq(livemode))
        .filter(price::Column::Interval.is_not_null())
        .order_by_asc(price::Column::Interval)
        .order_by_asc(price::Column::UnitAmount)
}

/// Loads Stripe's active prices (and their products' names) into `prices` through the sync
/// writer. Returns how many prices were read.
pub async fn sync_catalogue(state: &AppState) -> anyhow::Result<usize> {
    crate::billing::sync::sync_catalogue(&state.db, &state.stripe)
        .await
        .map_err(|e| anyhow::anyhow!("loading the price catalogue: {e}"))
}
