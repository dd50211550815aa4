//! The webhook route: signatures, exactly-once, ordering, failures and the operator's
//! list/replay, through the real HTTP route on SQLite and PostgreSQL.

use billfold::webhooks::{
    history,
    pipeline::{Outcome, Pipeline},
};
use sea_orm::ConnectionTrait;
use stripe_sim::signature;

use crate::support::{app::Backend, rows::*, stripe_objects::*, stripe_stub::*};

fn sub_event(id: &str, event_type: &str, created: i64, sub: &Sub) -> String {
    event(id, event_type, created, sub.json())
}

async fn signatures_are_checked(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, &format!("whsec_old_one,{SECRET}"), &stub).await;
    let body = event(
        "evt_sig",
        "customer.created",
        now(),
        serde_json::json!({"id": "cus_x"}),
    );
    let t = now();

    // The double's signer agrees with Stripe's reference vector; the vector's own header is
    // rejected only because its timestamp is years old.
    let reference_body = br#"{"id":"evt_1","object":"event"}"#;
    let reference = "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd";
    assert_eq!(
        signature::v1_signature(SECRET, 1_700_000_000, reference_body),
        reference
    );
    let res = post_raw(
        &app,
        reference_body,
        Some(&format!("t=1700000000,v1={reference}")),
    )
    .await;
    assert_eq!(res.status(), 400);
    let json: serde_json::Value = res.json().await.expect("json");
    assert_eq!(json["error"], "timestamp outside the tolerance (too old)");
    // The same bytes signed now pass the signature and fail only as "not an event".
    let res = post_raw(
        &app,
        reference_body,
        Some(&signature::header_value(SECRET, t, reference_body)),
    )
    .await;
    assert_eq!(res.status(), 400);
    let json: serde_json::Value = res.json().await.expect("json");
    assert!(
        json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not a Stripe event"),
        "{json}"
    );

    // Valid.
    let good = signature::header_value(SECRET, t, body.as_bytes());
    let res = post_raw(&app, body.as_bytes(), Some(&good)).await;
    assert_eq!(res.status(), 200);
    let json: serde_json::Value = res.json().await.expect("json");
    assert_eq!(
        json,
        serde_json::json!({"received": true, "outcome": "ignored"})
    );

    // Rotation: a header with two v1 (old secret's and an unknown one), and the config's
    // other secret alone.
    let body2 = event(
        "evt_sig2",
        "customer.created",
        now(),
        serde_json::json!({"id": "cus_x"}),
    );
    let two = format!(
        "t={t},v1={},v1={}",
        signature::v1_signature("whsec_unknown", t, body2.as_bytes()),
        signature::v1_signature("whsec_old_one", t, body2.as_bytes())
    );
    assert_eq!(
        post_raw(&app, body2.as_bytes(), Some(&two)).await.status(),
        200
    );

    let mut tampered = body.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] ^= 0x01;
    let cases: Vec<(&str, Vec<u8>, Option<String>, &str)> = vec![
        (
            "tampered body",
            tampered,
            Some(good.clone()),
            "no signature matches the payload",
        ),
        (
            "wrong secret",
            body.clone().into_bytes(),
            Some(signature::header_value("whsec_wrong", t, body.as_bytes())),
            "no signature matches the payload",
        ),
        (
            "too old",
            body.clone().into_bytes(),
            Some(signature::header_value(SECRET, t - 301, body.as_bytes())),
            "timestamp outside the tolerance (too old)",
        ),
        (
            "too far in the future",
            body.clone().into_bytes(),
            // Well past the edge: the cases run one after another, and `t` was read before
            // the first (on a loaded machine seconds go by before this one is sent).
            Some(signature::header_value(SECRET, t + 360, body.as_bytes())),
            "timestamp outside the tolerance (in the future)",
        ),
        (
            "missing header",
            body.clone().into_bytes(),
            None,
            "missing Stripe-Signature header",
        ),
        (
            "empty header",
            body.clone().into_bytes(),
            Some(String::new()),
            "missing Stripe-Signature header",
        ),
        (
            "garbled header",
            body.clone().into_bytes(),
            Some("garbage".into()),
            "malformed Stripe-Signature header",
        ),
        (
            "no v1",
            body.clone().into_bytes(),
            Some(format!("t={t},v0=abc")),
            "no v1 signature in Stripe-Signature header",
        ),
    ];
    for (name, body, header, expected) in cases {
        let res = post_raw(&app, &body, header.as_deref()).await;
        assert_eq!(res.status(), 400, "{name}");
        let json: serde_json::Value = res.json().await.expect("json");
        assert_eq!(json["error"], expected, "{name}");
    }

    // Oversized: refused before anything is read into memory or verified.
    let big = vec![b' '; 512 * 1024 + 1];
    let res = post_raw(&app, &big, Some(&signature::header_value(SECRET, t, &big))).await;
    assert_eq!(res.status(), 413);

    // Nothing unverified was recorded.
    let recorded = scalar(&app, "SELECT COUNT(*) FROM webhook_events").await;
    assert_eq!(recorded.as_deref(), Some("2"));
    app.stop().await;
}

async fn an_event_is_applied_exactly_once(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    let sub = Sub::new("sub_once", "cus_once");
    let body = sub_event("evt_once", "customer.subscription.created", now(), &sub);
    deliver_expect(&app, &body, "applied").await;
    deliver_expect(&app, &body, "duplicate").await;
    let row = event_row(&app, "evt_once").await;
    assert_eq!((row.outcome, row.attempts), (Outcome::Applied, 1));

    // Two deliveries at once: one applies, the other sees it done; both are 2xx.
    let sub = Sub::new("sub_twice", "cus_once");
    let body = sub_event("evt_twice", "customer.subscription.created", now(), &sub);
    let (a, b) = tokio::join!(deliver(&app, &body), deliver(&app, &body));
    assert_eq!((a.0, b.0), (200, 200));
    let mut outcomes = [a.1["outcome"].to_string(), b.1["outcome"].to_string()];
    outcomes.sort();
    assert_eq!(outcomes, ["\"applied\"", "\"duplicate\""]);
    let row = event_row(&app, "evt_twice").await;
    assert_eq!((row.outcome, row.attempts), (Outcome::Applied, 1));
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM subscriptions WHERE id = 'sub_twice'"
        )
        .await
        .as_deref(),
        Some("1")
    );
    app.stop().await;
}

/// All orders of `n` items.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

async fn every_order_converges(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    let t0 = now() - 1_000;
    for (n, order) in permutations(4).into_iter().enumerate() {
        let id = format!("sub_perm_{n}");
        let base = Sub::new(&id, "cus_perm");
        let lifecycle = [
            ("customer.subscription.created", base.json()),
            (
                "customer.subscription.updated",
                Sub::new(&id, "cus_perm")
                    .with(|s| s.cancel_at_period_end = true)
                    .json(),
            ),
            (
                "customer.subscription.updated",
                Sub::new(&id, "cus_perm").json(),
            ),
            (
                "customer.subscription.deleted",
                Sub::new(&id, "cus_perm")
                    .with(|s| {
                        s.status = "canceled";
                        s.canceled_at = Some(t0 + 3);
                        s.ended_at = Some(t0 + 3);
                    })
                    .json(),
            ),
        ];
        let mut seen_newest = -1i64;
        for &i in &order {
            let (event_type, object) = &lifecycle[i];
            let evt = format!("evt_perm_{n}_{i}");
            let body = event(&evt, event_type, t0 + i as i64, object.clone());
            let (status, json) = deliver(&app, &body).await;
            assert_eq!(status, 200, "{order:?}: {json}");
            // Deletion is final whenever it comes; anything older than what the row shows,
            // or after the deletion, is stale.
            let expected = if i == 3 || (i as i64 > seen_newest && seen_newest < 3) {
                "applied"
            } else {
                "stale"
            };
            assert_eq!(json["outcome"], expected, "order {order:?}, event {i}");
            assert_eq!(event_row(&app, &evt).await.outcome.to_string(), expected);
            seen_newest = seen_newest.max(i as i64);
        }
        let row = subscription_row(&app, &id).await.expect("row");
        assert_eq!(row.status, "canceled", "{order:?}");
        assert!(row.deleted, "{order:?}");
        assert!(!row.cancel_at_period_end, "{order:?}");
        assert_eq!(row.ended_at, Some(t0 + 3));
    }

    // Without the deletion: whatever the order, the resumed state wins.
    for (n, order) in permutations(3).into_iter().enumerate() {
        let id = format!("sub_live_{n}");
        let lifecycle = [
            Sub::new(&id, "cus_perm").json(),
            Sub::new(&id, "cus_perm")
                .with(|s| s.cancel_at_period_end = true)
                .json(),
            Sub::new(&id, "cus_perm")
                .with(|s| s.period_end = 1_705_000_000)
                .json(),
        ];
        for &i in &order {
            let body = event(
                &format!("evt_live_{n}_{i}"),
                "customer.subscription.updated",
                t0 + i as i64,
                lifecycle[i].clone(),
            );
            assert_eq!(deliver(&app, &body).await.0, 200);
        }
        let row = subscription_row(&app, &id).await.expect("row");
        assert_eq!(
            (
                row.status.as_str(),
                row.cancel_at_period_end,
                row.current_period_end
            ),
            ("active", false, Some(1_705_000_000)),
            "{order:?}"
        );
        assert!(!row.deleted);
        assert_eq!(row.stripe_event_at, t0 + 2);
    }
    app.stop().await;
}

async fn a_same_second_tie_takes_the_api_truth(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    let t = now() - 100;
    let first = Sub::new("sub_tie", "cus_tie").with(|s| s.cancel_at_period_end = true);
    deliver_expect(
        &app,
        &sub_event("evt_tie_1", "customer.subscription.updated", t, &first),
        "applied",
    )
    .await;

    // Stripe's current truth: scheduled to cancel at a date, and past due.
    let truth = Sub::new("sub_tie", "cus_tie").with(|s| {
        s.status = "past_due";
        s.cancel_at = Some(1_710_000_000);
    });
    stub.set("subscriptions/sub_tie", truth.json());
    let second = Sub::new("sub_tie", "cus_tie");
    deliver_expect(
        &app,
        &sub_event("evt_tie_2", "customer.subscription.updated", t, &second),
        "applied",
    )
    .await;
    assert_eq!(stub.hits("subscriptions/sub_tie"), 1);
    let row = subscription_row(&app, "sub_tie").await.expect("row");
    assert_eq!(row.status, "past_due");
    assert_eq!(row.cancel_at, Some(1_710_000_000));
    assert!(!row.cancel_at_period_end);
    assert_eq!(row.stripe_event_at, t);

    // Older than the watermark: recorded as stale, nothing changes, nothing fetched.
    let old = Sub::new("sub_tie", "cus_tie").with(|s| s.status = "unpaid");
    deliver_expect(
        &app,
        &sub_event("evt_tie_old", "customer.subscription.updated", t - 5, &old),
        "stale",
    )
    .await;
    assert_eq!(event_row(&app, "evt_tie_old").await.outcome, Outcome::Stale);
    assert_eq!(
        subscription_row(&app, "sub_tie").await.expect("row").status,
        "past_due"
    );
    assert_eq!(stub.hits("subscriptions/sub_tie"), 1);
    app.stop().await;
}

async fn a_failed_apply_is_retried_by_the_redelivery(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    let body = sub_event(
        "evt_fail",
        "customer.subscription.created",
        now(),
        &Sub::new("sub_fail", "cus_fail"),
    );
    app.db
        .execute_unprepared("ALTER TABLE subscriptions RENAME TO subscriptions_away")
        .await
        .expect("rename");
    for attempt in 1..=2 {
        let (status, json) = deliver(&app, &body).await;
        assert_eq!(status, 500, "{json}");
        assert_eq!(json["outcome"], "failed");
        let row = event_row(&app, "evt_fail").await;
        assert_eq!(row.outcome, Outcome::Failed);
        assert_eq!(row.attempts, attempt);
        let error = row.error.unwrap_or_default();
        assert!(error.contains("database error"), "{error}");
    }
    app.db
        .execute_unprepared("ALTER TABLE subscriptions_away RENAME TO subscriptions")
        .await
        .expect("rename back");
    deliver_expect(&app, &body, "applied").await;
    let row = event_row(&app, "evt_fail").await;
    assert_eq!(
        (row.outcome, row.attempts, row.error),
        (Outcome::Applied, 3, None)
    );
    assert!(subscription_row(&app, "sub_fail").await.is_some());
    // Applied now: a further redelivery is a duplicate.
    deliver_expect(&app, &body, "duplicate").await;
    app.stop().await;
}

async fn list_and_replay_recorded_events(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    seed_price(&app).await;
    let t = now() - 50;
    deliver_expect(
        &app,
        &event(
            "evt_unknown",
            "customer.created",
            t,
            serde_json::json!({"id": "cus_l"}),
        ),
        "ignored",
    )
    .await;
    // A failure, recorded with its payload while the table is away.
    app.db
        .execute_unprepared("ALTER TABLE subscriptions RENAME TO subscriptions_away")
        .await
        .expect("rename");
    let body = sub_event(
        "evt_later",
        "customer.subscription.updated",
        t + 1,
        &Sub::new("sub_replay", "cus_l").with(|s| s.cancel_at_period_end = true),
    );
    assert_eq!(deliver(&app, &body).await.0, 500);
    app.db
        .execute_unprepared("ALTER TABLE subscriptions_away RENAME TO subscriptions")
        .await
        .expect("rename back");

    let all = history::list(&app.db, &history::Filter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 3);
    let failed = history::list(
        &app.db,
        &history::Filter {
            outcome: Some(Outcome::Failed),
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, "evt_later");
    let by_type = history::list(
        &app.db,
        &history::Filter {
            event_type: Some("customer.created".into()),
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(by_type.len(), 1);
    let future = history::list(
        &app.db,
        &history::Filter {
            since: Some(now() + 3_600),
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert!(future.is_empty());

    let stripe = stripe_client(&stub);
    let p = Pipeline {
        db: &app.db,
        stripe: &stripe,
        livemode: false,
    };
    let results = history::replay_matching(
        p,
        &history::Filter {
            outcome: Some(Outcome::Failed),
            ..Default::default()
        },
    )
    .await
    .expect("replay");
    assert_eq!(
        results,
        vec![("evt_later".to_owned(), Ok(Outcome::Applied))]
    );
    let row = subscription_row(&app, "sub_replay")
        .await
        .expect("applied by the replay");
    assert!(row.cancel_at_period_end);
    assert_eq!(event_row(&app, "evt_later").await.attempts, 2);

    // A replay of an event that is no longer the newest stays within the ordering rules.
    let newer = sub_event(
        "evt_newer",
        "customer.subscription.updated",
        t + 2,
        &Sub::new("sub_replay", "cus_l"),
    );
    deliver_expect(&app, &newer, "applied").await;
    let done = history::replay(p, "evt_later").await.expect("replay");
    assert_eq!(done.outcome, Outcome::Stale);
    assert!(
        !subscription_row(&app, "sub_replay")
            .await
            .expect("row")
            .cancel_at_period_end
    );
    assert!(matches!(
        history::replay(p, "evt_nope").await,
        Err(history::ReplayError::NotFound(_))
    ));
    app.stop().await;
}

crate::support::on_both_databases!(
    signatures_are_checked,
    an_event_is_applied_exactly_once,
    every_order_converges,
    a_same_second_tie_takes_the_api_truth,
    a_failed_apply_is_retried_by_the_redelivery,
    list_and_replay_recorded_events,
);
