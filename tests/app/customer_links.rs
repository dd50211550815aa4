//! The link from a user to their Stripe customer is cut only on Stripe's word that the
//! customer was deleted, never on a guess: a customer the key's account does not know (a key
//! of another account) is refused clearly, and the user keeps what they paid for; a customer
//! Stripe deleted (its webhook said so, or Stripe confirms the `resource_missing`) is replaced
//! on the next billing action, the old id kept.

use billfold::db::entities::{billing_alert, stripe_customer};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};

use crate::support::{
    app::{Backend, TestApp},
    billing::{
        a_subscription, call, customer_of, monthly_price, now, page_for, pro_answers,
        sign_up_with_customer, DAY,
    },
    stripe_stand_in::StripeStandIn,
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

/// A customer deleted in Stripe (the webhook marked it) is replaced on the next billing action.
async fn a_deleted_customer_is_replaced(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (email, old) = sign_up_with_customer(&app).await;
    stripe_customer::Entity::update_many()
        .col_expr(
            stripe_customer::Column::Deleted,
            sea_orm::sea_query::Expr::value(true),
        )
        .filter(stripe_customer::Column::CustomerId.eq(old.clone()))
        .exec(&app.db)
        .await
        .expect("mark deleted");
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 404, "no live customer: {body}");

    let (a, b) = tokio::join!(
        call(&app, "/api/billing/account", &[]),
        call(&app, "/api/billing/account", &[]),
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let new = customer_of(&app, &email).await.expect("customer");
    assert_ne!(new, old);
    let rows = stripe_customer::Entity::find()
        .all(&app.db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].deleted);
    assert_eq!(rows[0].previous_customer_id.as_deref(), Some(old.as_str()));
    assert_eq!(call(&app, "/api/billing/portal", &[]).await.0, 200);
    app.stop().await;
}

/// Stripe answers `resource_missing` for the user's customer (deleted in Stripe's Dashboard,
/// and the webhook never came): Billfold makes a new customer and carries on, for the portal
/// and for Checkout, instead of an error the user can never get out of.
async fn a_customer_stripe_no_longer_has_is_replaced(backend: Backend) {
    use stripe_core::customer::DeleteCustomer;
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (email, first) = sign_up_with_customer(&app).await;

    DeleteCustomer::new(first.as_str())
        .send(&stripe.client)
        .await
        .expect("deleted in Stripe");
    stripe.clear();
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 200, "{body}");
    let second = customer_of(&app, &email).await.expect("customer");
    assert_ne!(second, first, "a new customer replaces the missing one");
    let asked: Vec<_> = stripe
        .requests_to("/v1/billing_portal/sessions")
        .iter()
        .map(|r| r.field("customer"))
        .collect();
    assert_eq!(asked, [Some(first.clone()), Some(second.clone())]);
    let read = stripe.requests_to(&format!("/v1/customers/{first}"));
    assert!(
        read.iter().any(|r| r.method == "GET"),
        "Stripe was asked whether the customer was deleted before it was replaced"
    );
    let row = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            stripe_customer::Entity::find()
                .one(&db)
                .await
                .expect("query")
                .expect("row")
        }
    };
    assert_eq!(
        row(&app).await.previous_customer_id.as_deref(),
        Some(first.as_str()),
        "the replaced customer is kept"
    );

    DeleteCustomer::new(second.as_str())
        .send(&stripe.client)
        .await
        .expect("deleted in Stripe");
    let starter = monthly_price(&app, "Starter").await;
    stripe.clear();
    let (status, body) = call(
        &app,
        "/api/billing/checkout",
        &[("price_id", starter.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let third = customer_of(&app, &email).await.expect("customer");
    assert!(third != first && third != second);
    assert_eq!(
        row(&app).await.previous_customer_id.as_deref(),
        Some(second.as_str())
    );
    let sessions = stripe.requests_to("/v1/checkout/sessions");
    assert_eq!(
        sessions.last().and_then(|r| r.field("customer")),
        Some(third.clone()),
        "Checkout is for the new customer"
    );
    let rows = stripe_customer::Entity::find()
        .all(&app.db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "still one row per user and mode");
    app.stop().await;
}

crate::support::on_both_databases!(
    a_customer_of_another_account_is_refused_not_replaced,
    a_deleted_customer_is_replaced,
    a_customer_stripe_no_longer_has_is_replaced,
);
