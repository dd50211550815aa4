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
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(50));
    while patience.another_try().await {
        if price::Entity::find_by_id(id.clone())
            .one(&app.db)
            .await
            .expect("query")
            .is_some()
        {
            return id;
        }
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

/// `billfold catalog apply` against an empty account: everything is made, a second run changes
/// nothing, a dry run changes nothing, and a new amount is a new price under the same lookup
/// key with the old price archived and its subscription untouched.
#[tokio::test]
async fn catalog_apply_makes_the_account_sell_the_file() {
    use billfold::{
        commands::catalog::{self, Step},
        config::Config,
        stripe_api::raw::Rest,
    };
    use stripe_sim::{SimOptions, StripeSim};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut options = SimOptions::new(base.clone());
    options.seed = false;
    let sim = StripeSim::open(options).await.expect("an empty account");
    let router = sim.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let vars = [
        ("STRIPE_SECRET_KEY", "sk_test_catalog_apply".to_owned()),
        ("STRIPE_WEBHOOK_SECRET", "whsec_catalog_apply".to_owned()),
        ("STRIPE_API_BASE", base.clone()),
        ("MAIL_DELIVERY", "log".to_owned()),
        ("APP_URL", "http://127.0.0.1:3000".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/b.db?mode=rwc", dir.path().display()),
        ),
        (
            "BILLING_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/billing.toml").to_owned(),
        ),
    ];
    let config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("config");
    let rest = Rest::new(&config).expect("client");
    let file = config.catalog.as_ref().clone();
    let read = |c: billfold::billing_file::Catalog| {
        let rest = &rest;
        async move {
            catalog::read_account(rest, &c)
                .await
                .expect("read the account")
        }
    };

    // A dry run reports everything and makes nothing.
    let steps = catalog::plan(&file, &read(file.clone()).await);
    let prices_in_file: usize = file.plans.iter().map(|p| p.prices.len()).sum();
    let included: usize = file.plans.iter().map(|p| p.features.len()).sum();
    assert_eq!(
        steps.len(),
        file.features.len() + file.plans.len() + included + prices_in_file,
        "{steps:?}"
    );
    assert!(catalog::format(&steps, true).contains("dry run"));
    let untouched = read(file.clone()).await;
    assert!(untouched.products.is_empty(), "nothing made");
    assert!(untouched.features.is_empty(), "nothing made");

    // Applied: every plan's product (marked) and price (by lookup key); again: nothing to do.
    catalog::execute(&rest, &file, &steps).await.expect("apply");
    let account = read(file.clone()).await;
    assert_eq!(catalog::plan(&file, &account), vec![]);
    assert!(catalog::format(&[], false).contains("nothing to change"));
    assert_eq!(account.products.len(), file.plans.len());
    for plan in &file.plans {
        let product = account
            .products
            .iter()
            .find(|p| p["metadata"][catalog::PLAN_KEY] == plan.key.as_str())
            .expect("the plan's product");
        assert_eq!(product["name"], plan.name.as_str());
        let mut included: Vec<String> = account.product_features
            [product["id"].as_str().expect("id")]
        .iter()
        .filter_map(|pf| {
            pf["entitlement_feature"]["lookup_key"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
        included.sort();
        let mut want = plan.features.clone();
        want.sort();
        assert_eq!(included, want, "{}", plan.key);
        for want in &plan.prices {
            let price = account
                .prices
                .iter()
                .find(|p| p["lookup_key"] == want.lookup_key.as_str())
                .expect("the price");
            assert_eq!(price["unit_amount"], want.amount);
            assert_eq!(price["product"], product["id"]);
        }
    }

    // A customer on Pro monthly, then Pro monthly costs more.
    let pro_monthly = |a: &catalog::Account| {
        a.prices
            .iter()
            .find(|p| p["lookup_key"] == "pro_monthly")
            .map(|p| p["id"].as_str().expect("id").to_owned())
            .expect("pro_monthly")
    };
    let old = pro_monthly(&account);
    let client = stripe::ClientBuilder::new("sk_test_catalog_apply")
        .url(format!("{base}/"))
        .build()
        .expect("client");
    let customer = stripe_core::customer::CreateCustomer::new()
        .email("catalog@example.com")
        .send(&client)
        .await
        .expect("customer");
    let card = stripe_payment::payment_method::AttachPaymentMethod::new("pm_card_visa")
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("card");
    let mut item = stripe_billing::subscription::CreateSubscriptionItems::new();
    item.price = Some(old.clone());
    let sub = stripe_billing::subscription::CreateSubscription::new()
        .customer(customer.id.as_str())
        .items(vec![item])
        .default_payment_method(card.id.as_str())
        .send(&client)
        .await
        .expect("subscribe");

    let mut dearer = file.clone();
    let pro = dearer
        .plans
        .iter_mut()
        .find(|p| p.key == "pro")
        .expect("pro");
    pro.prices[0].amount = 3900;
    let steps = catalog::plan(&dearer, &read(dearer.clone()).await);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(matches!(&steps[0], Step::CreatePrice { takes_key_from: Some(id), .. } if *id == old));
    assert!(matches!(&steps[1], Step::ArchivePrice { id, .. } if *id == old));
    catalog::execute(&rest, &dearer, &steps)
        .await
        .expect("apply the new amount");
    let account = read(dearer.clone()).await;
    assert_eq!(catalog::plan(&dearer, &account), vec![]);
    let new = pro_monthly(&account);
    assert_ne!(new, old);
    let archived = stripe_product::price::RetrievePrice::new(old.as_str())
        .send(&client)
        .await
        .expect("old price");
    assert!(!archived.active);
    assert_eq!(archived.unit_amount, Some(2900), "never edited");
    let still = stripe_billing::subscription::RetrieveSubscription::new(sub.id.as_str())
        .send(&client)
        .await
        .expect("subscription");
    assert_eq!(still.items.data[0].price.id.as_str(), old, "untouched");
    assert_eq!(still.status, stripe_shared::SubscriptionStatus::Active);
}
