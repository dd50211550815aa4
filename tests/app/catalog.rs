//! Only the catalogue (`billing.toml`) is for sale: a price made in Stripe outside it is never
//! offered and is refused by Checkout and by the plan switch, whatever the request names; and a
//! billing customer has one free trial at most.

use billfold::db::entities::price;
use sea_orm::{ActiveValue::Set, EntityTrait};

use crate::support::{
    app::{Backend, TestApp},
    billing::{a_subscription, call, monthly_price, now, page_for, sign_up_with_customer, DAY},
    stripe_stand_in::StripeStandIn,
};

/// Makes a price on the Pro product straight in "Stripe" (as Sales would in the Dashboard) and
/// waits until the app has it in `prices` (its `price.created` webhook).
async fn a_deal_price(app: &TestApp, lookup_key: Option<&str>) -> String {
    let mut form = vec![
        ("product", "prod_pro".to_owned()),
        ("unit_amount", "100".to_owned()),
        ("currency", "usd".to_owned()),
        ("recurring[interval]", "month".to_owned()),
        ("nickname", "Pro for one deal".to_owned()),
    ];
    if let Some(key) = lookup_key {
        form.push(("lookup_key", key.to_owned()));
    }
    let created: serde_json::Value = reqwest::Client::new()
        .post(app.url("/_stripe-sim/v1/prices"))
        .bearer_auth("sk_test_billfold_catalog")
        .form(&form)
        .send()
        .await
        .expect("create price")
        .json()
        .await
        .expect("price json");
    let id = created["id"].as_str().expect("price id").to_owned();
    for _ in 0..100 {
        if price::Entity::find_by_id(id.clone())
            .one(&app.db)
            .await
            .expect("query")
            .is_some()
        {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the app never learned of {id}");
}

async fn a_price_outside_the_catalogue_is_never_for_sale(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let pro = monthly_price(&app, "Pro").await;
    // Without a lookup key, and with one the catalogue does not list.
    let deal = a_deal_price(&app, None).await;
    let keyed_deal = a_deal_price(&app, Some("pro_deal")).await;

    let page = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains(&pro), "the catalogue's Pro price is offered");
    for id in [&deal, &keyed_deal] {
        assert!(!page.contains(id.as_str()), "{id} is not offered");
    }
    assert!(!page.contains("$1.00"), "no $1 plan on the page");

    // Named directly, Checkout refuses it with 400, and Stripe is never asked.
    for id in [&deal, &keyed_deal] {
        let (status, body) = call(&app, "/api/billing/checkout", &[("price_id", id)]).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("not for sale"), "{body}");
    }

    // A subscriber switching to it through the portal's confirmation: refused the same way.
    page_for(&app, &customer, a_subscription("active", now() + 20 * DAY)).await;
    for id in [&deal, &keyed_deal] {
        let (status, body) = call(
            &app,
            "/api/billing/portal",
            &[("flow", "subscription_update_confirm"), ("price_id", id)],
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("not for sale"), "{body}");
    }
    // The catalogue's own price is still one the switch accepts.
    let (status, body) = call(
        &app,
        "/api/billing/portal",
        &[("flow", "subscription_update_confirm"), ("price_id", &pro)],
    )
    .await;
    assert_ne!(status, 400, "{body}");
}
crate::support::on_both_databases!(a_price_outside_the_catalogue_is_never_for_sale);

async fn a_customer_gets_one_free_trial(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let pro = monthly_price(&app, "Pro").await;

    // First time: the plan's 14-day trial, promised on the page and sent to Stripe.
    let page = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("14-day free trial"), "the trial is offered");
    stripe.clear();
    let (status, body) = call(&app, "/api/billing/checkout", &[("price_id", &pro)]).await;
    assert_eq!(status, 200, "{body}");
    let sent = &stripe.requests_to("/v1/checkout/sessions")[0];
    assert_eq!(
        sent.field("subscription_data[trial_period_days]")
            .as_deref(),
        Some("14")
    );

    // The trial was started and cancelled at once: it ended.
    let mut trial = a_subscription("canceled", now() - DAY);
    trial.trial_start = Set(Some(now() - 2 * DAY));
    trial.trial_end = Set(Some(now() + 12 * DAY));
    trial.ended_at = Set(Some(now() - DAY));
    trial.canceled_at = Set(Some(now() - DAY));
    let page = page_for(&app, &customer, trial).await;
    assert!(!page.contains("free trial"), "no second trial is promised");

    // Starting Pro again: Checkout is asked for no trial.
    stripe.clear();
    let (status, body) = call(&app, "/api/billing/checkout", &[("price_id", &pro)]).await;
    assert_eq!(status, 200, "{body}");
    let sent = &stripe.requests_to("/v1/checkout/sessions")[0];
    assert_eq!(sent.field("subscription_data[trial_period_days]"), None);
    assert_eq!(
        sent.field("line_items[0][price]").as_deref(),
        Some(pro.as_str())
    );

    // Someone else, who never had one, still gets it (signing up signs the client in as them).
    sign_up_with_customer(&app).await;
    let page = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("14-day free trial"),
        "a new customer is offered the trial"
    );
}
crate::support::on_both_databases!(a_customer_gets_one_free_trial);
