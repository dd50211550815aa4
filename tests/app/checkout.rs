//! Starting a plan through Stripe Checkout: the session Billfold asks for (the plan's trial,
//! the user's customer, the way back), refused while a plan is live, one payable session however
//! many tabs start one, and a Checkout paid in another tab refusing the next.

use billfold::db::entities::stripe_customer;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::support::{
    app::Backend,
    billing::{a_subscription, call, monthly_price, now, page_for, sign_up_with_customer, DAY},
    stripe_stand_in::StripeStandIn,
};

async fn checkout_starts_with_the_plans_trial(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    // The catalogue is loaded at start.
    let mut pro = None;
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(100));
    while patience.another_try().await {
        pro = billfold::db::entities::price::Entity::find()
            .filter(billfold::db::entities::price::Column::ProductName.eq("Pro"))
            .filter(billfold::db::entities::price::Column::Interval.eq("month"))
            .one(&app.db)
            .await
            .expect("query");
        if pro.is_some() {
            break;
        }
    }
    let pro = pro.expect("the Pro price is in the catalogue");
    stripe.clear();
    let (status, body) = call(
        &app,
        "/api/billing/checkout",
        &[("price_id", pro.id.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url: String = serde_json::from_str(&body).expect("url");
    assert!(url.starts_with(&stripe.sim_base));
    let sent = &stripe.requests_to("/v1/checkout/sessions")[0];
    assert_eq!(sent.field("mode").as_deref(), Some("subscription"));
    assert_eq!(sent.field("customer").as_deref(), Some(customer.as_str()));
    assert_eq!(
        sent.field("line_items[0][price]").as_deref(),
        Some(pro.id.as_str())
    );
    assert_eq!(
        sent.field("subscription_data[trial_period_days]"),
        pro.trial_period_days.map(|d| d.to_string())
    );
    assert_eq!(
        sent.field("success_url").as_deref(),
        Some(app.url("/settings/billing?from=checkout").as_str())
    );

    let (status, body) = call(&app, "/api/billing/checkout", &[("price_id", "price_nope")]).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(&app, "/api/billing/checkout", &[]).await;
    assert_eq!(status, 400);

    // With a live plan (here a trial), a second Checkout is refused: two tabs would make two
    // subscriptions and two charges. Stripe is not asked for a session.
    page_for(
        &app,
        &customer,
        a_subscription("trialing", now() + 10 * DAY),
    )
    .await;
    stripe.clear();
    let (status, body) = call(
        &app,
        "/api/billing/checkout",
        &[("price_id", pro.id.as_str())],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("You already have a plan"), "{body}");
    assert!(stripe.requests_to("/v1/checkout/sessions").is_empty());
    // Once it has ended, a new plan can be started again.
    page_for(&app, &customer, a_subscription("canceled", now() - DAY)).await;
    let (status, body) = call(
        &app,
        "/api/billing/checkout",
        &[("price_id", pro.id.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

/// Two tabs start Checkout at once: each gets a session, but only one of them can be paid.
async fn concurrent_checkouts_leave_one_payable_session(backend: Backend) {
    use stripe_checkout::checkout_session::ListCheckoutSession;
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let starter = monthly_price(&app, "Starter").await;
    let pro = monthly_price(&app, "Pro").await;
    let started = futures_util::future::join_all((0..4).map(|n| {
        let price = if n % 2 == 0 { &starter } else { &pro };
        let app = &app;
        async move {
            call(
                app,
                "/api/billing/checkout",
                &[("price_id", price.as_str())],
            )
            .await
        }
    }))
    .await;
    let mut urls = Vec::new();
    for (status, body) in &started {
        assert_eq!(*status, 200, "{body}");
        urls.push(serde_json::from_str::<String>(body).expect("url"));
    }
    let open = ListCheckoutSession::new()
        .customer(customer.as_str())
        .status(stripe_checkout::CheckoutSessionStatus::Open)
        .send(&stripe.client)
        .await
        .expect("list");
    assert_eq!(open.data.len(), 1, "one payable session: {:?}", open.data);
    let survivor = open.data[0].url.clone().expect("url");
    assert!(urls.contains(&survivor));
    let recorded = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::CustomerId.eq(customer.as_str()))
        .one(&app.db)
        .await
        .expect("query")
        .expect("row")
        .open_checkout_session;
    assert_eq!(recorded.as_deref(), Some(open.data[0].id.as_str()));
    app.stop().await;
}

/// One tab pays its Checkout while another starts a second one (before any webhook tells
/// Billfold about the plan): the second is refused with the way to switch, and expired.
async fn checkout_paid_in_another_tab_refuses_the_next(backend: Backend) {
    use stripe_checkout::checkout_session::ListCheckoutSession;
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let starter = monthly_price(&app, "Starter").await;
    let (status, body) = call(
        &app,
        "/api/billing/checkout",
        &[("price_id", starter.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let first: String = serde_json::from_str(&body).expect("url");
    let paid = reqwest::Client::new()
        .post(&first)
        .form(&[
            ("card_number", "4242 4242 4242 4242"),
            ("card_expiry", "12 / 40"),
            ("card_cvc", "123"),
            ("cardholder_name", "Ada Lovelace"),
        ])
        .send()
        .await
        .expect("pay");
    assert_eq!(paid.status(), 200, "the first tab pays");

    let (status, body) = call(
        &app,
        "/api/billing/checkout",
        &[("price_id", starter.as_str())],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("You already have a plan"), "{body}");
    let open = ListCheckoutSession::new()
        .customer(customer.as_str())
        .status(stripe_checkout::CheckoutSessionStatus::Open)
        .send(&stripe.client)
        .await
        .expect("list");
    assert!(open.data.is_empty(), "nothing left to pay: {:?}", open.data);
    app.stop().await;
}

crate::support::on_both_databases!(
    checkout_starts_with_the_plans_trial,
    concurrent_checkouts_leave_one_payable_session,
    checkout_paid_in_another_tab_refuses_the_next,
);
