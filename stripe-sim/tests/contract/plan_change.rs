//! Switching plans: the portal's `subscription_update_confirm` deep link, its confirmation
//! page, prorations to the second, `POST /v1/invoices/create_preview`, and downgrades that
//! wait for the period's end through a subscription schedule.

use std::time::Duration;

use stripe::StripeError;
use stripe_billing::{
    billing_portal_configuration::ListBillingPortalConfiguration,
    billing_portal_session::*,
    invoice::{
        CreatePreviewInvoice, CreatePreviewInvoiceSubscriptionDetails,
        CreatePreviewInvoiceSubscriptionDetailsItems,
        CreatePreviewInvoiceSubscriptionDetailsProrationBehavior, ListInvoice,
    },
    subscription::{CreateSubscription, CreateSubscriptionItems, RetrieveSubscription},
};
use stripe_shared::{InvoiceStatus, SubscriptionStatus};

use crate::helpers::*;

const DAY: u64 = 86_400;

/// Changes the default portal configuration with a raw form body; answers its id.
async fn configure(sim: &Sim, body: &str) -> String {
    let configs = ListBillingPortalConfiguration::new()
        .is_default(true)
        .send(&sim.client)
        .await
        .expect("configs");
    let id = configs.data[0].id.to_string();
    let (status, json) = post_form(
        sim,
        &format!("/v1/billing_portal/configurations/{id}"),
        body,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    id
}

fn after(
    kind: CreateBillingPortalSessionFlowDataAfterCompletionType,
    url: Option<&str>,
) -> CreateBillingPortalSessionFlowDataAfterCompletion {
    let mut after = CreateBillingPortalSessionFlowDataAfterCompletion::new(kind);
    after.redirect = url.map(CreateBillingPortalSessionFlowDataAfterCompletionRedirect::new);
    after
}

fn confirm_flow(
    sub: &stripe_shared::Subscription,
    price: &str,
    then: CreateBillingPortalSessionFlowDataAfterCompletion,
) -> CreateBillingPortalSessionFlowData {
    let mut item = CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirmItems::new(
        sub.items.data[0].id.as_str(),
    );
    item.price = Some(price.to_string());
    let mut flow = CreateBillingPortalSessionFlowData::new(
        CreateBillingPortalSessionFlowDataType::SubscriptionUpdateConfirm,
    );
    flow.subscription_update_confirm = Some(
        CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirm::new(
            vec![item],
            sub.id.as_str(),
        ),
    );
    flow.after_completion = Some(then);
    flow
}

async fn session(
    sim: &Sim,
    customer: &str,
    flow: CreateBillingPortalSessionFlowData,
) -> Result<stripe_billing::BillingPortalSession, StripeError> {
    CreateBillingPortalSession::new()
        .customer(customer)
        .return_url("https://app.example/billing?from=portal")
        .flow_data(flow)
        .send(&sim.client)
        .await
}

/// Follows the deep link to its confirmation page: (the form's URL, the page).
async fn confirmation_page(
    sim: &Sim,
    browser: &reqwest::Client,
    session: &stripe_billing::BillingPortalSession,
) -> (String, String) {
    let entry = browser.get(&session.url).send().await.expect("entry");
    assert_eq!(entry.status(), 303, "the flow opens on its own screen");
    let url = absolute(sim, &location(&entry));
    assert!(url.contains("/update/confirm?price="), "{url}");
    let page = browser.get(&url).send().await.expect("confirm page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let action = url.split('?').next().unwrap_or_default().to_string();
    (action, html)
}

/// The value of `after` up to the next `"` in the page.
fn attr(html: &str, after: &str) -> String {
    let start = html
        .find(after)
        .unwrap_or_else(|| panic!("the page lacks {after}: {html}"))
        + after.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn amount(html: &str, id: &str) -> i64 {
    attr(html, &format!(r#"id="{id}" data-amount=""#))
        .parse()
        .expect("an amount")
}

fn hidden(html: &str, name: &str) -> String {
    attr(html, &format!(r#"name="{name}" value=""#))
}

/// Stripe's rule as the double documents it: `amount × remaining ÷ length`, rounded to the
/// cent, halves away from zero (all positive here).
fn prorated(amount: i64, remaining: i64, length: i64) -> i64 {
    let (a, r, l) = (
        i128::from(amount),
        i128::from(remaining),
        i128::from(length),
    );
    i64::try_from((a * r * 2 + l) / (l * 2)).expect("fits")
}

fn proration_sum(invoice: &stripe_shared::Invoice) -> i64 {
    invoice
        .lines
        .data
        .iter()
        .filter(|l| {
            l.parent
                .as_ref()
                .and_then(|p| p.subscription_item_details.as_ref())
                .is_some_and(|d| d.proration)
        })
        .map(|l| l.amount)
        .sum()
}

async fn preview(
    sim: &Sim,
    customer: &str,
    sub: &stripe_shared::Subscription,
    price: &str,
    proration_date: i64,
    behavior: CreatePreviewInvoiceSubscriptionDetailsProrationBehavior,
) -> stripe_shared::Invoice {
    let mut item = CreatePreviewInvoiceSubscriptionDetailsItems::new();
    item.id = Some(sub.items.data[0].id.to_string());
    item.price = Some(price.to_string());
    let mut details = CreatePreviewInvoiceSubscriptionDetails::new();
    details.items = Some(vec![item]);
    details.proration_date = Some(proration_date);
    details.proration_behavior = Some(behavior);
    CreatePreviewInvoice::new()
        .customer(customer)
        .subscription(sub.id.as_str())
        .subscription_details(details)
        .send(&sim.client)
        .await
        .expect("create_preview")
}

#[tokio::test]
async fn upgrade_through_the_confirm_flow_charges_exactly_the_previewed_proration() {
    let sim = start().await;
    configure(
        &sim,
        "features[subscription_update][proration_behavior]=always_invoice",
    )
    .await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    // A third of the way into the month, so the proration is neither nothing nor everything.
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(10 * DAY))
        .await
        .expect("advance");
    let pro = price(&sim, "pro_monthly").await;
    let session = session(
        &sim,
        &cus,
        confirm_flow(
            &sub,
            &pro,
            after(
                CreateBillingPortalSessionFlowDataAfterCompletionType::Redirect,
                Some("https://app.example/billing?upgraded=1"),
            ),
        ),
    )
    .await
    .expect("portal session");
    let flow = session.flow.as_ref().expect("flow");
    assert_eq!(flow.type_.as_str(), "subscription_update_confirm");
    let confirm = flow.subscription_update_confirm.as_ref().expect("confirm");
    assert_eq!(confirm.subscription, sub.id.as_str());
    assert_eq!(confirm.items[0].price.as_deref(), Some(pro.as_str()));
    assert_eq!(
        flow.after_completion
            .redirect
            .as_ref()
            .map(|r| r.return_url.as_str()),
        Some("https://app.example/billing?upgraded=1")
    );

    let browser = browser();
    let (action, html) = confirmation_page(&sim, &browser, &session).await;
    for text in [
        "Current plan",
        "Starter — $9.00 per month",
        "New plan",
        "Pro — $29.00 per month",
        "Unused time on Starter after",
        "Remaining time on Pro after",
        "Prorated amount",
        "Due today",
        "Next invoice",
        ">Confirm</button>",
        "Cancel and return",
    ] {
        assert!(html.contains(text), "the confirmation page lacks {text}");
    }
    let shown = amount(&html, "proration-total");
    let due_today = amount(&html, "due-today");
    let proration_date: i64 = hidden(&html, "proration_date").parse().expect("date");
    let (start, end) = (
        sub.items.data[0].current_period_start,
        sub.items.data[0].current_period_end,
    );
    // To the second: Pro for the time left, less Starter for the same time, each rounded.
    let (left, length) = (end - proration_date, end - start);
    assert!(left < length - 10 * 86_400 + 60, "the clock moved ten days");
    assert_eq!(
        shown,
        prorated(2900, left, length) - prorated(900, left, length)
    );
    assert_eq!(
        due_today, shown,
        "always_invoice charges the prorations today"
    );
    assert!(html.contains(&format!("${}.{:02}", shown / 100, shown % 100)));
    assert_eq!(
        amount(&html, "next-invoice"),
        2900,
        "the renewal is the whole Pro price"
    );

    // The API's preview of the same change, at the same second, says the same.
    let previewed = preview(
        &sim,
        &cus,
        &sub,
        &pro,
        proration_date,
        CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::AlwaysInvoice,
    )
    .await;
    assert!(previewed
        .id
        .as_ref()
        .is_some_and(|id| id.as_str().starts_with("upcoming_in_")));
    assert_eq!(previewed.status, Some(InvoiceStatus::Draft));
    assert_eq!(proration_sum(&previewed), shown);
    assert_eq!((previewed.amount_due, previewed.total), (shown, shown));
    assert_eq!(previewed.lines.data.len(), 2);
    assert_eq!(
        previewed
            .parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref())
            .and_then(|d| d.subscription_proration_date),
        Some(proration_date)
    );
    assert_eq!(previewed.next_payment_attempt, Some(proration_date));
    // A preview is stored nowhere.
    let before = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    assert_eq!(before.data.len(), 1);

    let done = browser
        .post(&action)
        .form(&[
            ("price", pro.as_str()),
            ("quantity", "1"),
            ("proration_date", &proration_date.to_string()),
        ])
        .send()
        .await
        .expect("confirm");
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "https://app.example/billing?upgraded=1");

    let now = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(now.items.data[0].price.id.as_str(), pro);
    assert_eq!(now.status, SubscriptionStatus::Active);
    assert_eq!(
        now.items.data[0].current_period_end, sub.items.data[0].current_period_end,
        "an upgrade keeps the billing cycle"
    );
    let invoices = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    let proration = &invoices.data[0];
    assert_eq!(
        proration.billing_reason.as_ref().map(|r| r.as_str()),
        Some("subscription_update")
    );
    assert_eq!(proration.status, Some(InvoiceStatus::Paid));
    assert_eq!(proration.amount_paid, shown);
    assert_eq!(proration_sum(proration), shown);
    assert_eq!(
        now.latest_invoice
            .as_ref()
            .and_then(|i| i.id().as_ref().map(|id| id.to_string())),
        proration.id.as_ref().map(|i| i.to_string())
    );

    // The events Stripe sends for it, each parsing as its type.
    let updated = events_of(&sim, "customer.subscription.updated").await;
    let switch = updated
        .iter()
        .find(|e| e["data"]["previous_attributes"].get("items").is_some())
        .expect("an update with the old items");
    assert_eq!(
        switch["data"]["previous_attributes"]["items"]["data"][0]["price"]["lookup_key"],
        "starter_monthly"
    );
    assert_eq!(
        switch["data"]["object"]["items"]["data"][0]["price"]["id"],
        pro.as_str()
    );
    for kind in [
        "invoiceitem.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "customer.subscription.updated",
    ] {
        let events = events_of(&sim, kind).await;
        assert!(!events.is_empty(), "no {kind}");
        for e in &events {
            crate::webhooks::assert_typed(&e.to_string());
        }
    }
    assert_eq!(events_of(&sim, "invoiceitem.created").await.len(), 2);
    let paid = events_of(&sim, "invoice.paid").await;
    assert_eq!(
        paid.last()
            .map(|e| e["data"]["object"]["amount_paid"].clone()),
        Some(serde_json::json!(shown))
    );
}

#[tokio::test]
async fn create_prorations_wait_for_the_renewal_and_the_preview_says_so() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(10 * DAY))
        .await
        .expect("advance");
    let team = price(&sim, "team_monthly").await;
    let session = session(
        &sim,
        &cus,
        confirm_flow(
            &sub,
            &team,
            after(
                CreateBillingPortalSessionFlowDataAfterCompletionType::PortalHomepage,
                None,
            ),
        ),
    )
    .await
    .expect("portal session");
    let browser = browser();
    let (action, html) = confirmation_page(&sim, &browser, &session).await;
    let shown = amount(&html, "proration-total");
    assert_eq!(
        amount(&html, "due-today"),
        0,
        "create_prorations charges nothing now"
    );
    assert_eq!(amount(&html, "next-invoice"), 9900 + shown);
    assert!(html.contains("added to your next invoice"));
    let proration_date: i64 = hidden(&html, "proration_date").parse().expect("date");
    let previewed = preview(
        &sim,
        &cus,
        &sub,
        &team,
        proration_date,
        CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::CreateProrations,
    )
    .await;
    assert_eq!(proration_sum(&previewed), shown);
    assert_eq!(previewed.amount_due, 9900 + shown);
    assert_eq!(
        previewed.period_end, sub.items.data[0].current_period_end,
        "the preview is the renewal at the period's end"
    );

    let done = browser
        .post(&action)
        .form(&[
            ("price", team.as_str()),
            ("proration_date", &proration_date.to_string()),
        ])
        .send()
        .await
        .expect("confirm");
    assert_eq!(done.status(), 303);
    assert!(location(&done).ends_with("?notice=update"));
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(22 * DAY))
        .await
        .expect("renew");
    let invoices = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    let renewal = &invoices.data[0];
    assert_eq!(
        renewal.billing_reason.as_ref().map(|r| r.as_str()),
        Some("subscription_cycle")
    );
    assert_eq!(renewal.amount_paid, 9900 + shown);
    assert_eq!(proration_sum(renewal), shown);
}

#[tokio::test]
async fn a_downgrade_waits_for_the_period_end_through_a_schedule() {
    let sim = start().await;
    configure(
        &sim,
        "features[subscription_update][schedule_at_period_end][conditions][0][type]=decreasing_item_amount\
         &features[subscription_update][schedule_at_period_end][conditions][1][type]=shortening_interval",
    )
    .await;
    // On Pro, paid (no trial).
    let cus = customer(&sim, "downgrade@example.com").await;
    let pm = attach(&sim, "pm_card_visa", &cus).await;
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(price(&sim, "pro_monthly").await);
    let sub = CreateSubscription::new()
        .customer(&cus)
        .items(vec![item])
        .default_payment_method(&pm)
        .trial_from_plan(false)
        .send(&sim.client)
        .await
        .expect("subscription");
    assert_eq!(sub.status, SubscriptionStatus::Active);
    let period_end = sub.items.data[0].current_period_end;
    let starter = price(&sim, "starter_monthly").await;

    let session = session(
        &sim,
        &cus,
        confirm_flow(
            &sub,
            &starter,
            after(
                CreateBillingPortalSessionFlowDataAfterCompletionType::HostedConfirmation,
                None,
            ),
        ),
    )
    .await
    .expect("portal session");
    let browser = browser();
    let (action, html) = confirmation_page(&sim, &browser, &session).await;
    assert!(html.contains("Your plan changes to Starter on"), "{html}");
    assert!(!html.contains("Prorated amount"), "nothing is prorated");
    assert_eq!(amount(&html, "due-today"), 0);
    assert_eq!(amount(&html, "next-invoice"), 900);
    assert_eq!(
        attr(&html, r#"id="next-invoice-date" data-date=""#),
        period_end.to_string()
    );
    let done = browser
        .post(&action)
        .form(&[("price", starter.as_str())])
        .send()
        .await
        .expect("confirm");
    assert_eq!(done.status(), 303);
    let confirmation = browser
        .get(absolute(&sim, &location(&done)))
        .send()
        .await
        .expect("done")
        .text()
        .await
        .expect("html");
    assert!(confirmation.contains("scheduled"), "{confirmation}");

    // Still Pro, with a schedule that switches it at the period's end.
    let still = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(
        still.items.data[0].price.lookup_key.as_deref(),
        Some("pro_monthly")
    );
    let schedule_id = still
        .schedule
        .as_ref()
        .map(|s| s.id().to_string())
        .expect("a subscription schedule");
    let (status, raw) = get_json(&sim, &format!("/v1/subscription_schedules/{schedule_id}")).await;
    assert_eq!(status, 200, "{raw}");
    let schedule: stripe_shared::SubscriptionSchedule =
        miniserde::json::from_str(&raw.to_string()).expect("parses as a SubscriptionSchedule");
    assert_eq!(schedule.status.as_str(), "active");
    assert_eq!(schedule.end_behavior.as_str(), "release");
    assert_eq!(schedule.phases.len(), 2);
    assert_eq!(schedule.phases[0].end_date, period_end);
    assert_eq!(schedule.phases[1].start_date, period_end);
    assert_eq!(schedule.phases[1].items[0].price.id().as_str(), starter);
    assert_eq!(
        events_of(&sim, "subscription_schedule.created").await.len(),
        1
    );
    let (status, upcoming) = post_form(
        &sim,
        "/v1/invoices/create_preview",
        &format!("subscription={}", sub.id),
    )
    .await;
    assert_eq!(status, 200, "{upcoming}");
    assert_eq!(
        upcoming["amount_due"], 900,
        "the next invoice is for Starter"
    );
    // The portal shows the pending change and no second one can be started.
    let home = browser
        .get(format!("{}?notice=x", session.url))
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("html");
    assert!(home.contains("Your plan changes to Starter") && home.contains("Keep Pro"));
    let again = self::session(
        &sim,
        &cus,
        confirm_flow(
            &sub,
            &price(&sim, "team_monthly").await,
            after(
                CreateBillingPortalSessionFlowDataAfterCompletionType::PortalHomepage,
                None,
            ),
        ),
    )
    .await;
    match again {
        Err(StripeError::Stripe(e, 400)) => assert_eq!(
            e.param.as_deref(),
            Some("flow_data[subscription_update_confirm][subscription]")
        ),
        other => panic!("expected a 400, got {other:?}"),
    }

    // A day before the end: still Pro.
    let to_end =
        u64::try_from(period_end - sub.items.data[0].current_period_start).expect("period");
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(to_end - DAY))
        .await
        .expect("advance");
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(
        s.items.data[0].price.lookup_key.as_deref(),
        Some("pro_monthly")
    );
    // Past the end: Starter, billed as Starter.
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(2 * DAY))
        .await
        .expect("advance");
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(s.items.data[0].price.id.as_str(), starter);
    assert_eq!(s.items.data[0].current_period_start, period_end);
    assert_eq!(s.status, SubscriptionStatus::Active);
    let invoices = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    assert_eq!(invoices.data[0].amount_paid, 900);
    assert_eq!(
        invoices.data[0].billing_reason.as_ref().map(|r| r.as_str()),
        Some("subscription_cycle")
    );
    // After its one period on Starter the schedule lets the subscription go.
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(32 * DAY))
        .await
        .expect("advance");
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert!(s.schedule.is_none());
    assert_eq!(s.items.data[0].price.id.as_str(), starter);
    let (_, raw) = get_json(&sim, &format!("/v1/subscription_schedules/{schedule_id}")).await;
    assert_eq!(raw["status"], "released");
    assert_eq!(raw["released_subscription"], sub.id.as_str());
    for kind in [
        "subscription_schedule.created",
        "subscription_schedule.updated",
        "subscription_schedule.released",
    ] {
        let events = events_of(&sim, kind).await;
        assert_eq!(events.len(), 1, "{kind}");
        crate::webhooks::assert_typed(&events[0].to_string());
    }
}

#[tokio::test]
async fn keeping_the_plan_releases_a_scheduled_downgrade() {
    let sim = start().await;
    configure(
        &sim,
        "features[subscription_update][schedule_at_period_end][conditions][0][type]=decreasing_item_amount",
    )
    .await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "team_monthly").await;
    let starter = price(&sim, "starter_monthly").await;
    let session = session(
        &sim,
        &cus,
        confirm_flow(
            &sub,
            &starter,
            after(
                CreateBillingPortalSessionFlowDataAfterCompletionType::PortalHomepage,
                None,
            ),
        ),
    )
    .await
    .expect("portal session");
    let browser = browser();
    let (action, _) = confirmation_page(&sim, &browser, &session).await;
    let done = browser
        .post(&action)
        .form(&[("price", starter.as_str())])
        .send()
        .await
        .expect("confirm");
    assert!(location(&done).ends_with("?notice=update_scheduled"));
    let kept = browser
        .post(format!(
            "{}/subscriptions/{}/schedule/release",
            session.url, sub.id
        ))
        .send()
        .await
        .expect("keep");
    assert_eq!(kept.status(), 303);
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert!(s.schedule.is_none());
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(32 * DAY))
        .await
        .expect("advance");
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(
        s.items.data[0].price.lookup_key.as_deref(),
        Some("team_monthly")
    );
    let released = events_of(&sim, "subscription_schedule.released").await;
    assert_eq!(released.len(), 1);
    crate::webhooks::assert_typed(&released[0].to_string());
}

#[tokio::test]
async fn the_confirm_flow_is_validated_like_stripe() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let (other_cus, _) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let pro = price(&sim, "pro_monthly").await;
    let team = price(&sim, "team_monthly").await;
    let home = || {
        after(
            CreateBillingPortalSessionFlowDataAfterCompletionType::PortalHomepage,
            None,
        )
    };
    let expect_400 = |result: Result<stripe_billing::BillingPortalSession, StripeError>,
                      param: &str| match result {
        Err(StripeError::Stripe(e, 400)) => {
            assert_eq!(e.param.as_deref(), Some(param), "{e:?}");
            assert!(e.message.as_deref().is_some_and(|m| !m.is_empty()));
            assert_eq!(e.type_.as_str(), "invalid_request_error");
        }
        other => panic!("expected a 400 naming {param}, got {other:?}"),
    };

    // Another customer's subscription.
    expect_400(
        session(&sim, &other_cus, confirm_flow(&sub, &pro, home())).await,
        "flow_data[subscription_update_confirm][subscription]",
    );

    // A price the configuration does not offer.
    configure(
        &sim,
        &format!(
            "features[subscription_update][products][0][product]=prod_starter\
             &features[subscription_update][products][0][prices][0]={}\
             &features[subscription_update][products][1][product]=prod_pro\
             &features[subscription_update][products][1][prices][0]={pro}",
            sub.items.data[0].price.id
        ),
    )
    .await;
    expect_400(
        session(&sim, &cus, confirm_flow(&sub, &team, home())).await,
        "flow_data[subscription_update_confirm][items][0][price]",
    );

    // An archived price, even one the configuration lists.
    let (status, archived) = post_form(&sim, &format!("/v1/prices/{pro}"), "active=false").await;
    assert_eq!(
        (status, archived["active"].clone()),
        (200, serde_json::json!(false))
    );
    let updated = events_of(&sim, "price.updated").await;
    crate::webhooks::assert_typed(&updated[0].to_string());
    expect_400(
        session(&sim, &cus, confirm_flow(&sub, &pro, home())).await,
        "flow_data[subscription_update_confirm][items][0][price]",
    );

    // An item that is not on the subscription; the price it is already on.
    let mut foreign = confirm_flow(&sub, &team, home());
    if let Some(c) = foreign.subscription_update_confirm.as_mut() {
        c.items[0].id = "si_nothere".into();
    }
    expect_400(
        session(&sim, &cus, foreign).await,
        "flow_data[subscription_update_confirm][items][0][id]",
    );
    let same = sub.items.data[0].price.id.to_string();
    expect_400(
        session(&sim, &cus, confirm_flow(&sub, &same, home())).await,
        "flow_data[subscription_update_confirm][items][0][price]",
    );

    // A price that does not exist is a 404 naming the parameter.
    match session(&sim, &cus, confirm_flow(&sub, "price_nothing", home())).await {
        Err(StripeError::Stripe(e, 404)) => assert_eq!(
            e.param.as_deref(),
            Some("flow_data[subscription_update_confirm][items][0][price]")
        ),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn previews_a_renewal_an_interval_change_and_refuses_what_it_cannot() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(10 * DAY))
        .await
        .expect("advance");
    let renewal = CreatePreviewInvoice::new()
        .customer(&cus)
        .send(&sim.client)
        .await
        .expect("preview the renewal");
    assert_eq!((renewal.amount_due, renewal.total), (900, 900));
    assert_eq!(proration_sum(&renewal), 0);
    assert_eq!(
        renewal.next_payment_attempt,
        Some(sub.items.data[0].current_period_end)
    );
    assert_eq!(
        renewal.billing_reason.as_ref().map(|r| r.as_str()),
        Some("upcoming")
    );

    // Monthly to yearly: a new period starts now, billed at once, less the unused month.
    let yearly = price(&sim, "starter_yearly").await;
    let (start, end) = (
        sub.items.data[0].current_period_start,
        sub.items.data[0].current_period_end,
    );
    let at = start + 10 * 86_400;
    let previewed = preview(
        &sim,
        &cus,
        &sub,
        &yearly,
        at,
        CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::CreateProrations,
    )
    .await;
    let credit = -prorated(900, end - at, end - start);
    assert_eq!(proration_sum(&previewed), credit);
    assert_eq!(previewed.amount_due, 9000 + credit);
    assert_eq!(previewed.lines.data.len(), 2);

    // A proration date outside the period, and a change it does not model, are 400s.
    let (status, body) = post_form(
        &sim,
        "/v1/invoices/create_preview",
        &format!(
            "subscription={}&subscription_details[items][0][id]={}&subscription_details[items][0][price]={yearly}&subscription_details[proration_date]={}",
            sub.id, sub.items.data[0].id, end + 86_400
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["param"],
        "subscription_details[proration_date]"
    );
    let (status, body) = post_form(
        &sim,
        "/v1/invoices/create_preview",
        &format!(
            "subscription={}&subscription_details[cancel_now]=true",
            sub.id
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        post_form(&sim, "/v1/invoices/create_preview", "customer=cus_nobody").await;
    assert_eq!(
        (status, body["error"]["param"].clone()),
        (404, serde_json::json!("customer"))
    );
    let lonely = customer(&sim, "nothing@example.com").await;
    let (status, body) = post_form(
        &sim,
        "/v1/invoices/create_preview",
        &format!("customer={lonely}"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, serde_json::json!("invoice_upcoming_none"))
    );
}

#[tokio::test]
async fn the_portals_plan_list_follows_the_same_rules() {
    let sim = start().await;
    configure(
        &sim,
        "features[subscription_update][schedule_at_period_end][conditions][0][type]=decreasing_item_amount",
    )
    .await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(5 * DAY))
        .await
        .expect("advance");
    let plain = CreateBillingPortalSession::new()
        .customer(&cus)
        .return_url("https://app.example/billing")
        .send(&sim.client)
        .await
        .expect("portal session");
    let browser = browser();
    let list = format!("{}/subscriptions/{}/update", plain.url, sub.id);
    let team = price(&sim, "team_monthly").await;
    let chosen = browser
        .post(&list)
        .form(&[("price", team.as_str())])
        .send()
        .await
        .expect("choose");
    assert_eq!(chosen.status(), 303);
    let confirm_url = absolute(&sim, &location(&chosen));
    let html = browser
        .get(&confirm_url)
        .send()
        .await
        .expect("confirm page")
        .text()
        .await
        .expect("html");
    let shown = amount(&html, "proration-total");
    let proration_date = hidden(&html, "proration_date");
    assert!(html.contains("Choose another plan"));
    let done = browser
        .post(confirm_url.split('?').next().unwrap_or_default())
        .form(&[
            ("price", team.as_str()),
            ("proration_date", proration_date.as_str()),
        ])
        .send()
        .await
        .expect("confirm");
    assert!(location(&done).ends_with("?notice=update"));
    // create_prorations: the prorations wait on the next invoice, as the page said.
    let (status, upcoming) = post_form(
        &sim,
        "/v1/invoices/create_preview",
        &format!("subscription={}", sub.id),
    )
    .await;
    assert_eq!(status, 200, "{upcoming}");
    let upcoming: stripe_shared::Invoice =
        miniserde::json::from_str(&upcoming.to_string()).expect("an Invoice");
    assert_eq!(proration_sum(&upcoming), shown);
    assert_eq!(upcoming.amount_due, 9900 + shown);
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(s.items.data[0].price.id.as_str(), team);

    // Back down to Starter from the list: it waits for the period's end.
    let starter = price(&sim, "starter_monthly").await;
    let chosen = browser
        .post(&list)
        .form(&[("price", starter.as_str())])
        .send()
        .await
        .expect("choose");
    let confirm_url = absolute(&sim, &location(&chosen));
    let html = browser
        .get(&confirm_url)
        .send()
        .await
        .expect("confirm page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Your plan changes to Starter on"));
    let done = browser
        .post(confirm_url.split('?').next().unwrap_or_default())
        .form(&[("price", starter.as_str())])
        .send()
        .await
        .expect("confirm");
    assert!(location(&done).ends_with("?notice=update_scheduled"));
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(s.items.data[0].price.id.as_str(), team);
    assert!(s.schedule.is_some());
}

/// A seat count changed through the API is prorated to the second under each
/// `proration_behavior`: `always_invoice` charges the difference today, `create_prorations`
/// puts it on the next invoice, `none` charges nothing until the renewal bills the new count.
#[tokio::test]
async fn a_seat_count_change_is_prorated_to_the_second_under_each_behavior() {
    let sim = start().await;
    for behavior in ["always_invoice", "create_prorations", "none"] {
        let (cus, sub) = subscribed(&sim, "pm_card_visa", "team_monthly").await;
        sim.sim
            .advance_customer_clock(&cus, Duration::from_secs(10 * DAY))
            .await
            .expect("advance");
        let item = &sub.items.data[0];
        let (start, end) = (item.current_period_start, item.current_period_end);
        let at = start + 10 * 86_400;
        let (status, updated) = post_form(
            &sim,
            &format!("/v1/subscriptions/{}", sub.id),
            &format!(
                "items[0][id]={}&items[0][quantity]=3&proration_behavior={behavior}&proration_date={at}",
                item.id
            ),
        )
        .await;
        assert_eq!(status, 200, "{behavior}: {updated}");
        assert_eq!(updated["items"]["data"][0]["quantity"], 3, "{behavior}");
        let (left, length) = (end - at, end - start);
        let difference = prorated(3 * 9900, left, length) - prorated(9900, left, length);
        assert!(
            difference > 0 && difference < 2 * 9900,
            "{behavior}: {difference}"
        );
        let invoices = ListInvoice::new()
            .subscription(sub.id.as_str())
            .send(&sim.client)
            .await
            .expect("invoices");
        let (status, upcoming) = post_form(
            &sim,
            "/v1/invoices/create_preview",
            &format!("subscription={}", sub.id),
        )
        .await;
        assert_eq!(status, 200, "{upcoming}");
        let upcoming: stripe_shared::Invoice =
            miniserde::json::from_str(&upcoming.to_string()).expect("an Invoice");
        match behavior {
            "always_invoice" => {
                assert_eq!(
                    invoices.data.len(),
                    2,
                    "the first invoice and the proration's"
                );
                let charged = &invoices.data[0];
                assert_eq!(proration_sum(charged), difference);
                assert_eq!(charged.amount_paid, difference, "charged today");
                assert_eq!(charged.status, Some(InvoiceStatus::Paid));
                let quantities: Vec<u64> = charged
                    .lines
                    .data
                    .iter()
                    .filter_map(|l| l.quantity)
                    .collect();
                assert_eq!(quantities, vec![1, 3], "unused 1 seat, remaining 3 seats");
                assert_eq!(upcoming.amount_due, 3 * 9900);
            }
            "create_prorations" => {
                assert_eq!(invoices.data.len(), 1, "nothing is charged today");
                assert_eq!(proration_sum(&upcoming), difference);
                assert_eq!(upcoming.amount_due, 3 * 9900 + difference);
            }
            _ => {
                assert_eq!(invoices.data.len(), 1);
                assert_eq!(proration_sum(&upcoming), 0);
                assert_eq!(
                    upcoming.amount_due,
                    3 * 9900,
                    "the renewal bills three seats"
                );
            }
        }
    }
}

/// The portal's seat step: within the configuration's `adjustable_quantity` for a per-seat
/// product, refused beyond it, and charged as the configuration's proration behavior says.
#[tokio::test]
async fn the_portal_lets_a_customer_choose_seats_within_the_bounds() {
    let sim = start().await;
    configure(
        &sim,
        "features[subscription_update][proration_behavior]=always_invoice",
    )
    .await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "team_monthly").await;
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(10 * DAY))
        .await
        .expect("advance");
    let plain = CreateBillingPortalSession::new()
        .customer(&cus)
        .return_url("https://app.example/billing")
        .send(&sim.client)
        .await
        .expect("portal session");
    let browser = browser();
    let list = format!("{}/subscriptions/{}/update", plain.url, sub.id);
    let html = browser
        .get(&list)
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains(r#"name="quantity" inputmode="numeric" min="1" max="50" value="1""#),
        "the seat step, within Team's bounds: {html}"
    );
    let team = price(&sim, "team_monthly").await;
    let choose = |quantity: &'static str| {
        browser
            .post(&list)
            .form(&[("price", team.as_str()), ("quantity", quantity)])
            .send()
    };
    // Beyond the maximum: the confirmation refuses it and shows the list again.
    let beyond = choose("51").await.expect("choose");
    let url = absolute(&sim, &location(&beyond));
    let html = browser
        .get(&url)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Choose between 1 and 50 seats."), "{html}");
    // Not a number: said on the list.
    let html = choose("many")
        .await
        .expect("choose")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Enter the number of seats."), "{html}");

    let chosen = choose("4").await.expect("choose");
    let confirm_url = absolute(&sim, &location(&chosen));
    let html = browser
        .get(&confirm_url)
        .send()
        .await
        .expect("confirm")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains(r#"<span id="new-quantity">4</span>"#),
        "{html}"
    );
    let shown = amount(&html, "proration-total");
    let at: i64 = hidden(&html, "proration_date").parse().expect("date");
    let item = &sub.items.data[0];
    let (left, length) = (
        item.current_period_end - at,
        item.current_period_end - item.current_period_start,
    );
    assert_eq!(
        shown,
        prorated(4 * 9900, left, length) - prorated(9900, left, length)
    );
    let done = browser
        .post(confirm_url.split('?').next().unwrap_or_default())
        .form(&[
            ("price", team.as_str()),
            ("quantity", "4"),
            ("proration_date", &at.to_string()),
        ])
        .send()
        .await
        .expect("confirm");
    assert!(
        location(&done).ends_with("?notice=update"),
        "{}",
        location(&done)
    );
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(s.items.data[0].quantity, Some(4));
    let invoices = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    assert_eq!(
        proration_sum(&invoices.data[0]),
        shown,
        "charged what it showed"
    );

    // A product whose quantity is not adjustable has no seat step, and a forged one is refused.
    let starter = price(&sim, "starter_monthly").await;
    let forged = browser
        .post(&list)
        .form(&[("price", starter.as_str()), ("quantity", "7")])
        .send()
        .await
        .expect("choose");
    let url = absolute(&sim, &location(&forged));
    let html = browser
        .get(&url)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("This plan&#39;s quantity cannot be changed here.")
            || html.contains("This plan's quantity cannot be changed here."),
        "{html}"
    );
}
