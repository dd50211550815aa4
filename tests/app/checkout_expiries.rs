//! Checkout sessions: a replaced one is expired even when Stripe refused to at first, new
//! ones expire within the hour, and a Checkout that gives a customer a second live
//! subscription is put in front of the operators.

use std::time::Duration;

use billfold::db::entities::{billing_alert, checkout_expiry, subscription, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use stripe_checkout::checkout_session::RetrieveCheckoutSession;

use crate::support::{
    app::{unique_email, Backend, TestApp},
    billing::{call, customer_of, monthly_price, now, sign_up_with_customer, subscribe_in_stripe},
    stripe_stand_in::{stripe_error, Mode, StripeStandIn},
};

async fn checkout_status(
    stripe: &stripe::Client,
    id: &str,
) -> stripe_checkout::CheckoutSessionStatus {
    RetrieveCheckoutSession::new(id)
        .send(stripe)
        .await
        .expect("the session")
        .status
        .expect("a status")
}

/// The id (`cs_…`) in a Checkout URL of the double.
fn session_of(url: &str) -> String {
    url.rsplit('/').next().expect("id").to_owned()
}

/// Stripe refuses to expire the session a second Checkout replaces: the refusal is
/// remembered, and the next reconciler cycle expires it, so it can never be paid.
async fn a_replaced_checkout_stripe_would_not_expire_is_expired_by_the_next_cycle(
    backend: Backend,
) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    sign_up_with_customer(&app).await;
    let starter = monthly_price(&app, "Starter").await;
    let fields = [("price_id", starter.as_str())];
    let start = || call(&app, "/api/billing/checkout", &fields);
    let (status, body) = start().await;
    assert_eq!(status, 200, "{body}");
    let first = session_of(&serde_json::from_str::<String>(&body).expect("url"));

    stripe.set_mode(Mode::FailTimesTo(
        "/expire".into(),
        1,
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        stripe_error("api_error", "try again later", None),
    ));
    let (second_status, second_body) = start().await;
    assert_eq!(
        checkout_status(&stripe.client, &first).await,
        stripe_checkout::CheckoutSessionStatus::Open,
        "Stripe did not expire it"
    );

    let report = billfold::reconcile::run_cycle(&app.state)
        .await
        .expect("a cycle");
    assert_eq!(
        checkout_status(&stripe.client, &first).await,
        stripe_checkout::CheckoutSessionStatus::Expired,
        "the cycle expired the replaced session"
    );
    assert_eq!(report.checkouts_expired, 1, "{report:?}");
    assert!(report.succeeded(), "{report:?}");
    let left = checkout_expiry::Entity::find()
        .all(&app.db)
        .await
        .expect("rows");
    assert!(left.is_empty(), "nothing left to expire: {left:?}");

    // The user was never stuck: the second Checkout is the one they pay.
    assert_eq!(second_status, 200, "{second_body}");
    let second = session_of(&serde_json::from_str::<String>(&second_body).expect("url"));
    assert_eq!(
        checkout_status(&stripe.client, &second).await,
        stripe_checkout::CheckoutSessionStatus::Open
    );
    let report = billfold::reconcile::run_cycle(&app.state)
        .await
        .expect("a cycle");
    assert_eq!(report.checkouts_expired, 0, "{report:?}");
    app.stop().await;
}

/// Checkout sessions are asked to expire an hour after they are made (Stripe's default is
/// a day), and the double holds them to it.
async fn new_checkout_sessions_expire_within_the_hour(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    sign_up_with_customer(&app).await;
    let starter = monthly_price(&app, "Starter").await;
    stripe.clear();
    let asked_at = now();
    let (status, body) = call(
        &app,
        "/api/billing/checkout",
        &[("price_id", starter.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent: i64 = stripe.requests_to("/v1/checkout/sessions")[0]
        .field("expires_at")
        .expect("expires_at is sent")
        .parse()
        .expect("a time");
    assert!(
        (asked_at + 3_595..=now() + 3_605).contains(&sent),
        "{sent} is an hour from {asked_at}"
    );
    let id = session_of(&serde_json::from_str::<String>(&body).expect("url"));
    let session = RetrieveCheckoutSession::new(id.as_str())
        .send(&stripe.client)
        .await
        .expect("session");
    assert_eq!(session.expires_at, sent);
    assert!((session.expires_at - session.created - 3_600).abs() <= 5);
    app.stop().await;
}

crate::support::on_both_databases!(
    a_replaced_checkout_stripe_would_not_expire_is_expired_by_the_next_cycle,
    new_checkout_sessions_expire_within_the_hour,
);

/// A customer already paying for a plan completes a Checkout session that was left payable
/// (opened before the plan began, say): Stripe makes a second live subscription, and the
/// operators see it on `/admin/billing`.
async fn a_checkout_that_makes_a_second_live_subscription_is_flagged(backend: Backend) {
    use stripe_checkout::checkout_session::{
        CreateCheckoutSession, CreateCheckoutSessionLineItems,
    };
    let email = unique_email();
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.sign_up(&email, "correct horse battery").await.status(),
        302
    );
    let customer = customer_of(&app, &email).await.expect("customer");
    let user_id = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&app.db)
        .await
        .expect("query")
        .expect("user")
        .id;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    let first = subscribe_in_stripe(&stripe, &customer, 900).await;
    let arrived = |id: String| {
        let db = app.db.clone();
        async move {
            let mut patience =
                crate::support::patience::Patience::every(Duration::from_millis(100));
            while patience.another_try().await {
                let row = subscription::Entity::find_by_id(id.clone())
                    .one(&db)
                    .await
                    .expect("query");
                if row.is_some() {
                    return true;
                }
            }
            false
        }
    };
    assert!(arrived(first.clone()).await, "the first plan arrived");

    let pro = monthly_price(&app, "Pro").await;
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price = Some(pro);
    item.quantity = Some(1);
    let session = CreateCheckoutSession::new()
        .mode(stripe_checkout::CheckoutSessionMode::Subscription)
        .customer(customer.as_str())
        .client_reference_id(user_id.to_string())
        .line_items(vec![item])
        .success_url(app.url("/settings/billing?from=checkout"))
        .send(&stripe)
        .await
        .expect("a Checkout session left open");
    let paid = reqwest::Client::new()
        .post(session.url.clone().expect("url"))
        .form(&[
            ("card_number", "4242 4242 4242 4242"),
            ("card_expiry", "12 / 40"),
            ("card_cvc", "123"),
            ("cardholder_name", "Ada Lovelace"),
        ])
        .send()
        .await
        .expect("pay");
    assert!(
        paid.status().is_success() || paid.status().is_redirection(),
        "{}",
        paid.status()
    );

    let mut alerts = Vec::new();
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(100));
    while patience.another_try().await {
        alerts = billing_alert::Entity::find()
            .all(&app.db)
            .await
            .expect("alerts");
        if !alerts.is_empty() {
            break;
        }
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, "second_live_subscription");
    assert_eq!(alerts[0].customer_id, customer);
    assert_eq!(alerts[0].object_id, session.id.as_str());
    assert!(alerts[0].detail.contains(&first), "{}", alerts[0].detail);

    crate::support::rows::prove_address(&app, &email).await;
    let (granted, out) = app.cli(&["admin", "add", email.as_str()]);
    assert!(granted, "billfold admin add: {out}");
    let html = app.get("/admin/billing").await.text().await.expect("html");
    assert!(html.contains("Billing alerts"), "{html}");
    assert!(html.contains("second live subscription"), "{html}");
    assert!(html.contains(customer.as_str()), "{html}");
    app.stop().await;
}

crate::support::on_both_databases!(a_checkout_that_makes_a_second_live_subscription_is_flagged);
