//! The Stripe customer made at sign-up: exactly one, with the user's email and id; sign-up
//! succeeds while Stripe is down or unreachable (the page then offers to make the account, and
//! double clicks still make one customer), a request still in flight with the same idempotency
//! key is waited out, and two installations on one Stripe account never share a customer.

use billfold::db::entities::stripe_customer;
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::support::{
    app::{unique_email, Backend, TestApp},
    billing::{call, customer_of, sign_up_with_customer, PASSWORD},
    stripe_stand_in::{stripe_error, Mode, StripeStandIn},
};

/// Signs a user up while Stripe answers 503 (Stripe stays down): the account exists, without
/// a customer. Returns the email.
async fn sign_up_while_stripe_is_down(stripe: &StripeStandIn, app: &TestApp) -> String {
    stripe.set_mode(Mode::Fail(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        stripe_error("api_error", "down for maintenance", None),
    ));
    let email = unique_email();
    let res = app.sign_up(&email, PASSWORD).await;
    assert_eq!(res.status(), 302, "sign-up succeeds without Stripe");
    assert_eq!(customer_of(app, &email).await, None);
    email
}

async fn sign_up_creates_exactly_one_customer(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (email, customer) = sign_up_with_customer(&app).await;
    assert!(customer.starts_with("cus_"));
    let created = stripe.requests_to("/v1/customers");
    let create = created
        .iter()
        .find(|r| r.method == "POST")
        .expect("customer created");
    assert_eq!(create.field("email").as_deref(), Some(email.as_str()));
    assert!(create.field("metadata[user_id]").is_some());

    // The customer in Stripe is the one we stored.
    let listed = stripe_core::customer::ListCustomer::new()
        .email(email.clone())
        .send(&stripe.client)
        .await
        .expect("list");
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.data[0].id.as_str(), customer);
    app.stop().await;
}

async fn sign_up_survives_stripe_being_down_and_clicks_never_make_two_customers(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let email = sign_up_while_stripe_is_down(&stripe, &app).await;

    // The page says so and offers the way out; the portal explains instead of failing.
    let html = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("No billing account yet"));
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("No billing account yet"), "{body}");

    // Stripe is back; a double click (and another tab) still makes one customer.
    stripe.set_mode(Mode::Forward);
    let (a, b, c) = tokio::join!(
        call(&app, "/api/billing/account", &[]),
        call(&app, "/api/billing/account", &[]),
        call(&app, "/api/billing/account", &[]),
    );
    for (status, body) in [a, b, c] {
        assert_eq!(status, 200, "{body}");
    }
    let stored = stripe_customer::Entity::find()
        .count(&app.db)
        .await
        .expect("count");
    assert_eq!(stored, 1);
    let listed = stripe_core::customer::ListCustomer::new()
        .email(email.clone())
        .send(&stripe.client)
        .await
        .expect("list");
    assert_eq!(listed.data.len(), 1, "one customer in Stripe too");
    assert_eq!(
        customer_of(&app, &email).await.as_deref(),
        Some(listed.data[0].id.as_str())
    );
    app.stop().await;
}

/// A double click sends the customer's idempotency key twice at once; Stripe answers the
/// second 409 while the first is in flight. It is waited out and retried with the same key,
/// not shown as an outage.
async fn a_request_in_flight_with_the_same_key_is_waited_out(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let email = sign_up_while_stripe_is_down(&stripe, &app).await;

    stripe.set_mode(Mode::FailTimes(
        2,
        axum::http::StatusCode::CONFLICT,
        stripe_error(
            "idempotency_error",
            "There is currently another in-progress request using this Idempotent Key.",
            None,
        ),
    ));
    stripe.clear();
    let (status, body) = call(&app, "/api/billing/account", &[]).await;
    assert!(status < 400, "{status}: {body}");
    assert!(customer_of(&app, &email).await.is_some());
    let sent = stripe.requests_to("/v1/customers");
    assert_eq!(sent.len(), 3, "two refusals, then the customer: {sent:?}");
    app.stop().await;
}

async fn stripe_unreachable_is_unavailable_not_an_error_page(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("STRIPE_SECRET_KEY", "sk_test_unreachable"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ("STRIPE_API_BASE", "http://127.0.0.1:9"),
        ],
    )
    .await;
    let email = unique_email();
    assert_eq!(app.sign_up(&email, PASSWORD).await.status(), 302);
    let (status, body) = call(&app, "/api/billing/account", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Billing is temporarily unavailable"));
    let page = app.get("/settings/billing").await;
    assert_eq!(
        page.status(),
        200,
        "the page still renders from the database"
    );
    app.stop().await;
}

/// Two installations (two databases) on one Stripe account both have a user 1; each gets a
/// customer of its own, never the other's replayed from a shared idempotency key.
async fn installations_sharing_a_stripe_account_never_share_a_customer(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let one = stripe.app(backend, &[]).await;
    let other = stripe.app(backend, &[]).await;
    let (_, a) = sign_up_with_customer(&one).await;
    let (_, b) = sign_up_with_customer(&other).await;
    assert_ne!(a, b);
    let keys: Vec<String> = [&one, &other]
        .iter()
        .map(|app| app.state.installation_id.to_string())
        .collect();
    assert_ne!(keys[0], keys[1]);
    assert_eq!(keys[0].len(), 16);
    one.stop().await;
    other.stop().await;
}

crate::support::on_both_databases!(
    sign_up_creates_exactly_one_customer,
    sign_up_survives_stripe_being_down_and_clicks_never_make_two_customers,
    stripe_unreachable_is_unavailable_not_an_error_page,
    a_request_in_flight_with_the_same_key_is_waited_out,
    installations_sharing_a_stripe_account_never_share_a_customer,
);
