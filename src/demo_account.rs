//! The demo account of simulated mode: someone to log in as on a fresh machine, already
//! subscribed, so the billing page has something to show before anyone signs up.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::{
    auth::{
        ssr::{create_user, current_user, Address},
        validate::{Email, Password},
    },
    billing::customer::ensure_customer,
    db::entities::user,
    state::AppState,
};

pub const DEMO_EMAIL: &str = "demo@billfold.test";
pub const DEMO_PASSWORD: &str = "billfold-demo";

/// Creates the demo user with an active Starter subscription, once.
pub async fn seed(state: &AppState) -> anyhow::Result<()> {
    let exists = user::Entity::find()
        .filter(user::Column::Email.eq(DEMO_EMAIL))
        .one(&state.db)
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    let email = Email::parse(DEMO_EMAIL).map_err(anyhow::Error::msg)?;
    let password = Password::parse(DEMO_PASSWORD).map_err(anyhow::Error::msg)?;
    let created = create_user(&state.db, &email, password, Address::Proven).await?;
    let demo = current_user(&state.db, created).await?;
    let customer = ensure_customer(state, &demo).await?;

    let card = stripe_payment::payment_method::AttachPaymentMethod::new("pm_card_visa")
        .customer(customer.clone())
        .send(&state.stripe)
        .await?;
    let starter = stripe_product::price::ListPrice::new()
        .active(true)
        .send(&state.stripe)
        .await?
        .data
        .into_iter()
        .filter(|p| p.recurring.as_ref().map(|r| r.interval.as_str()) == Some("month"))
        .min_by_key(|p| p.unit_amount.unwrap_or(i64::MAX))
        .ok_or_else(|| anyhow::anyhow!("the catalogue has no monthly price"))?;
    let mut item = stripe_billing::subscription::CreateSubscriptionItems::new();
    item.price = Some(starter.id.to_string());
    stripe_billing::subscription::CreateSubscription::new()
        .customer(customer)
        .items(vec![item])
        .default_payment_method(card.id.to_string())
        .send(&state.stripe)
        .await?;
    tracing::info!(
        email = DEMO_EMAIL,
        password = DEMO_PASSWORD,
        "demo account ready (simulated mode)"
    );
    Ok(())
}
