//! Each handled event type changes exactly what it should; re-syncs from the API heal the
//! tables. Objects are shaped like Stripe's own examples and parse with async-stripe.

use billfold::{
    billing::sync,
    db::entities::{invoice, payment_method, price, stripe_customer},
};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::json;

use crate::support::{app::Backend, rows::*, stripe_objects::*, stripe_stub::*};

#[test]
fn fixtures_parse_as_stripe_types() {
    let sub = Sub::new("sub_1", "cus_1").json().to_string();
    miniserde::json::from_str::<stripe_shared::Subscription>(&sub).expect("subscription");
    let p = price("price_1", product("prod_1", "Pro"), 100, "month").to_string();
    miniserde::json::from_str::<stripe_shared::Price>(&p).expect("price");
    miniserde::json::from_str::<stripe_shared::Product>(&product("prod_1", "Pro").to_string())
        .expect("product");
    miniserde::json::from_str::<stripe_shared::Customer>(
        &customer("cus_1", "a@b.c", Some("pm_1")).to_string(),
    )
    .expect("customer");
    miniserde::json::from_str::<stripe_shared::PaymentMethod>(
        &payment_method("pm_1", Some("cus_1"), "4242", 2030).to_string(),
    )
    .expect("payment method");
    miniserde::json::from_str::<stripe_shared::Invoice>(
        &invoice("in_1", "cus_1", "sub_1", "paid", 2000).to_string(),
    )
    .expect("invoice");
    miniserde::json::from_str::<stripe_shared::CheckoutSession>(
        &checkout_session("cs_1", "cus_1", "1", "sub_1").to_string(),
    )
    .expect("checkout session");
}

async fn subscription_events(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    // The price's product is only an id: its name comes from the API, once.
    stub.set("products/prod_pro", product("prod_pro", "Pro"));
    let t = now() - 500;
    let sub = Sub::new("sub_ev", "cus_ev").with(|s| {
        s.status = "trialing";
        s.trial_end = Some(1_700_500_000);
        s.default_payment_method = Some("pm_ev".into());
    });
    deliver_expect(
        &app,
        &event("evt_s1", "customer.subscription.created", t, sub.json()),
        "applied",
    )
    .await;
    let row = subscription_row(&app, "sub_ev").await.expect("row");
    assert_eq!(row.customer_id, "cus_ev");
    assert_eq!(row.status, "trialing");
    assert_eq!(row.plan_name.as_deref(), Some("Pro"));
    assert_eq!(row.price_id.as_deref(), Some("price_pro"));
    assert_eq!(
        (
            row.unit_amount,
            row.currency.as_deref(),
            row.interval.as_deref()
        ),
        (Some(2000), Some("usd"), Some("month"))
    );
    assert_eq!(
        (row.current_period_start, row.current_period_end),
        (Some(1_700_000_000), Some(1_702_592_000))
    );
    assert_eq!(row.trial_end, Some(1_700_500_000));
    assert_eq!(row.default_payment_method.as_deref(), Some("pm_ev"));
    assert_eq!(row.latest_invoice_id.as_deref(), Some("in_latest"));
    assert_eq!(stub.hits("products/prod_pro"), 1);
    // The price was remembered with its product name.
    let p = price::Entity::find_by_id("price_pro")
        .one(&app.db)
        .await
        .expect("q")
        .expect("price");
    assert_eq!(
        (p.product_name.as_str(), p.unit_amount),
        ("Pro", Some(2000))
    );

    // (event type, the subscription it carries, what the row must then say)
    type Check = Box<dyn Fn(&billfold::db::entities::subscription::Model)>;
    let steps: Vec<(&str, Sub, Check)> = vec![
        (
            "customer.subscription.trial_will_end",
            sub.clone_with(|s| s.trial_end = Some(1_700_600_000)),
            Box::new(|r| assert_eq!(r.trial_end, Some(1_700_600_000))),
        ),
        (
            "customer.subscription.updated",
            sub.clone_with(|s| {
                s.status = "active";
                s.cancel_at = Some(1_702_592_000);
            }),
            Box::new(|r| {
                assert_eq!(r.status, "active");
                assert_eq!(r.cancel_at, Some(1_702_592_000));
            }),
        ),
        (
            "customer.subscription.paused",
            sub.clone_with(|s| s.status = "paused"),
            Box::new(|r| assert_eq!(r.status, "paused")),
        ),
        (
            "customer.subscription.resumed",
            sub.clone_with(|s| s.status = "active"),
            Box::new(|r| {
                assert_eq!(r.status, "active");
                assert_eq!(r.cancel_at, None);
            }),
        ),
        (
            "customer.subscription.deleted",
            sub.clone_with(|s| {
                s.status = "canceled";
                s.ended_at = Some(1_700_700_000);
            }),
            Box::new(|r| {
                assert_eq!(r.status, "canceled");
                assert!(r.deleted);
                assert_eq!(r.ended_at, Some(1_700_700_000));
            }),
        ),
    ];
    for (i, (event_type, s, check)) in steps.into_iter().enumerate() {
        let id = format!("evt_s_{i}");
        deliver_expect(
            &app,
            &event(&id, event_type, t + 1 + i as i64, s.json()),
            "applied",
        )
        .await;
        check(&subscription_row(&app, "sub_ev").await.expect("row"));
    }
    // Nothing resurrects it, not even a newer update.
    deliver_expect(
        &app,
        &event(
            "evt_s_late",
            "customer.subscription.updated",
            t + 100,
            sub.json(),
        ),
        "stale",
    )
    .await;
    assert!(subscription_row(&app, "sub_ev").await.expect("row").deleted);

    // A customer with two subscriptions keeps both.
    deliver_expect(
        &app,
        &event(
            "evt_s_a",
            "customer.subscription.created",
            t,
            Sub::new("sub_a", "cus_two").json(),
        ),
        "applied",
    )
    .await;
    deliver_expect(
        &app,
        &event(
            "evt_s_b",
            "customer.subscription.created",
            t,
            Sub::new("sub_b", "cus_two").json(),
        ),
        "applied",
    )
    .await;
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM subscriptions WHERE customer_id = 'cus_two'"
        )
        .await
        .as_deref(),
        Some("2")
    );
    assert_eq!(stub.hits("products/prod_pro"), 1);
    app.stop().await;
}

async fn checkout_applies_only_sessions_billfold_created(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    let user_id = user_with_customer(&app, "cus_co").await;
    let other_user = user_with_customer(&app, "cus_other").await;
    stub.set("subscriptions/sub_co", Sub::new("sub_co", "cus_co").json());
    // Billfold's own session: the user's customer, the user's id as the reference.
    let cs = checkout_session("cs_1", "cus_co", &user_id.to_string(), "sub_co");
    deliver_expect(
        &app,
        &event("evt_co", "checkout.session.completed", now(), cs),
        "applied",
    )
    .await;
    let row = subscription_row(&app, "sub_co")
        .await
        .expect("subscription fetched and applied");
    assert_eq!(
        (row.status.as_str(), row.plan_name.as_deref()),
        ("active", Some("Pro"))
    );
    assert_eq!(stub.hits("subscriptions/sub_co"), 1);

    // A Payment Link (or another app on the account) naming this user: a stranger's
    // customer is never linked to the user, and nothing of it is applied.
    stub.set(
        "subscriptions/sub_stranger",
        Sub::new("sub_stranger", "cus_stranger").json(),
    );
    let foreign = [
        (
            "evt_pl",
            checkout_session(
                "cs_pl",
                "cus_stranger",
                &user_id.to_string(),
                "sub_stranger",
            ),
            "customer Billfold did not create",
        ),
        // The other user's customer with this user's reference: not Billfold's session.
        (
            "evt_swap",
            checkout_session("cs_swap", "cus_other", &user_id.to_string(), "sub_stranger"),
            "client_reference_id is not the user",
        ),
    ];
    for (id, cs, reason) in foreign {
        deliver_expect(
            &app,
            &event(id, "checkout.session.completed", now(), cs),
            "ignored",
        )
        .await;
        let recorded = scalar(
            &app,
            &format!("SELECT error FROM webhook_events WHERE id = '{id}'"),
        )
        .await
        .unwrap_or_default();
        assert!(recorded.contains(reason), "{id}: {recorded}");
    }
    let customers_of = |user: i64| {
        let app = &app;
        async move {
            scalar(
                app,
                &format!("SELECT customer_id FROM stripe_customers WHERE user_id = {user}"),
            )
            .await
        }
    };
    assert_eq!(customers_of(user_id).await.as_deref(), Some("cus_co"));
    assert_eq!(customers_of(other_user).await.as_deref(), Some("cus_other"));
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM stripe_customers WHERE customer_id = 'cus_stranger'"
        )
        .await
        .as_deref(),
        Some("0")
    );
    assert!(subscription_row(&app, "sub_stranger").await.is_none());
    assert_eq!(
        stub.hits("subscriptions/sub_stranger"),
        0,
        "nothing fetched for it"
    );
    app.stop().await;
}

async fn customer_and_payment_method_events(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    user_with_customer(&app, "cus_pm").await;
    let t = now() - 500;
    let pm = |id: &str,
              evt: &str,
              event_type: &str,
              at: i64,
              customer: Option<&str>,
              last4: &str,
              year: i64| {
        event(
            evt,
            event_type,
            at,
            payment_method(id, customer, last4, year),
        )
    };
    deliver_expect(
        &app,
        &pm(
            "pm_1",
            "evt_p1",
            "payment_method.attached",
            t,
            Some("cus_pm"),
            "4242",
            2030,
        ),
        "applied",
    )
    .await;
    deliver_expect(
        &app,
        &pm(
            "pm_2",
            "evt_p2",
            "payment_method.attached",
            t,
            Some("cus_pm"),
            "5555",
            2031,
        ),
        "applied",
    )
    .await;
    let get = |id: &'static str| {
        let db = app.db.clone();
        async move {
            payment_method::Entity::find_by_id(id)
                .one(&db)
                .await
                .expect("q")
                .expect("pm")
        }
    };
    let m = get("pm_1").await;
    assert_eq!(
        (
            m.customer_id.as_deref(),
            m.brand.as_deref(),
            m.last4.as_deref(),
            m.exp_month,
            m.exp_year,
            m.is_default
        ),
        (
            Some("cus_pm"),
            Some("visa"),
            Some("4242"),
            Some(8),
            Some(2030),
            false
        )
    );

    // customer.updated: details, and which method is the default.
    deliver_expect(
        &app,
        &event(
            "evt_c1",
            "customer.updated",
            t + 1,
            customer("cus_pm", "new@example.com", Some("pm_2")),
        ),
        "applied",
    )
    .await;
    let c = stripe_customer::Entity::find()
        .all(&app.db)
        .await
        .expect("q")
        .into_iter()
        .find(|c| c.customer_id == "cus_pm")
        .expect("row");
    assert_eq!(
        (c.email.as_deref(), c.name.as_deref()),
        (Some("new@example.com"), Some("Ada Lovelace"))
    );
    assert!(!get("pm_1").await.is_default);
    assert!(get("pm_2").await.is_default);
    // An unknown customer is recorded and ignored.
    deliver_expect(
        &app,
        &event(
            "evt_c_unknown",
            "customer.updated",
            t,
            customer("cus_nobody", "x@example.com", None),
        ),
        "ignored",
    )
    .await;

    deliver_expect(
        &app,
        &pm(
            "pm_1",
            "evt_p3",
            "payment_method.updated",
            t + 2,
            Some("cus_pm"),
            "4242",
            2032,
        ),
        "applied",
    )
    .await;
    assert_eq!(get("pm_1").await.exp_year, Some(2032));
    deliver_expect(
        &app,
        &pm(
            "pm_1",
            "evt_p4",
            "payment_method.automatically_updated",
            t + 3,
            Some("cus_pm"),
            "1111",
            2033,
        ),
        "applied",
    )
    .await;
    assert_eq!(get("pm_1").await.last4.as_deref(), Some("1111"));
    deliver_expect(
        &app,
        &pm(
            "pm_2",
            "evt_p5",
            "payment_method.detached",
            t + 4,
            None,
            "5555",
            2031,
        ),
        "applied",
    )
    .await;
    let m = get("pm_2").await;
    assert_eq!((m.customer_id, m.is_default), (None, false));
    // A late `attached` does not bring it back.
    deliver_expect(
        &app,
        &pm(
            "pm_2",
            "evt_p6",
            "payment_method.attached",
            t + 1,
            Some("cus_pm"),
            "5555",
            2031,
        ),
        "stale",
    )
    .await;

    deliver_expect(
        &app,
        &event(
            "evt_c2",
            "customer.deleted",
            t + 5,
            customer("cus_pm", "new@example.com", None),
        ),
        "applied",
    )
    .await;
    let c = stripe_customer::Entity::find()
        .all(&app.db)
        .await
        .expect("q")
        .into_iter()
        .find(|c| c.customer_id == "cus_pm")
        .expect("row");
    assert!(c.deleted);
    app.stop().await;
}

/// Every invoice event ends in Stripe's state, and the payment-failed banner offers only an
/// invoice that can still be paid.
async fn invoices_end_in_stripes_state_and_the_banner_offers_only_payable_ones(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    user_with_customer(&app, "cus_dun").await;
    let t = now() - 500;
    let past_due = Sub::new("sub_dun", "cus_dun").with(|s| s.status = "past_due");
    deliver_expect(
        &app,
        &event(
            "evt_dun_s",
            "customer.subscription.updated",
            t,
            past_due.json(),
        ),
        "applied",
    )
    .await;
    // Whether the payment-failed banner shows, and if so whether it links the open invoice.
    let banner_link = |html: &str| {
        html.contains("data-testid=\"dunning-banner\"")
            .then(|| html.contains("View the open invoice"))
    };
    let page = || async {
        app.get("/settings/billing")
            .await
            .text()
            .await
            .expect("html")
    };
    let status_of = |id: &'static str| {
        let app = &app;
        async move {
            scalar(
                app,
                &format!("SELECT status FROM invoices WHERE id = '{id}'"),
            )
            .await
        }
    };

    let steps = [
        ("invoice.payment_failed", "open", "open", Some(true)),
        ("invoice.updated", "open", "open", Some(true)),
        // Uncollectible can still be paid.
        (
            "invoice.marked_uncollectible",
            "uncollectible",
            "uncollectible",
            Some(true),
        ),
        // Void cannot: the banner stays (the subscription is past due) without the link.
        ("invoice.voided", "void", "void", Some(false)),
    ];
    for (i, (event_type, status, stored, offered)) in steps.into_iter().enumerate() {
        let body = event(
            &format!("evt_dun_{i}"),
            event_type,
            t + 1 + i as i64,
            invoice("in_dun", "cus_dun", "sub_dun", status, 0),
        );
        deliver_expect(&app, &body, "applied").await;
        assert_eq!(
            status_of("in_dun").await.as_deref(),
            Some(stored),
            "{event_type}"
        );
        assert_eq!(banner_link(&page().await), offered, "{event_type}");
    }
    // A late, older copy of the open invoice does not bring it back.
    deliver_expect(
        &app,
        &event(
            "evt_dun_late",
            "invoice.updated",
            t + 2,
            invoice("in_dun", "cus_dun", "sub_dun", "open", 0),
        ),
        "stale",
    )
    .await;
    assert_eq!(status_of("in_dun").await.as_deref(), Some("void"));

    // A deleted draft leaves the list for good, whatever arrives late.
    let draft = || invoice("in_draft", "cus_dun", "sub_dun", "draft", 0);
    deliver_expect(
        &app,
        &event("evt_dr_1", "invoice.created", t + 10, draft()),
        "applied",
    )
    .await;
    deliver_expect(
        &app,
        &event("evt_dr_2", "invoice.deleted", t + 11, draft()),
        "applied",
    )
    .await;
    deliver_expect(
        &app,
        &event("evt_dr_3", "invoice.updated", t + 12, draft()),
        "stale",
    )
    .await;
    assert_eq!(status_of("in_draft").await.as_deref(), Some("deleted"));
    assert!(!page().await.contains("in_draft"));
    app.stop().await;
}

async fn invoice_product_and_price_events(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    let t = now() - 500;
    for (i, (event_type, status, paid)) in [
        ("invoice.finalized", "open", 0),
        ("invoice.payment_action_required", "open", 0),
        ("invoice.payment_failed", "open", 0),
        ("invoice.payment_succeeded", "paid", 2000),
        ("invoice.paid", "paid", 2000),
    ]
    .into_iter()
    .enumerate()
    {
        let body = event(
            &format!("evt_i{i}"),
            event_type,
            t + i as i64,
            invoice("in_1", "cus_inv", "sub_inv", status, paid),
        );
        deliver_expect(&app, &body, "applied").await;
        let inv = invoice::Entity::find_by_id("in_1")
            .one(&app.db)
            .await
            .expect("q")
            .expect("invoice");
        assert_eq!(
            (inv.status.as_str(), inv.amount_paid),
            (status, paid),
            "{event_type}"
        );
        assert_eq!(inv.customer_id, "cus_inv");
        assert_eq!(inv.subscription_id.as_deref(), Some("sub_inv"));
        assert_eq!((inv.amount_due, inv.currency.as_str()), (2000, "usd"));
        assert_eq!(
            inv.hosted_invoice_url.as_deref(),
            Some("https://invoice.stripe.com/i/in_1")
        );
        assert_eq!(
            (inv.period_start, inv.period_end, inv.created),
            (Some(1_700_000_000), Some(1_702_592_000), 1_700_000_100)
        );
    }

    // Prices and products: a price names its product by id; the name is looked up once.
    stub.set("products/prod_pro", product("prod_pro", "Pro"));
    deliver_expect(
        &app,
        &event(
            "evt_pr1",
            "price.created",
            t,
            price("price_pro", json!("prod_pro"), 2000, "month"),
        ),
        "applied",
    )
    .await;
    deliver_expect(
        &app,
        &event(
            "evt_pr2",
            "price.created",
            t,
            price("price_pro_y", json!("prod_pro"), 20000, "year"),
        ),
        "applied",
    )
    .await;
    assert_eq!(stub.hits("products/prod_pro"), 1);
    deliver_expect(
        &app,
        &event(
            "evt_pr3",
            "price.updated",
            t + 1,
            price("price_pro", json!("prod_pro"), 2500, "month"),
        ),
        "applied",
    )
    .await;
    let p = price::Entity::find_by_id("price_pro")
        .one(&app.db)
        .await
        .expect("q")
        .expect("price");
    assert_eq!(
        (
            p.unit_amount,
            p.interval.as_deref(),
            p.product_name.as_str(),
            p.active
        ),
        (Some(2500), Some("month"), "Pro", true)
    );
    deliver_expect(
        &app,
        &event(
            "evt_s",
            "customer.subscription.created",
            t,
            Sub::new("sub_p", "cus_p").json(),
        ),
        "applied",
    )
    .await;

    // The name was read from the API just now, so the rename comes after that read.
    let renamed = now() + 1;
    deliver_expect(
        &app,
        &event(
            "evt_pd1",
            "product.updated",
            renamed,
            product("prod_pro", "Pro Plus"),
        ),
        "applied",
    )
    .await;
    for id in ["price_pro", "price_pro_y"] {
        let p = price::Entity::find_by_id(id)
            .one(&app.db)
            .await
            .expect("q")
            .expect("price");
        assert_eq!(p.product_name, "Pro Plus");
    }
    assert_eq!(
        subscription_row(&app, "sub_p")
            .await
            .expect("row")
            .plan_name
            .as_deref(),
        Some("Pro Plus")
    );
    deliver_expect(
        &app,
        &event(
            "evt_pd_new",
            "product.created",
            t,
            product("prod_new", "New"),
        ),
        "ignored",
    )
    .await;

    deliver_expect(
        &app,
        &event(
            "evt_pr4",
            "price.deleted",
            t + 3,
            price("price_pro_y", json!("prod_pro"), 20000, "year"),
        ),
        "applied",
    )
    .await;
    assert!(
        !price::Entity::find_by_id("price_pro_y")
            .one(&app.db)
            .await
            .expect("q")
            .expect("price")
            .active
    );
    deliver_expect(
        &app,
        &event(
            "evt_pd2",
            "product.deleted",
            renamed + 1,
            product("prod_pro", "Pro Plus"),
        ),
        "applied",
    )
    .await;
    assert!(
        !price::Entity::find_by_id("price_pro")
            .one(&app.db)
            .await
            .expect("q")
            .expect("price")
            .product_active
    );

    // Unknown types and the other mode are recorded, never applied.
    deliver_expect(
        &app,
        &event("evt_x", "charge.succeeded", t, json!({"id": "ch_1"})),
        "ignored",
    )
    .await;
    let mut live = serde_json::from_str::<serde_json::Value>(&event(
        "evt_live",
        "price.updated",
        t + 9,
        price("price_pro", json!("prod_pro"), 1, "month"),
    ))
    .expect("json");
    live["livemode"] = json!(true);
    deliver_expect(&app, &live.to_string(), "mode_mismatch").await;
    assert_eq!(
        event_row(&app, "evt_live").await.outcome,
        billfold::webhooks::pipeline::Outcome::ModeMismatch
    );
    assert_eq!(
        price::Entity::find_by_id("price_pro")
            .one(&app.db)
            .await
            .expect("q")
            .expect("price")
            .unit_amount,
        Some(2500)
    );
    app.stop().await;
}

async fn a_customer_resyncs_from_the_api(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    user_with_customer(&app, "cus_sync").await;
    stub.set(
        "customers/cus_sync",
        customer("cus_sync", "synced@example.com", Some("pm_s2")),
    );
    stub.set_list(
        "subscriptions",
        vec![
            Sub::new("sub_s1", "cus_sync").json(),
            Sub::new("sub_s2", "cus_sync")
                .with(|s| s.status = "canceled")
                .json(),
        ],
    );
    stub.set_list(
        "payment_methods",
        vec![
            payment_method("pm_s1", Some("cus_sync"), "4242", 2030),
            payment_method("pm_s2", Some("cus_sync"), "0005", 2031),
        ],
    );
    stub.set_list(
        "invoices",
        vec![invoice("in_s1", "cus_sync", "sub_s1", "paid", 2000)],
    );
    stub.set(
        "prices/price_pro",
        price("price_pro", product("prod_pro", "Pro"), 2000, "month"),
    );
    // A stale method we still hold is dropped by the sync.
    payment_method::Entity::insert(payment_method::ActiveModel {
        id: Set("pm_gone".into()),
        customer_id: Set(Some("cus_sync".into())),
        is_default: Set(true),
        livemode: Set(false),
        updated_at: Set(0),
        ..Default::default()
    })
    .exec(&app.db)
    .await
    .expect("pm");

    let stripe = stripe_client(&stub);
    let report = sync::sync_customer(&app.db, &stripe, "cus_sync")
        .await
        .expect("sync");
    assert_eq!(
        (
            report.customers,
            report.subscriptions,
            report.payment_methods,
            report.invoices,
            report.prices
        ),
        (1, 2, 2, 1, 1)
    );
    let s1 = subscription_row(&app, "sub_s1").await.expect("row");
    assert_eq!(
        (s1.status.as_str(), s1.plan_name.as_deref(), s1.deleted),
        ("active", Some("Pro"), false)
    );
    assert!(subscription_row(&app, "sub_s2").await.expect("row").deleted);
    let pm2 = payment_method::Entity::find_by_id("pm_s2")
        .one(&app.db)
        .await
        .expect("q")
        .expect("pm");
    assert!(pm2.is_default);
    let gone = payment_method::Entity::find_by_id("pm_gone")
        .one(&app.db)
        .await
        .expect("q")
        .expect("pm");
    assert_eq!((gone.customer_id, gone.is_default), (None, false));
    assert!(invoice::Entity::find_by_id("in_s1")
        .one(&app.db)
        .await
        .expect("q")
        .is_some());
    let c = stripe_customer::Entity::find()
        .all(&app.db)
        .await
        .expect("q")
        .into_iter()
        .find(|c| c.customer_id == "cus_sync")
        .expect("row");
    assert_eq!(c.email.as_deref(), Some("synced@example.com"));

    // An event older than the sync's read changes nothing; `--all` syncs every customer.
    deliver_expect(
        &app,
        &event(
            "evt_old",
            "customer.subscription.updated",
            now() - 60,
            Sub::new("sub_s1", "cus_sync")
                .with(|s| s.status = "past_due")
                .json(),
        ),
        "stale",
    )
    .await;
    let all = sync::sync_all(&app.db, &stripe, false)
        .await
        .expect("sync all");
    assert!(all.failed.is_empty(), "{:?}", all.failed);
    // The canceled subscription is a tombstone by now: only the live one is rewritten.
    assert_eq!((all.customers, all.subscriptions), (1, 1));
    app.stop().await;
}

crate::support::on_both_databases!(
    subscription_events,
    checkout_applies_only_sessions_billfold_created,
    invoices_end_in_stripes_state_and_the_banner_offers_only_payable_ones,
    customer_and_payment_method_events,
    invoice_product_and_price_events,
    a_customer_resyncs_from_the_api,
);
