//! What is for sale: the account's prices that the catalogue (`billing.toml`) sells, decided
//! by [`Catalog::offers`] alone. The plan picker, Checkout, the plan switch and `billfold
//! portal apply` all read [`for_sale`]; anything else is refused. Also who may have a free
//! trial, and loading Stripe's prices into the database.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};

use crate::{
    billing_file::catalog::{AccountPrice, Catalog, TrialHistory, TrialRule},
    db::entities::{invoice, price, subscription},
    error::AppError,
    state::AppState,
};

/// The account's active recurring prices of active products, in this mode: what the catalogue
/// chooses from (cached in [`AppState::plans`]).
pub fn recurring_prices(livemode: bool) -> sea_orm::Select<price::Entity> {
    price::Entity::find()
        .filter(price::Column::Active.eq(true))
        .filter(price::Column::ProductActive.eq(true))
        .filter(price::Column::Livemode.eq(livemode))
        .filter(price::Column::Interval.is_not_null())
        .order_by_asc(price::Column::Interval)
        .order_by_asc(price::Column::UnitAmount)
        .order_by_desc(price::Column::StripeEventAt)
}

/// A price for sale: the account's price, and what the catalogue says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForSale {
    pub price: price::Model,
    /// The catalogue's plan key (`pro`).
    pub plan_key: String,
    pub plan_name: String,
    pub description: Option<String>,
    /// The names of the features the plan includes, in the catalogue's order.
    pub features: Vec<String>,
    /// The plan's limits, by name.
    pub limits: Vec<(String, u64)>,
    /// The catalogue's free trial for this price, before [`may_have_trial`] is asked.
    pub trial_days: Option<u32>,
}

/// The prices for sale among `prices`, in their order, one per catalogue lookup key.
pub fn for_sale_among(catalog: &Catalog, prices: &[price::Model]) -> Vec<ForSale> {
    let mut seen = std::collections::BTreeSet::new();
    prices
        .iter()
        .filter_map(|p| {
            let offer = catalog.offers(AccountPrice {
                lookup_key: p.lookup_key.as_deref(),
                active: p.active,
                product_active: p.product_active,
                unit_amount: p.unit_amount,
                currency: &p.currency,
                interval: p.interval.as_deref(),
                interval_count: p.interval_count,
            })?;
            if !seen.insert(offer.price.lookup_key.as_str()) {
                return None;
            }
            Some(ForSale {
                price: p.clone(),
                plan_key: offer.plan.key.clone(),
                plan_name: offer.plan.name.clone(),
                description: offer.plan.description.clone(),
                features: offer
                    .plan
                    .features
                    .iter()
                    .map(|f| catalog.feature_name(f).to_owned())
                    .collect(),
                limits: offer
                    .plan
                    .limits
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                trial_days: offer.price.trial_days,
            })
        })
        .collect()
}

/// The prices for sale now, in this mode.
pub async fn for_sale(state: &AppState) -> Result<Vec<ForSale>, AppError> {
    let prices = state
        .plans
        .get_or_load(|| recurring_prices(state.config.stripe.mode.livemode()).all(&state.db))
        .await?;
    Ok(for_sale_among(&state.config.catalog, &prices))
}

/// The price `price_id` if it is for sale; otherwise the 400 a request naming it gets,
/// whatever the request says.
pub async fn find_for_sale(state: &AppState, price_id: &str) -> Result<ForSale, AppError> {
    for_sale(state)
        .await?
        .into_iter()
        .find(|p| p.price.id == price_id)
        .ok_or_else(|| AppError::invalid("price_id", crate::error::NOT_FOR_SALE))
}

/// Whether the customer may start a plan with its free trial, under the catalogue's rule
/// (`[catalog] trials`), given all of its subscriptions (as the database holds them). A user
/// without a customer yet has had nothing. Whether it paid before is read only when the rule
/// asks.
pub async fn may_have_trial(
    state: &AppState,
    customer: Option<(&str, &[subscription::Model])>,
) -> Result<bool, AppError> {
    let rule = state.config.catalog.trials;
    let Some((customer_id, subscriptions)) = customer else {
        return Ok(rule.allows(TrialHistory::default()));
    };
    let had_trial = subscriptions.iter().any(|s| s.trial_start.is_some());
    let paid_before = match rule {
        TrialRule::NeverAfterPaid if !had_trial => paid_before(&state.db, customer_id).await?,
        _ => false,
    };
    Ok(rule.allows(TrialHistory {
        had_trial,
        paid_before,
    }))
}

/// Whether the customer has paid an invoice (above zero).
async fn paid_before(db: &impl ConnectionTrait, customer_id: &str) -> Result<bool, DbErr> {
    Ok(invoice::Entity::find()
        .filter(invoice::Column::CustomerId.eq(customer_id))
        .filter(invoice::Column::Status.eq("paid"))
        .filter(invoice::Column::AmountPaid.gt(0))
        .count(db)
        .await?
        > 0)
}

/// Loads Stripe's active prices (and their products' names) into `prices` through the sync
/// writer. Returns how many prices were read.
pub async fn sync_catalogue(state: &AppState) -> anyhow::Result<usize> {
    crate::billing::sync::sync_catalogue(&state.db, &state.stripe)
        .await
        .map_err(|e| anyhow::anyhow!("loading the price catalogue: {e}"))
}
