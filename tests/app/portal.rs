//! Manage Billing: the portal session Billfold asks Stripe for carries the user's own customer,
//! return URL and configuration, and its deep links the user's own subscription; its errors
//! read clearly (signed out, a bad flow, Stripe down, not set up, refusing, rate limiting, the
//! per-user limit); and a cancellation made in the portal reaches the page by webhook alone.

use billfold::db::entities::subscription;
use sea_orm::EntityTrait;

use crate::support::{
    app::{location, Backend, TestApp},
    billing::{call, sign_up_with_customer, subscribe_in_stripe},
    stripe_stand_in::{stripe_error, Mode, StripeStandIn},
};

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
            let mut patience =
                crate::support::patience::Patience::every(std::time::Duration::from_millis(100));
            while patience.another_try().await {
                let html = app
                    .get("/settings/billing")
                    .await
                    .text()
                    .await
                    .expect("html");
                if html.contains(needle) {
                    return true;
                }
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

crate::support::on_both_databases!(
    the_portal_request_carries_the_users_own_ids,
    portal_errors_read_clearly,
    stripe_refusals_say_what_to_do,
    a_portal_cancellation_arrives_by_webhook,
);
