//! The ordering rule holds for every object Billfold keeps, whatever the order, the second or
//! the clock things arrive with (issue 9, holes 1, 2, 3 and 7): products have their own
//! watermark, an API read never beats an event of the second it may not have seen, the
//! default card does not depend on arrival order, and a re-sync heals rows stamped in the
//! future.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{extract::State, http::Uri, response::IntoResponse, Router};
use billfold::{
    billing::sync,
    db::entities::{payment_method, price},
};
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use tokio::{net::TcpListener, sync::oneshot};

use crate::support::{
    app::{Backend, TestApp},
    rows::*,
    stripe_objects::*,
    stripe_stub::*,
};

/// A canned Stripe API that can hold one request: the test then acts while the app waits
/// for Stripe's answer, the way a slow list read leaves room for a webhook.
#[derive(Clone, Default)]
struct HeldApi {
    inner: Arc<Mutex<HeldState>>,
}

#[derive(Default)]
struct HeldState {
    answers: HashMap<String, String>,
    hold: Option<Hold>,
    hits: HashMap<String, usize>,
}

struct Hold {
    path: String,
    arrived: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

impl HeldApi {
    async fn start() -> (HeldApi, StripeStub) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let api = HeldApi::default();
        let app = Router::new().fallback(held_answer).with_state(api.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        // A customer's re-sync lists its schedules; like Stripe, there are none to begin.
        api.set_list("subscription_schedules", vec![]);
        // And its active entitlements: none.
        api.set_list("entitlements/active_entitlements", vec![]);
        // Only its base is used: `spawn` and `stripe_client` take a `StripeStub`.
        let mut stub = StripeStub::default();
        stub.base = format!("http://{addr}/");
        (api, stub)
    }

    fn set(&self, path: &str, body: Value) {
        self.inner
            .lock()
            .expect("lock")
            .answers
            .insert(format!("/v1/{path}"), body.to_string());
    }

    fn set_list(&self, path: &str, items: Vec<Value>) {
        self.set(
            path,
            json!({"object": "list", "data": items, "has_more": false, "url": format!("/v1/{path}")}),
        );
    }

    fn hits(&self, path: &str) -> usize {
        let state = self.inner.lock().expect("lock");
        state.hits.get(&format!("/v1/{path}")).copied().unwrap_or(0)
    }

    /// Holds the next request to `path`: the first receiver fires when it arrives, and it
    /// is answered (with what is set by then) once the sender is used or dropped.
    fn hold(&self, path: &str) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (arrived_tx, arrived_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.inner.lock().expect("lock").hold = Some(Hold {
            path: format!("/v1/{path}"),
            arrived: arrived_tx,
            release: release_rx,
        });
        (arrived_rx, release_tx)
    }
}

async fn held_answer(State(api): State<HeldApi>, uri: Uri) -> impl IntoResponse {
    let path = uri.path().to_owned();
    let hold = {
        let mut state = api.inner.lock().expect("lock");
        *state.hits.entry(path.clone()).or_default() += 1;
        match state.hold.take() {
            Some(h) if h.path == path => Some(h),
            other => {
                state.hold = other;
                None
            }
        }
    };
    if let Some(h) = hold {
        let _ = h.arrived.send(());
        let _ = h.release.await;
    }
    let answer = api.inner.lock().expect("lock").answers.get(&path).cloned();
    match answer {
        Some(body) => (
            axum::http::StatusCode::OK,
            [("content-type", "application/json")],
            body,
        ),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such object"}})
                .to_string(),
        ),
    }
}

async fn price_row(app: &TestApp, id: &str) -> price::Model {
    price::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query")
        .expect("price")
}

async fn card(app: &TestApp, id: &str) -> payment_method::Model {
    payment_method::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query")
        .expect("payment method")
}

fn archived(p: Value) -> Value {
    let mut p = p;
    p["active"] = json!(false);
    p
}

/// Hole 1: a product's name and archive follow its newest event, whatever the delivery
/// order, and a re-sync repairs a name whose event never arrived.
async fn products_follow_their_newest_event(backend: Backend) {
    let (api, stub) = HeldApi::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    let t = now() - 1_000;
    deliver_expect(
        &app,
        &event(
            "evt_sub",
            "customer.subscription.created",
            t,
            Sub::new("sub_prod", "cus_prod").json(),
        ),
        "applied",
    )
    .await;

    // A rename at t+100 whose delivery failed is retried after the rename at t+200.
    deliver_expect(
        &app,
        &event(
            "evt_rename_200",
            "product.updated",
            t + 200,
            product("prod_pro", "Pro 200"),
        ),
        "applied",
    )
    .await;
    deliver_expect(
        &app,
        &event(
            "evt_rename_100",
            "product.updated",
            t + 100,
            product("prod_pro", "Pro 100"),
        ),
        "stale",
    )
    .await;
    assert_eq!(price_row(&app, "price_pro").await.product_name, "Pro 200");
    assert_eq!(
        subscription_row(&app, "sub_prod")
            .await
            .expect("row")
            .plan_name
            .as_deref(),
        Some("Pro 200")
    );

    // Archived, then a late older update: the plan stays out of the picker.
    deliver_expect(
        &app,
        &event(
            "evt_deleted",
            "product.deleted",
            t + 300,
            archived(product("prod_pro", "Pro 200")),
        ),
        "applied",
    )
    .await;
    deliver_expect(
        &app,
        &event(
            "evt_late_update",
            "product.updated",
            t + 250,
            product("prod_pro", "Pro 250"),
        ),
        "stale",
    )
    .await;
    let p = price_row(&app, "price_pro").await;
    assert!(!p.product_active, "an archived product came back");
    assert_eq!(p.product_name, "Pro 200");
    app.stop().await;

    // A rename whose event was dropped: a re-sync of a customer on the plan repairs both the
    // price and the subscription, although it knows the price and the subscription's name.
    let (api2, stub2) = HeldApi::start().await;
    drop(api);
    let app = spawn(backend, SECRET, &stub2).await;
    seed_price(&app).await;
    user_with_customer(&app, "cus_rs").await;
    deliver_expect(
        &app,
        &event(
            "evt_sub_rs",
            "customer.subscription.created",
            now() - 100,
            Sub::new("sub_rs", "cus_rs").json(),
        ),
        "applied",
    )
    .await;
    api2.set(
        "customers/cus_rs",
        customer("cus_rs", "rs@example.com", None),
    );
    api2.set_list("subscriptions", vec![Sub::new("sub_rs", "cus_rs").json()]);
    api2.set_list("payment_methods", vec![]);
    api2.set_list("invoices", vec![]);
    api2.set(
        "prices/price_pro",
        price("price_pro", product("prod_pro", "Pro Max"), 2000, "month"),
    );
    api2.set("products/prod_pro", product("prod_pro", "Pro Max"));
    sync::sync_customer(&app.db, &stripe_client(&stub2), "cus_rs")
        .await
        .expect("sync");
    assert_eq!(price_row(&app, "price_pro").await.product_name, "Pro Max");
    assert_eq!(
        subscription_row(&app, "sub_rs")
            .await
            .expect("row")
            .plan_name
            .as_deref(),
        Some("Pro Max")
    );
    app.stop().await;
}

/// Hole 2: a re-sync reads at second S; while its list is in flight the subscription changes
/// and that change's event (created = S) is applied; a card is attached in the same second
/// and is missing from the list. The re-sync must overwrite neither.
async fn an_api_read_never_beats_an_event_of_its_second(backend: Backend) {
    let (api, stub) = HeldApi::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    user_with_customer(&app, "cus_tie").await;
    api.set(
        "customers/cus_tie",
        customer("cus_tie", "tie@example.com", None),
    );
    api.set_list("payment_methods", vec![]);
    api.set_list("invoices", vec![]);
    api.set(
        "prices/price_pro",
        price("price_pro", product("prod_pro", "Pro"), 2000, "month"),
    );
    api.set("products/prod_pro", product("prod_pro", "Pro"));

    for attempt in 0..5 {
        let sub_id = format!("sub_tie_{attempt}");
        let pm_id = format!("pm_tie_{attempt}");
        let before = Sub::new(&sub_id, "cus_tie");
        let after = before.clone_with(|s| s.cancel_at_period_end = true);
        deliver_expect(
            &app,
            &event(
                &format!("evt_tie_created_{attempt}"),
                "customer.subscription.created",
                now() - 100,
                before.json(),
            ),
            "applied",
        )
        .await;
        // What the list will say: the subscription as it was when it was read.
        api.set_list("subscriptions", vec![before.json()]);

        let (arrived, release) = api.hold("subscriptions");
        let first = now();
        let db = app.db.clone();
        let stripe = stripe_client(&stub);
        let resync =
            tokio::spawn(async move { sync::sync_customer(&db, &stripe, "cus_tie").await });
        arrived.await.expect("the list is read");
        let second = now();
        if first != second {
            // The read's second is not known for sure: try again in a fresh second.
            drop(release);
            resync.await.expect("join").expect("sync");
            continue;
        }

        // Within second S: Stripe changes the subscription and attaches a card.
        api.set(&format!("subscriptions/{sub_id}"), after.json());
        api.set(
            &format!("payment_methods/{pm_id}"),
            payment_method(&pm_id, Some("cus_tie"), "4242", 2030),
        );
        deliver_expect(
            &app,
            &event(
                &format!("evt_tie_updated_{attempt}"),
                "customer.subscription.updated",
                first,
                after.json(),
            ),
            "applied",
        )
        .await;
        deliver_expect(
            &app,
            &event(
                &format!("evt_tie_attached_{attempt}"),
                "payment_method.attached",
                first,
                payment_method(&pm_id, Some("cus_tie"), "4242", 2030),
            ),
            "applied",
        )
        .await;
        let _ = release.send(());
        resync.await.expect("join").expect("sync");

        let row = subscription_row(&app, &sub_id).await.expect("row");
        assert!(
            row.cancel_at_period_end,
            "the re-sync's older copy overwrote the event of its second"
        );
        assert_eq!(
            card(&app, &pm_id).await.customer_id.as_deref(),
            Some("cus_tie"),
            "a card attached in the read's second was detached"
        );
        app.stop().await;
        return;
    }
    panic!("never got a re-sync within one second");
}

/// Hole 2, the catalogue: `sync_catalogue` must take its read time before it lists.
async fn the_catalogue_read_never_beats_an_event_of_its_second(backend: Backend) {
    let (api, stub) = HeldApi::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    let old = price("price_pro", product("prod_pro", "Pro"), 2000, "month");
    let new = price("price_pro", product("prod_pro", "Pro"), 2500, "month");
    api.set("products/prod_pro", product("prod_pro", "Pro"));
    for attempt in 0..5 {
        api.set_list("prices", vec![old.clone()]);
        api.set("prices/price_pro", old.clone());
        let (arrived, release) = api.hold("prices");
        let first = now();
        let db = app.db.clone();
        let stripe = stripe_client(&stub);
        let read = tokio::spawn(async move { sync::sync_catalogue(&db, &stripe).await });
        arrived.await.expect("the list is read");
        if now() != first {
            drop(release);
            read.await.expect("join").expect("catalogue");
            continue;
        }
        api.set("prices/price_pro", new.clone());
        deliver_expect(
            &app,
            &event(
                &format!("evt_price_tie_{attempt}"),
                "price.updated",
                first,
                new.clone(),
            ),
            "applied",
        )
        .await;
        let _ = release.send(());
        read.await.expect("join").expect("catalogue");
        assert_eq!(
            price_row(&app, "price_pro").await.unit_amount,
            Some(2500),
            "the catalogue's older copy overwrote the event of its second"
        );
        app.stop().await;
        return;
    }
    panic!("never got a catalogue read within one second");
}

/// Hole 3: the default card is right whichever of `customer.updated` and
/// `payment_method.attached` arrives first.
async fn the_default_card_does_not_depend_on_arrival_order(backend: Backend) {
    let (_api, stub) = HeldApi::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    user_with_customer(&app, "cus_def").await;
    let t = now() - 500;
    // The new default is named before its card arrives (and the card's event is older).
    deliver_expect(
        &app,
        &event(
            "evt_def_cus",
            "customer.updated",
            t + 1,
            customer("cus_def", "def@example.com", Some("pm_def_2")),
        ),
        "applied",
    )
    .await;
    for (evt, pm, at) in [
        ("evt_def_pm1", "pm_def_1", t),
        ("evt_def_pm2", "pm_def_2", t),
    ] {
        deliver_expect(
            &app,
            &event(
                evt,
                "payment_method.attached",
                at,
                payment_method(pm, Some("cus_def"), "4242", 2030),
            ),
            "applied",
        )
        .await;
    }
    assert!(
        card(&app, "pm_def_2").await.is_default,
        "no card is default"
    );
    assert!(!card(&app, "pm_def_1").await.is_default);

    // Then the default moves to the first card, and the second card's update arrives late.
    deliver_expect(
        &app,
        &event(
            "evt_def_cus2",
            "customer.updated",
            t + 2,
            customer("cus_def", "def@example.com", Some("pm_def_1")),
        ),
        "applied",
    )
    .await;
    deliver_expect(
        &app,
        &event(
            "evt_def_pm2_upd",
            "payment_method.updated",
            t + 3,
            payment_method("pm_def_2", Some("cus_def"), "4242", 2031),
        ),
        "applied",
    )
    .await;
    assert!(card(&app, "pm_def_1").await.is_default);
    assert!(!card(&app, "pm_def_2").await.is_default);
    app.stop().await;
}

/// Hole 7: rows stamped ahead of the server's clock (a test clock, or a server whose clock
/// runs behind Stripe's) do not make a re-sync lose. A subscription canceled in Stripe while
/// its events were dropped ends canceled after `sync_customer`.
async fn a_resync_heals_rows_stamped_in_the_future(backend: Backend) {
    let (api, stub) = HeldApi::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    user_with_customer(&app, "cus_clock").await;
    let ahead = now() + 30 * 86_400;
    let sub = Sub::new("sub_clock", "cus_clock");
    deliver_expect(
        &app,
        &event(
            "evt_clock_created",
            "customer.subscription.created",
            ahead,
            sub.json(),
        ),
        "applied",
    )
    .await;
    deliver_expect(
        &app,
        &event(
            "evt_clock_pm",
            "payment_method.attached",
            ahead,
            payment_method("pm_clock", Some("cus_clock"), "4242", 2030),
        ),
        "applied",
    )
    .await;

    // In Stripe: canceled, and the card detached; none of those events arrived.
    let canceled = sub.clone_with(|s| {
        s.status = "canceled";
        s.canceled_at = Some(ahead + 10);
        s.ended_at = Some(ahead + 10);
    });
    api.set(
        "customers/cus_clock",
        customer("cus_clock", "clock@example.com", None),
    );
    api.set_list("subscriptions", vec![canceled.json()]);
    api.set("subscriptions/sub_clock", canceled.json());
    api.set_list("payment_methods", vec![]);
    api.set(
        "payment_methods/pm_clock",
        payment_method("pm_clock", None, "4242", 2030),
    );
    api.set_list("invoices", vec![]);
    api.set(
        "prices/price_pro",
        price("price_pro", product("prod_pro", "Pro"), 2000, "month"),
    );
    api.set("products/prod_pro", product("prod_pro", "Pro"));

    sync::sync_customer(&app.db, &stripe_client(&stub), "cus_clock")
        .await
        .expect("sync");
    let row = subscription_row(&app, "sub_clock").await.expect("row");
    assert_eq!(
        (row.status.as_str(), row.deleted),
        ("canceled", true),
        "the re-sync lost to a row stamped in the future"
    );
    assert_eq!(card(&app, "pm_clock").await.customer_id, None);
    // Healing takes one read per object the clocks could not order.
    assert!(api.hits("subscriptions/sub_clock") <= 1);
    app.stop().await;
}

/// Hole 6: a re-fetch that Stripe is slow to answer holds nothing: while it waits, another
/// event applies and a user logs in; then the held event applies the API's copy.
async fn a_slow_refetch_holds_up_nothing(backend: Backend) {
    let (api, stub) = HeldApi::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    let email = crate::support::app::unique_email();
    let password = "correct horse battery staple";
    let signed_up = app.sign_up(&email, password).await;
    assert!(
        signed_up.status().is_redirection(),
        "{}",
        signed_up.status()
    );

    let at = now() - 50;
    let sub = Sub::new("sub_slow", "cus_slow");
    deliver_expect(
        &app,
        &event(
            "evt_slow_1",
            "customer.subscription.created",
            at,
            sub.json(),
        ),
        "applied",
    )
    .await;
    // Another change in the same second: the clocks cannot order it, so the app re-fetches,
    // and Stripe takes its time to answer.
    let later = sub.clone_with(|s| s.cancel_at_period_end = true);
    api.set("subscriptions/sub_slow", later.json());
    let (arrived, release) = api.hold("subscriptions/sub_slow");
    let tie = event(
        "evt_slow_2",
        "customer.subscription.updated",
        at,
        later.json(),
    );

    let mut held = Box::pin(deliver(&app, &tie));
    tokio::select! {
        answer = &mut held => panic!("answered before Stripe was: {answer:?}"),
        arrived = arrived => arrived.expect("the app asks Stripe for the subscription"),
    }
    // While Stripe holds its answer: another event, and a log-in.
    let others = async {
        let other = Sub::new("sub_other", "cus_other");
        deliver_expect(
            &app,
            &event(
                "evt_other",
                "customer.subscription.created",
                at,
                other.json(),
            ),
            "applied",
        )
        .await;
        let fresh = crate::support::app::browser_client();
        let login = fresh
            .post(app.url("/api/login"))
            .header("Accept", "text/html")
            .header("Origin", &app.base)
            .header("Referer", app.url("/login"))
            .form(&[("email", email.as_str()), ("password", password)])
            .send()
            .await
            .expect("log-in request");
        assert!(
            login.status().is_redirection(),
            "log-in failed while a re-fetch was held: {}",
            login.status()
        );
    };
    tokio::select! {
        answer = &mut held => panic!(
            "the held event ended ({answer:?}) before another event and a log-in got through: \
             they waited on its Stripe request"
        ),
        () = others => {}
    }
    let _ = release.send(());
    let (status, answer) = held.await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let row = subscription_row(&app, "sub_slow").await.expect("row");
    assert!(row.cancel_at_period_end, "the re-fetched copy was applied");
    assert!(subscription_row(&app, "sub_other").await.is_some());
    app.stop().await;
}

/// Found by the proof runner: a rename reaches the plan name of a subscription even when no
/// price row links the subscription to its product (the product's own row gave the name).
async fn a_rename_reaches_subscriptions_without_a_price_row(backend: Backend) {
    let (_api, stub) = HeldApi::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    let t = now() - 500;
    deliver_expect(
        &app,
        &event(
            "evt_rn_p1",
            "product.created",
            t,
            product("prod_pro", "Pro"),
        ),
        "ignored",
    )
    .await;
    deliver_expect(
        &app,
        &event(
            "evt_rn_s",
            "customer.subscription.created",
            t + 1,
            Sub::new("sub_rn", "cus_rn").json(),
        ),
        "applied",
    )
    .await;
    assert_eq!(
        subscription_row(&app, "sub_rn")
            .await
            .expect("row")
            .plan_name
            .as_deref(),
        Some("Pro")
    );
    deliver_expect(
        &app,
        &event(
            "evt_rn_p2",
            "product.updated",
            t + 2,
            product("prod_pro", "Pro Plus"),
        ),
        "applied",
    )
    .await;
    assert_eq!(
        subscription_row(&app, "sub_rn")
            .await
            .expect("row")
            .plan_name
            .as_deref(),
        Some("Pro Plus"),
        "the rename did not reach the subscription"
    );
    app.stop().await;
}

/// Found by the proof runner: two `customer.updated` of one second delivered at once (on
/// PostgreSQL, two transactions). The one whose write is refused because the other got
/// there first must re-fetch, as a same-second tie does, not give up as stale.
async fn concurrent_events_of_one_second_end_in_stripes_state(backend: Backend) {
    let (api, stub) = HeldApi::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    user_with_customer(&app, "cus_cc").await;
    for round in 0..10 {
        let t = now() - 1000 + round * 10;
        let (first, last) = (format!("pm_cc_{round}_a"), format!("pm_cc_{round}_b"));
        for pm in [&first, &last] {
            deliver_expect(
                &app,
                &event(
                    &format!("evt_cc_att_{pm}"),
                    "payment_method.attached",
                    t,
                    payment_method(pm, Some("cus_cc"), "4242", 2030),
                ),
                "applied",
            )
            .await;
        }
        // Stripe's state now: the second card is the default.
        api.set(
            "customers/cus_cc",
            customer("cus_cc", "cc@example.com", Some(&last)),
        );
        let a = event(
            &format!("evt_cc_{round}_a"),
            "customer.updated",
            t + 1,
            customer("cus_cc", "cc@example.com", Some(&first)),
        );
        let b = event(
            &format!("evt_cc_{round}_b"),
            "customer.updated",
            t + 1,
            customer("cus_cc", "cc@example.com", Some(&last)),
        );
        let ((sa, _), (sb, _)) = tokio::join!(deliver(&app, &a), deliver(&app, &b));
        assert_eq!((sa, sb), (200, 200));
        assert!(
            card(&app, &last).await.is_default && !card(&app, &first).await.is_default,
            "round {round}: the default is not Stripe's"
        );
    }
    app.stop().await;
}

/// Found by the proof runner: on PostgreSQL, a new price written while its product is
/// renamed (two transactions at once) kept the old name.
async fn a_price_written_during_a_rename_takes_the_new_name(backend: Backend) {
    let (api, stub) = HeldApi::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    let t = now() - 1000;
    deliver_expect(
        &app,
        &event("evt_pn_p", "product.created", t, product("prod_pro", "Pro")),
        "ignored",
    )
    .await;
    for round in 0..10 {
        let name = format!("Pro {round}");
        api.set("products/prod_pro", product("prod_pro", &name));
        let at = t + 1 + round;
        let rename = event(
            &format!("evt_pn_r{round}"),
            "product.updated",
            at,
            product("prod_pro", &name),
        );
        let price_id = format!("price_pn_{round}");
        let new_price = event(
            &format!("evt_pn_c{round}"),
            "price.created",
            at,
            price(&price_id, json!("prod_pro"), 2000, "month"),
        );
        let ((sa, _), (sb, _)) = tokio::join!(deliver(&app, &rename), deliver(&app, &new_price));
        assert_eq!((sa, sb), (200, 200));
        assert_eq!(
            price_row(&app, &price_id).await.product_name,
            name,
            "round {round}: the new price kept the old name"
        );
    }
    app.stop().await;
}

crate::support::on_both_databases!(
    a_price_written_during_a_rename_takes_the_new_name,
    a_rename_reaches_subscriptions_without_a_price_row,
    concurrent_events_of_one_second_end_in_stripes_state,
    a_slow_refetch_holds_up_nothing,
    products_follow_their_newest_event,
    an_api_read_never_beats_an_event_of_its_second,
    the_catalogue_read_never_beats_an_event_of_its_second,
    the_default_card_does_not_depend_on_arrival_order,
    a_resync_heals_rows_stamped_in_the_future,
);
