//! For billing stories: a signed-up user and the Stripe customer sign-up made for them, the
//! billing server functions called the way the hydrated page calls them ([`call`]), a
//! subscription written straight into the tables ([`a_subscription`], [`page_for`]) or made
//! straight in "Stripe" ([`subscribe_in_stripe`]), the catalogue's prices, what the Pro feature
//! answers, and waiting for the billing page to say something.
//!
//! Use them in any story that needs a user with a customer or a plan, whichever Stripe stand-in
//! the app runs against.

use billfold::db::entities::{stripe_customer, subscription, user};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::support::app::{unique_email, TestApp};

pub const PASSWORD: &str = "correct horse battery";
pub const DAY: i64 = 86_400;

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub async fn customer_of(app: &TestApp, email: &str) -> Option<String> {
    let user = user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(&app.db)
        .await
        .expect("query")
        .expect("user");
    stripe_customer::Entity::find()
        .filter(stripe_customer::Column::UserId.eq(user.id))
        .one(&app.db)
        .await
        .expect("query")
        .map(|c| c.customer_id)
}

/// Posts a billing server function the way the hydrated page does (a JSON answer).
pub async fn call(app: &TestApp, endpoint: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let res = app
        .client
        .post(app.url(endpoint))
        .header("Origin", &app.base)
        .form(fields)
        .send()
        .await
        .expect("request");
    (res.status().as_u16(), res.text().await.expect("body"))
}

pub async fn sign_up_with_customer(app: &TestApp) -> (String, String) {
    let email = unique_email();
    assert_eq!(app.sign_up(&email, PASSWORD).await.status(), 302);
    let customer = customer_of(app, &email)
        .await
        .expect("customer made at sign-up");
    (email, customer)
}

/// A monthly card subscription to the seeded price of `amount` cents, made straight in "Stripe".
pub async fn subscribe_in_stripe(stripe: &stripe::Client, customer: &str, amount: i64) -> String {
    use stripe_billing::subscription::{CreateSubscription, CreateSubscriptionItems};
    use stripe_payment::payment_method::AttachPaymentMethod;
    let pm = AttachPaymentMethod::new("pm_card_visa")
        .customer(customer)
        .send(stripe)
        .await
        .expect("attach");
    let prices = stripe_product::price::ListPrice::new()
        .active(true)
        .send(stripe)
        .await
        .expect("prices");
    let price = prices
        .data
        .iter()
        .find(|p| p.unit_amount == Some(amount))
        .expect("seeded price");
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(price.id.to_string());
    let sub = CreateSubscription::new()
        .customer(customer)
        .items(vec![item])
        .default_payment_method(pm.id.to_string())
        .send(stripe)
        .await
        .expect("subscribe");
    sub.id.to_string()
}

/// Writes the subscription state straight into the tables (as the sync would) and reads the page.
pub async fn page_for(app: &TestApp, customer: &str, sub: subscription::ActiveModel) -> String {
    subscription::Entity::delete_many()
        .exec(&app.db)
        .await
        .expect("clear");
    let mut sub = sub;
    sub.customer_id = Set(customer.to_owned());
    subscription::Entity::insert(sub)
        .exec(&app.db)
        .await
        .expect("insert");
    app.get("/settings/billing")
        .await
        .text()
        .await
        .expect("html")
}

pub fn a_subscription(status: &str, period_end: i64) -> subscription::ActiveModel {
    subscription::ActiveModel {
        id: Set("sub_page_test".into()),
        customer_id: Set(String::new()),
        status: Set(status.into()),
        price_id: Set(Some("price_pro".into())),
        product_id: Set(Some("prod_pro".into())),
        plan_name: Set(Some("Pro".into())),
        unit_amount: Set(Some(2900)),
        currency: Set(Some("usd".into())),
        interval: Set(Some("month".into())),
        current_period_start: Set(Some(period_end - 30 * DAY)),
        current_period_end: Set(Some(period_end)),
        cancel_at_period_end: Set(false),
        cancel_at: Set(None),
        canceled_at: Set(None),
        ended_at: Set(None),
        trial_start: Set(None),
        trial_end: Set(None),
        default_payment_method: Set(None),
        latest_invoice_id: Set(None),
        livemode: Set(false),
        deleted: Set(false),
        stripe_event_at: Set(now()),
        updated_at: Set(now()),
        quantity: Set(Some(1)),
        item_id: Set(None),
        quantity_lowered_at: Set(None),
    }
}

/// The catalogue's monthly price of one plan, once the start-up load has written it.
pub async fn monthly_price(app: &TestApp, product: &str) -> String {
    use billfold::db::entities::price;
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(100));
    while patience.another_try().await {
        let found = price::Entity::find()
            .filter(price::Column::ProductName.eq(product))
            .filter(price::Column::Interval.eq("month"))
            .one(&app.db)
            .await
            .expect("query");
        if let Some(p) = found {
            return p.id;
        }
    }
    panic!("no monthly {product} price in the catalogue");
}

/// What the Pro server function and the Pro route answer now: (status, body).
pub async fn pro_answers(app: &TestApp) -> [(u16, String); 2] {
    let by_function = call(app, "/api/pro/report", &[]).await;
    let res = app
        .client
        .get(app.url("/app/pro-report"))
        .send()
        .await
        .expect("request");
    let by_route = (res.status().as_u16(), res.text().await.expect("body"));
    [by_function, by_route]
}

/// Waits (a bounded while) for the billing page to contain `needle`, and returns it.
pub async fn page_saying(app: &TestApp, needle: &str) -> String {
    let mut html = String::new();
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(100));
    while patience.another_try().await {
        html = app
            .get("/settings/billing")
            .await
            .text()
            .await
            .expect("html");
        if html.contains(needle) {
            return html;
        }
    }
    panic!("the page never said {needle:?}:\n{html}");
}
