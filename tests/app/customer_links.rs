//! The link from a user to their Stripe customer is cut only on Stripe's word that the
//! customer was deleted, never on a guess: a customer the key's account does not know (a key
//! of another account) is refused clearly, and the user keeps what they paid for.

use billfold::db::entities::{billing_alert, stripe_customer};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};

use crate::{
    billing::{
        a_subscription, call, customer_of, monthly_price, now, page_for, pro_answers,
        sign_up_with_customer, DAY,
    },
    billing_support::StripeStandIn,
    helpers::Backend,
};

/// A customer of another Stripe account than the key's: one the double never made.
const FOREIGN: &str = "cus_MadeInAnotherAccount";

/// The database holds a paying user's customer, but the key belongs to another account
/// (Stripe answers `resource_missing` there too). Checkout and the portal are refused with
/// a clear error, no customer is made and the row is left alone, the operators get an alert,
/// and the user keeps their plan and their access.
async fn a_customer_of_another_account_is_refused_not_replaced(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (email, own) = sign_up_with_customer(&app).await;
    stripe_customer::Entity::update_many()
        .col_expr(stripe_customer::Column::CustomerId, Expr::value(FOREIGN))
        .filter(stripe_customer::Column::CustomerId.eq(own.as_str()))
        .exec(&app.db)
        .await
        .expect("the row names another account's customer");
    let before = stripe_customer::Entity::find()
        .one(&app.db)
        .await
        .expect("query")
        .expect("row");

    let starter = monthly_price(&app, "Starter").await;
    stripe.clear();
    let (status, body) = call(
        &app,
        "/api/billing/checkout",
        &[("price_id", starter.as_str())],
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Billing is misconfigured"), "{body}");
    let looked_up = stripe.requests_to(&format!("/v1/customers/{FOREIGN}"));
    assert!(
        looked_up.iter().any(|r| r.method == "GET"),
        "Stripe was asked about the customer before anything was decided"
    );
    let created = stripe
        .requests_to("/v1/customers")
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/customers")
        .count();
    assert_eq!(created, 0, "no new customer");

    // The user has a paid plan on that customer (as the database knows it).
    let html = page_for(&app, FOREIGN, a_subscription("active", now() + 20 * DAY)).await;
    assert!(html.contains("Renews on"), "{html}");
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Billing is misconfigured"), "{body}");
    assert!(
        !body.contains(FOREIGN),
        "no ids in what the user reads: {body}"
    );

    let after = stripe_customer::Entity::find()
        .all(&app.db)
        .await
        .expect("rows");
    assert_eq!(after, [before], "the link is untouched");
    assert_eq!(customer_of(&app, &email).await.as_deref(), Some(FOREIGN));
    let html = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("Renews on"), "the plan is still shown");
    for (status, body) in pro_answers(&app).await {
        assert_eq!(status, 200, "access is still granted: {body}");
    }

    let alerts = billing_alert::Entity::find()
        .all(&app.db)
        .await
        .expect("alerts");
    assert_eq!(
        alerts.len(),
        1,
        "one alert however often it happens: {alerts:?}"
    );
    assert_eq!(alerts[0].kind, "customer_not_in_account");
    assert_eq!(alerts[0].customer_id, FOREIGN);
    app.stop().await;
}

crate::on_both_databases!(a_customer_of_another_account_is_refused_not_replaced);
