//! Access by its own rule: the Pro feature (its server function and its route) and the page
//! read the same entitlement, whose grace clock starts at the oldest unpaid invoice of the
//! primary subscription, whatever invoices the page happens to list.

use billfold::db::clock::now;
use sea_orm::ActiveValue::Set;

use crate::support::{
    app::{Backend, TestApp},
    billing::{a_subscription, page_for, pro_answers, sign_up_with_customer, DAY},
    rows::invoice_row,
};

/// A weekly plan whose payment fails every week: each week's new unpaid invoice does not
/// restart `PAST_DUE_GRACE`; the grace counts from the first failure, and ends.
async fn a_plan_failing_every_week_does_not_restart_the_grace(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("PAST_DUE_GRACE", "10d")]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let mut weekly = a_subscription("past_due", now() + 7 * DAY);
    weekly.interval = sea_orm::ActiveValue::Set(Some("week".into()));
    for (id, days_ago) in [("in_week_1", 14), ("in_week_2", 7), ("in_week_3", 0)] {
        invoice_row(&app, &customer, id, "open", now() - days_ago * DAY - 60).await;
    }
    let page = page_for(&app, &customer, weekly).await;
    assert!(page.contains("Your last payment failed"), "{page}");
    for (status, body) in pro_answers(&app).await {
        assert_eq!(status, 403, "the grace ran out four days ago: {body}");
        assert!(body.contains("grace period is over"), "{body}");
    }
    app.stop().await;
}

/// `PAST_DUE_GRACE=0` refuses a past_due plan even when the unpaid invoice is older than
/// every invoice the page lists.
async fn no_grace_refuses_even_when_the_unpaid_invoice_is_not_listed(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("PAST_DUE_GRACE", "0")]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    invoice_row(&app, &customer, "in_unpaid_old", "open", now() - 60 * DAY).await;
    for n in 0..8 {
        let id = format!("in_paid_{n}");
        invoice_row(&app, &customer, &id, "paid", now() - n * DAY - 60).await;
    }
    let page = page_for(
        &app,
        &customer,
        a_subscription("past_due", now() + 20 * DAY),
    )
    .await;
    assert!(
        !page.contains("in_unpaid_old"),
        "the page lists only the newest invoices"
    );
    for (status, body) in pro_answers(&app).await {
        assert_eq!(status, 403, "{body}");
    }
    app.stop().await;
}

/// Access is enforced on the server: the Pro server function and the Pro route serve a user
/// who is trialing, active, or cancelling but not yet ended, and refuse one whose plan ended
/// (or never began) with the reason and the way to the billing page, never the report.
async fn the_pro_feature_is_refused_on_the_server_without_access(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let anonymous = crate::support::app::browser_client()
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

crate::support::on_both_databases!(
    a_plan_failing_every_week_does_not_restart_the_grace,
    no_grace_refuses_even_when_the_unpaid_invoice_is_not_listed,
    the_pro_feature_is_refused_on_the_server_without_access,
);
