use billfold::db::entities::{invoice, payment_method, stripe_customer, subscription, user};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::{
    billing_support::{stripe_error, Mode, StripeStandIn},
    helpers::{location, unique_email, Backend, TestApp},
};

pub(crate) const PASSWORD: &str = "correct horse battery";
pub(crate) const DAY: i64 = 86_400;

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) async fn customer_of(app: &TestApp, email: &str) -> Option<String> {
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
pub(crate) async fn call(app: &TestApp, endpoint: &str, fields: &[(&str, &str)]) -> (u16, String) {
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

pub(crate) async fn sign_up_with_customer(app: &TestApp) -> (String, String) {
    let email = unique_email();
    assert_eq!(app.sign_up(&email, PASSWORD).await.status(), 302);
    let customer = customer_of(app, &email)
        .await
        .expect("customer made at sign-up");
    (email, customer)
}

/// A monthly card subscription to the seeded price of `amount` cents, made straight in "Stripe".
pub(crate) async fn subscribe_in_stripe(
    stripe: &stripe::Client,
    customer: &str,
    amount: i64,
) -> String {
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

async fn the_portal_request_carries_the_users_own_ids(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let configs =
        stripe_billing::billing_portal_configuration::ListBillingPortalConfiguration::new()
            .send(&stripe.client)
            .await
            .expect("configurations");
    let config_id = configs.data[0].id.to_string();
    let app = stripe
        .app(
            backend,
            &[("STRIPE_PORTAL_CONFIGURATION_ID", config_id.as_str())],
        )
        .await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let return_url = app.url("/settings/billing?from=portal");

    stripe.clear();
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 200, "{body}");
    let url: String = serde_json::from_str(&body).expect("a URL");
    assert!(url.starts_with(&stripe.sim_base), "{url}");
    let sent = &stripe.requests_to("/v1/billing_portal/sessions")[0];
    assert_eq!(sent.field("customer").as_deref(), Some(customer.as_str()));
    assert_eq!(
        sent.field("return_url").as_deref(),
        Some(return_url.as_str())
    );
    assert_eq!(
        sent.field("configuration").as_deref(),
        Some(config_id.as_str())
    );
    assert_eq!(sent.field("flow_data[type]"), None);

    // A deep link into a subscription flow needs a subscription.
    let (status, body) = call(
        &app,
        "/api/billing/portal",
        &[("flow", "subscription_cancel")],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no subscription"), "{body}");

    // Subscribed in Stripe; coming back from the portal re-syncs before rendering.
    let sub = subscribe_in_stripe(&stripe.client, &customer, 900).await;
    let html = app
        .get("/settings/billing?from=portal")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("Renews on"),
        "the re-synced subscription shows"
    );
    assert!(html.contains("Starter"), "with its product's name");
    let stored = subscription::Entity::find_by_id(sub.clone())
        .one(&app.db)
        .await
        .expect("query")
        .expect("synced without any webhook");
    assert_eq!(stored.status, "active");
    assert!(stored.current_period_end.is_some());

    for (flow, sub_field) in [
        ("payment_method_update", None),
        (
            "subscription_cancel",
            Some("flow_data[subscription_cancel][subscription]"),
        ),
        (
            "subscription_update",
            Some("flow_data[subscription_update][subscription]"),
        ),
    ] {
        stripe.clear();
        let (status, body) = call(&app, "/api/billing/portal", &[("flow", flow)]).await;
        assert_eq!(status, 200, "{flow}: {body}");
        let sent = &stripe.requests_to("/v1/billing_portal/sessions")[0];
        assert_eq!(sent.field("flow_data[type]").as_deref(), Some(flow));
        assert_eq!(
            sent.field("flow_data[after_completion][type]").as_deref(),
            Some("redirect")
        );
        assert_eq!(
            sent.field("flow_data[after_completion][redirect][return_url]")
                .as_deref(),
            Some(return_url.as_str())
        );
        if let Some(field) = sub_field {
            assert_eq!(sent.field(field).as_deref(), Some(sub.as_str()), "{flow}");
        }
        assert_eq!(sent.field("customer").as_deref(), Some(customer.as_str()));
    }

    // A subscription id smuggled into the form is not even read.
    stripe.clear();
    let (status, _) = call(
        &app,
        "/api/billing/portal",
        &[
            ("flow", "subscription_cancel"),
            ("subscription", "sub_someone_else"),
        ],
    )
    .await;
    assert!(status == 200 || status == 400);
    for r in stripe.requests_to("/v1/billing_portal/sessions") {
        assert!(!r.body.contains("sub_someone_else"));
    }

    // Without JavaScript the form post is answered by a redirect to the portal.
    let res = app
        .post_form(
            "/api/billing/portal",
            "/settings/billing",
            &[("flow", "payment_method_update")],
        )
        .await;
    assert_eq!(res.status(), 302);
    assert!(location(&res).starts_with(&stripe.sim_base));
    app.stop().await;
}

async fn portal_errors_read_clearly(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;

    // Not logged in.
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 401, "{body}");
    let res = app.get("/settings/billing").await;
    assert_eq!(location(&res), "/login?next=%2Fsettings%2Fbilling");

    sign_up_with_customer(&app).await;
    let (status, body) = call(
        &app,
        "/api/billing/portal",
        &[("flow", "refund_everything")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("flow must be"));

    stripe.set_mode(Mode::Fail(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        stripe_error("api_error", "boom", None),
    ));
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("Billing is temporarily unavailable"),
        "{body}"
    );
    assert!(!body.contains("boom"), "Stripe's words stay in the logs");

    stripe.set_mode(Mode::Fail(
        axum::http::StatusCode::BAD_REQUEST,
        stripe_error(
            "invalid_request_error",
            "No configuration provided and your test mode default configuration has not been created.",
            None,
        ),
    ));
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("billing portal is not set up"), "{body}");

    // Ten a minute per user, then a clear answer.
    stripe.set_mode(Mode::Forward);
    let mut last = 0;
    for _ in 0..12 {
        last = call(&app, "/api/billing/portal", &[]).await.0;
    }
    assert_eq!(last, 429);
    app.stop().await;
}

/// A refusal a retry will not change names what failed (502) instead of "try again later";
/// rate limiting says when to come back.
async fn stripe_refusals_say_what_to_do(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    sign_up_with_customer(&app).await;
    stripe.set_mode(Mode::Fail(
        axum::http::StatusCode::BAD_REQUEST,
        stripe_error(
            "invalid_request_error",
            "No such customer: 'cus_gone'",
            Some("customer"),
        ),
    ));
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("Stripe refused to open the billing portal"),
        "{body}"
    );
    assert!(
        !body.contains("cus_gone"),
        "Stripe's words stay in the logs"
    );

    stripe.set_mode(Mode::Fail(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        stripe_error("invalid_request_error", "Too many requests", None),
    ));
    let (status, body) = call(&app, "/api/billing/portal", &[]).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("try again in a minute"), "{body}");
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

/// Writes the subscription state straight into the tables (as the sync would) and reads the page.
pub(crate) async fn page_for(
    app: &TestApp,
    customer: &str,
    sub: subscription::ActiveModel,
) -> String {
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

pub(crate) fn a_subscription(status: &str, period_end: i64) -> subscription::ActiveModel {
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
    }
}

async fn the_page_tells_each_state_in_words(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let end = 1_893_456_000; // 1 Jan 2030
    let when = "1 Jan 2030 (UTC)";

    let html = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("No active subscription"));
    assert!(html.contains("Choose a plan"));

    let mut trial = a_subscription("trialing", end);
    trial.trial_end = Set(Some(end));
    let html = page_for(&app, &customer, trial).await;
    assert!(html.contains("Free Trial"));
    assert!(html.contains(&format!("Trial ends on {when}")));

    let html = page_for(&app, &customer, a_subscription("active", end)).await;
    assert!(html.contains(&format!("Renews on {when}")));
    assert!(html.contains("$29.00 / month"));
    assert!(html.contains("Manage Billing"));

    let mut cancelling = a_subscription("active", end);
    cancelling.cancel_at_period_end = Set(true);
    let html = page_for(&app, &customer, cancelling).await;
    assert!(html.contains(&format!("Cancels on {when}")));
    assert!(html.contains("Resume plan"));

    let mut cancel_at = a_subscription("active", end + 30 * DAY);
    cancel_at.cancel_at = Set(Some(end));
    let html = page_for(&app, &customer, cancel_at).await;
    assert!(
        html.contains(&format!("Cancels on {when}")),
        "cancel_at counts too"
    );

    invoice::Entity::insert(invoice::ActiveModel {
        id: Set("in_open".into()),
        customer_id: Set(customer.clone()),
        subscription_id: Set(Some("sub_page_test".into())),
        status: Set("open".into()),
        amount_due: Set(2900),
        amount_paid: Set(0),
        currency: Set("usd".into()),
        hosted_invoice_url: Set(Some("https://invoice.example/in_open".into())),
        period_start: Set(None),
        period_end: Set(None),
        created: Set(end - DAY),
        livemode: Set(false),
        stripe_event_at: Set(Some(now())),
        updated_at: Set(now()),
        attempt_count: Set(1),
        next_payment_attempt: Set(Some(now() + 3 * DAY)),
        finalized_at: Set(Some(end - DAY)),
    })
    .exec(&app.db)
    .await
    .expect("invoice");
    let html = page_for(&app, &customer, a_subscription("past_due", end)).await;
    assert!(html.contains("Your last payment failed"));
    assert!(html.contains("https://invoice.example/in_open"));
    assert!(html.contains("Update payment method"));

    let mut ended = a_subscription("canceled", end);
    ended.ended_at = Set(Some(end));
    let html = page_for(&app, &customer, ended).await;
    assert!(html.contains(&format!("Your plan ended on {when}")));
    assert!(html.contains("Choose a plan"));

    payment_method::Entity::insert(payment_method::ActiveModel {
        id: Set("pm_page".into()),
        customer_id: Set(Some(customer.clone())),
        brand: Set(Some("visa".into())),
        last4: Set(Some("4242".into())),
        exp_month: Set(Some(12)),
        exp_year: Set(Some(2030)),
        is_default: Set(true),
        livemode: Set(false),
        stripe_event_at: Set(Some(now())),
        updated_at: Set(now()),
    })
    .exec(&app.db)
    .await
    .expect("card");
    let html = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("Visa •••• 4242, expires 12/2030"));
    assert!(html.contains("$29.00"), "the invoice amount");

    // The access page agrees with the rules.
    let html = app.get("/app").await.text().await.expect("html");
    assert!(html.contains("Pro reports: locked"));
    page_for(&app, &customer, a_subscription("active", now() + 10 * DAY)).await;
    let html = app.get("/app").await.text().await.expect("html");
    assert!(html.contains("Pro reports: unlocked"));
    app.stop().await;
}

async fn checkout_starts_with_the_plans_trial(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    // The catalogue is loaded at start.
    let mut pro = None;
    for _ in 0..50 {
        pro = billfold::db::entities::price::Entity::find()
            .filter(billfold::db::entities::price::Column::ProductName.eq("Pro"))
            .filter(billfold::db::entities::price::Column::Interval.eq("month"))
            .one(&app.db)
            .await
            .expect("query");
        if pro.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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

crate::on_both_databases!(
    sign_up_creates_exactly_one_customer,
    sign_up_survives_stripe_being_down_and_clicks_never_make_two_customers,
    the_portal_request_carries_the_users_own_ids,
    portal_errors_read_clearly,
    stripe_unreachable_is_unavailable_not_an_error_page,
    stripe_refusals_say_what_to_do,
    a_request_in_flight_with_the_same_key_is_waited_out,
    the_page_tells_each_state_in_words,
    checkout_starts_with_the_plans_trial,
);

/// The mounted double, its webhooks and nothing else: a cancellation made in the portal
/// reaches the page by webhook alone (the page is read without `?from=portal`).
async fn a_portal_cancellation_arrives_by_webhook(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    let sub = subscribe_in_stripe(&stripe, &customer, 900).await;

    let page_shows = |needle: &'static str| {
        let app = &app;
        async move {
            for _ in 0..100 {
                let html = app
                    .get("/settings/billing")
                    .await
                    .text()
                    .await
                    .expect("html");
                if html.contains(needle) {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(
        page_shows("Renews on").await,
        "subscription.created delivered"
    );

    let (status, body) = call(
        &app,
        "/api/billing/portal",
        &[("flow", "subscription_cancel")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let portal: String = serde_json::from_str(&body).expect("url");
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{portal}/subscriptions/{sub}/cancel"))
        .form(&[("reason", "too_expensive")])
        .send()
        .await
        .expect("cancel in the portal");
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "{}",
        res.status()
    );

    assert!(
        page_shows("Cancels on").await,
        "customer.subscription.updated delivered"
    );
    let row = subscription::Entity::find_by_id(sub)
        .one(&app.db)
        .await
        .expect("query")
        .expect("row");
    assert!(row.cancel_at_period_end);
    app.stop().await;
}

crate::on_both_databases!(a_portal_cancellation_arrives_by_webhook);

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

crate::on_both_databases!(a_deleted_customer_is_replaced);

/// The catalogue's monthly price of one plan, once the start-up load has written it.
pub(crate) async fn monthly_price(app: &TestApp, product: &str) -> String {
    use billfold::db::entities::price;
    for _ in 0..50 {
        let found = price::Entity::find()
            .filter(price::Column::ProductName.eq(product))
            .filter(price::Column::Interval.eq("month"))
            .one(&app.db)
            .await
            .expect("query");
        if let Some(p) = found {
            return p.id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no monthly {product} price in the catalogue");
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

crate::on_both_databases!(
    checkout_paid_in_another_tab_refuses_the_next,
    a_customer_stripe_no_longer_has_is_replaced,
    installations_sharing_a_stripe_account_never_share_a_customer,
    concurrent_checkouts_leave_one_payable_session,
);

/// What the Pro server function and the Pro route answer now: (status, body).
pub(crate) async fn pro_answers(app: &TestApp) -> [(u16, String); 2] {
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

/// Access is enforced on the server: the Pro server function and the Pro route serve a user
/// who is trialing, active, or cancelling but not yet ended, and refuse one whose plan ended
/// (or never began) with the reason and the way to the billing page, never the report.
async fn the_pro_feature_is_refused_on_the_server_without_access(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let anonymous = crate::helpers::browser_client()
        .get(app.url("/app/pro-report"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);

    let (_, customer) = sign_up_with_customer(&app).await;
    for (status, body) in pro_answers(&app).await {
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("You have no subscription"), "{body}");
        assert!(body.contains("/settings/billing"), "{body}");
        assert!(!body.contains("invoices_paid"), "never the feature: {body}");
    }
    let html = app.get("/app").await.text().await.expect("html");
    assert!(html.contains("Pro reports: locked") && html.contains("You have no subscription"));

    let ended = {
        let mut s = a_subscription("canceled", now() - DAY);
        s.ended_at = Set(Some(now() - DAY));
        s
    };
    let cancelling = {
        let mut s = a_subscription("active", now() + 5 * DAY);
        s.cancel_at_period_end = Set(true);
        s
    };
    let cancelled_past = {
        let mut s = a_subscription("active", now() - 1);
        s.cancel_at_period_end = Set(true);
        s
    };
    let trialing = {
        let mut s = a_subscription("trialing", now() + 14 * DAY);
        s.trial_end = Set(Some(now() + 14 * DAY));
        s
    };
    let cases = [
        ("ended", ended, false, "Your subscription has ended"),
        (
            "cancellation took effect",
            cancelled_past,
            false,
            "Your subscription has ended",
        ),
        (
            "unpaid",
            a_subscription("unpaid", now() + DAY),
            false,
            "unpaid",
        ),
        (
            "active",
            a_subscription("active", now() + 10 * DAY),
            true,
            "",
        ),
        ("trialing", trialing, true, ""),
        ("cancelling", cancelling, true, ""),
    ];
    for (what, sub, served, reason) in cases {
        page_for(&app, &customer, sub).await;
        for (status, body) in pro_answers(&app).await {
            if served {
                assert_eq!(status, 200, "{what}: {body}");
                let report: serde_json::Value = serde_json::from_str(&body).expect("json");
                assert!(report["invoices_paid"].is_number(), "{what}: {body}");
            } else {
                assert_eq!(status, 403, "{what}: {body}");
                assert!(body.contains(reason), "{what}: {body}");
                assert!(body.contains("/settings/billing"), "{what}: {body}");
            }
        }
        let html = app.get("/app").await.text().await.expect("html");
        let shown = if served {
            "Pro reports: unlocked"
        } else {
            "Pro reports: locked"
        };
        assert!(html.contains(shown), "{what}");
    }
    app.stop().await;
}

crate::on_both_databases!(the_pro_feature_is_refused_on_the_server_without_access);

/// The open invoice of a customer as the double has it: (attempt_count, next_payment_attempt).
async fn open_invoice_in_stripe(
    stripe: &stripe::Client,
    customer: &str,
) -> Option<(u64, Option<i64>)> {
    let invoices = stripe_billing::invoice::ListInvoice::new()
        .customer(customer)
        .status(stripe_shared::InvoiceStatus::Open)
        .send(stripe)
        .await
        .expect("invoices");
    invoices
        .data
        .first()
        .map(|i| (i.attempt_count, i.next_payment_attempt))
}

/// Waits (a bounded while) for the billing page to contain `needle`, and returns it.
async fn page_saying(app: &TestApp, needle: &str) -> String {
    let mut html = String::new();
    for _ in 0..100 {
        html = app
            .get("/settings/billing")
            .await
            .text()
            .await
            .expect("html");
        if html.contains(needle) {
            return html;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the page never said {needle:?}:\n{html}");
}

/// Dunning through the double's test clock: a renewal fails on a card that declines, and
/// after each failed attempt the banner's count and next-try date are the invoice's; after
/// the last one it says retries have stopped and offers a new plan. `/app` tells the same.
async fn the_dunning_banner_tells_attempts_and_dates(backend: Backend) {
    use stripe_billing::subscription::UpdateSubscription;
    use stripe_payment::payment_method::AttachPaymentMethod;
    let app = TestApp::spawn_with(backend, &[("PAST_DUE_GRACE", "20d")]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    let sub = subscribe_in_stripe(&stripe, &customer, 900).await;
    let failing = AttachPaymentMethod::new("pm_card_chargeCustomerFail")
        .customer(customer.as_str())
        .send(&stripe)
        .await
        .expect("attach");
    UpdateSubscription::new(sub.as_str())
        .default_payment_method(failing.id.to_string())
        .send(&stripe)
        .await
        .expect("switch to the failing card");
    let sim = app.state.sim.clone().expect("the mounted double");

    // The renewal, then the double's three retries (3, 5 and 7 days apart).
    let mut first_failure = None;
    for (attempt, days) in [(1, 31), (2, 3), (3, 5)] {
        sim.advance_customer_clock(&customer, std::time::Duration::from_secs(days * 86_400))
            .await
            .expect("advance the clock");
        let (count, next) = open_invoice_in_stripe(&stripe, &customer)
            .await
            .expect("an open invoice");
        assert_eq!(count, attempt);
        let next = next.expect("another try is scheduled");
        let tries = if attempt == 1 {
            "We tried to charge your card once.".to_owned()
        } else {
            format!("We tried to charge your card {attempt} times.")
        };
        let html = page_saying(&app, &tries).await;
        assert!(html.contains("Your last payment failed"), "{attempt}");
        let next_try = format!(
            "Next try: {}.",
            billfold::billing::summary::format_date(next)
        );
        assert!(html.contains(&next_try), "attempt {attempt}: {next_try}");
        let finalized = billfold::db::entities::invoice::Entity::find()
            .filter(billfold::db::entities::invoice::Column::Status.eq("open"))
            .one(&app.db)
            .await
            .expect("query")
            .expect("open invoice row");
        let failed_at =
            *first_failure.get_or_insert(finalized.finalized_at.unwrap_or(finalized.created));
        let ends = billfold::billing::summary::format_date(failed_at + 20 * DAY);
        assert!(
            html.contains(&format!(
                "Your access ends on {ends} unless the payment goes through."
            )),
            "attempt {attempt}"
        );
        let app_page = app.get("/app").await.text().await.expect("html");
        assert!(
            app_page.contains(&format!("access ends on {ends}")),
            "/app tells the deadline"
        );
        assert!(
            app_page.contains("Pro reports: unlocked"),
            "still within the grace period"
        );
    }
    let html = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("data-severity=\"warning\""),
        "three tries: warning"
    );

    // The last retry fails too: Stripe stops and the plan ends.
    sim.advance_customer_clock(&customer, std::time::Duration::from_secs(7 * 86_400))
        .await
        .expect("advance the clock");
    page_saying(&app, "retries have stopped").await;
    // Once the plan's own end has arrived too, a new plan is offered beside the banner.
    let html = page_saying(&app, "Choose a plan").await;
    assert!(html.contains("Stripe has stopped retrying"));
    assert!(html.contains("data-severity=\"critical\""));
    let app_page = app.get("/app").await.text().await.expect("html");
    assert!(app_page.contains("Pro reports: locked"));
    app.stop().await;
}

crate::on_both_databases!(the_dunning_banner_tells_attempts_and_dates);

/// The value of `after` up to the next quote in a page.
fn attr_after(html: &str, after: &str) -> String {
    let start = html
        .find(after)
        .unwrap_or_else(|| panic!("the page lacks {after}"))
        + after.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Stripe's confirmation of a switch, opened as the page's "Switch to" card does.
struct Confirmation {
    browser: reqwest::Client,
    /// The confirmation page (its form posts back to it, without the query).
    url: String,
    html: String,
    price: String,
}

impl Confirmation {
    async fn open(app: &TestApp, price: &str) -> Confirmation {
        let (status, body) = call(
            app,
            "/api/billing/portal",
            &[("flow", "subscription_update_confirm"), ("price_id", price)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let portal: String = serde_json::from_str(&body).expect("url");
        let browser = crate::helpers::browser_client();
        let entry = browser.get(&portal).send().await.expect("entry");
        let url = crate::helpers::location(&entry);
        let url = if url.starts_with('/') {
            app.url(&url)
        } else {
            url
        };
        let html = browser
            .get(&url)
            .send()
            .await
            .expect("confirmation")
            .text()
            .await
            .expect("html");
        Confirmation {
            browser,
            url,
            html,
            price: price.to_owned(),
        }
    }

    fn proration_date(&self) -> String {
        attr_after(&self.html, r#"name="proration_date" value=""#)
    }

    /// Posts the page's Confirm form; Stripe answers with a redirect (`after_completion`).
    async fn confirm(&self) -> reqwest::Response {
        let action = self.url.split('?').next().unwrap_or_default();
        let done = self
            .browser
            .post(action)
            .form(&[
                ("price", self.price.as_str()),
                ("quantity", "1"),
                ("proration_date", self.proration_date().as_str()),
            ])
            .send()
            .await
            .expect("confirm");
        assert!(done.status().is_redirection(), "confirm: {}", done.status());
        done
    }
}

/// Starter → Pro from the page's plan card: Stripe's confirmation shows the prorated amount,
/// which equals `create_preview`'s for the same change at the same second; confirming comes
/// back to the page on Pro, with the proration's invoice listed. A price the picker does not
/// show is a 400, and the subscription is always the user's own.
async fn switching_plans_from_the_card_confirms_in_stripe(backend: Backend) {
    use billfold::operate::rest::Rest;
    let app = TestApp::spawn(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    let rest = Rest::new(&app.state.config).expect("rest");
    // Prorations invoiced at once, so the switch leaves an invoice to see.
    let configs = rest
        .list_all("billing_portal/configurations", 10)
        .await
        .expect("configurations");
    let default = configs[0]["id"].as_str().expect("id").to_owned();
    let form = vec![(
        "features[subscription_update][proration_behavior]".to_owned(),
        "always_invoice".to_owned(),
    )];
    assert!(rest
        .post(&format!("billing_portal/configurations/{default}"), &form)
        .await
        .expect("configure")
        .ok());
    let sub = subscribe_in_stripe(&stripe, &customer, 900).await;
    let html = page_saying(&app, "Switch to Pro").await;
    assert!(html.contains("Switch plan"));
    assert_eq!(
        html.matches("data-testid=\"switch-option\"").count(),
        3,
        "Starter (yearly), Pro and Team: one card per plan"
    );
    let pro = monthly_price(&app, "Pro").await;

    let (status, body) = call(
        &app,
        "/api/billing/portal",
        &[
            ("flow", "subscription_update_confirm"),
            ("price_id", "price_nope"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let switch = Confirmation::open(&app, &pro).await;
    let page = &switch.html;
    assert!(page.contains("Prorated amount") && page.contains("Due today"));
    let shown: i64 = attr_after(page, r#"id="proration-total" data-amount=""#)
        .parse()
        .expect("amount");
    let proration_date = switch.proration_date();

    // The API's preview of the same change at the same second.
    let current = stripe_billing::subscription::RetrieveSubscription::new(sub.as_str())
        .send(&stripe)
        .await
        .expect("subscription");
    let item = current.items.data[0].id.to_string();
    let preview_form: Vec<(String, String)> = [
        ("customer", customer.as_str()),
        ("subscription", sub.as_str()),
        ("subscription_details[items][0][id]", item.as_str()),
        ("subscription_details[items][0][price]", pro.as_str()),
        (
            "subscription_details[proration_date]",
            proration_date.as_str(),
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let preview = rest
        .post("invoices/create_preview", &preview_form)
        .await
        .expect("preview");
    assert!(preview.ok(), "{}", preview.body);
    let previewed: i64 = preview.body["lines"]["data"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["parent"]["subscription_item_details"]["proration"] == true)
        .filter_map(|l| l["amount"].as_i64())
        .sum();
    assert_eq!(shown, previewed, "the confirmation and the preview agree");
    assert!(shown > 0, "an upgrade costs something today");

    // Confirm: back on the billing page (after_completion), on Pro, the proration invoiced.
    let done = switch.confirm().await;
    let mut back = crate::helpers::location(&done);
    for _ in 0..3 {
        if back.contains("/settings/billing") {
            break;
        }
        let next = switch
            .browser
            .get(if back.starts_with('/') {
                app.url(&back)
            } else {
                back.clone()
            })
            .send()
            .await
            .expect("follow");
        back = crate::helpers::location(&next);
    }
    assert!(back.ends_with("/settings/billing?from=portal"), "{back}");
    let html = app
        .get("/settings/billing?from=portal")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("data-testid=\"plan-name\">Pro<"),
        "the page says Pro at once"
    );
    let money = billfold::billing::summary::format_money(shown, "usd");
    assert!(
        html.contains(&money),
        "the proration's invoice ({money}) is listed"
    );
    app.stop().await;
}

crate::on_both_databases!(switching_plans_from_the_card_confirms_in_stripe);

/// Pro → Starter with downgrades at the period's end: the page says Pro now and "Switches to
/// Starter on <date>", and once the test clock passes that date, Starter.
async fn a_downgrade_waits_for_the_period_end_and_the_page_says_when(backend: Backend) {
    use billfold::operate::rest::Rest;
    let app = TestApp::spawn(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    let rest = Rest::new(&app.state.config).expect("rest");
    let configs = rest
        .list_all("billing_portal/configurations", 10)
        .await
        .expect("configurations");
    let default = configs[0]["id"].as_str().expect("id").to_owned();
    let form = vec![(
        "features[subscription_update][schedule_at_period_end][conditions][0][type]".to_owned(),
        "decreasing_item_amount".to_owned(),
    )];
    assert!(rest
        .post(&format!("billing_portal/configurations/{default}"), &form)
        .await
        .expect("configure")
        .ok());
    let sub = subscribe_in_stripe(&stripe, &customer, 2900).await;
    page_saying(&app, "Switch to Starter").await;
    let period_end = stripe_billing::subscription::RetrieveSubscription::new(sub.as_str())
        .send(&stripe)
        .await
        .expect("subscription")
        .items
        .data[0]
        .current_period_end;
    let starter = monthly_price(&app, "Starter").await;
    Confirmation::open(&app, &starter).await.confirm().await;

    let when = billfold::billing::summary::format_date(period_end);
    let html = page_saying(&app, &format!("Switches to Starter on {when}")).await;
    assert!(
        html.contains("data-testid=\"plan-name\">Pro<"),
        "Pro until then"
    );

    let sim = app.state.sim.clone().expect("the mounted double");
    sim.advance_customer_clock(&customer, std::time::Duration::from_secs(31 * 86_400))
        .await
        .expect("advance the clock");
    let html = page_saying(&app, "data-testid=\"plan-name\">Starter<").await;
    assert!(!html.contains("Switches to"), "the switch has happened");
    app.stop().await;
}

crate::on_both_databases!(a_downgrade_waits_for_the_period_end_and_the_page_says_when);
