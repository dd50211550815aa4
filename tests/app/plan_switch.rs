//! Switching plans from the page's plan card: Stripe's confirmation shows the proration the API
//! previews, confirming comes back to the page on the new plan, and a downgrade waits for the
//! period's end while the page says when.

use crate::support::{
    app::{Backend, TestApp},
    billing::{call, monthly_price, page_saying, sign_up_with_customer, subscribe_in_stripe},
    portal_confirm::{
        attr_after, configure_default_portal, downgrades_at_period_end, Confirmation,
    },
};

/// Starter → Pro from the page's plan card: Stripe's confirmation shows the prorated amount,
/// which equals `create_preview`'s for the same change at the same second; confirming comes
/// back to the page on Pro, with the proration's invoice listed. A price the picker does not
/// show is a 400, and the subscription is always the user's own.
async fn switching_plans_from_the_card_confirms_in_stripe(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    // Prorations invoiced at once, so the switch leaves an invoice to see.
    configure_default_portal(
        &app,
        "features[subscription_update][proration_behavior]",
        "always_invoice",
    )
    .await;
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
    let rest = billfold::stripe_api::raw::Rest::new(&app.state.config).expect("rest");
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
    let mut back = crate::support::app::location(&done);
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
        back = crate::support::app::location(&next);
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

/// Pro → Starter with downgrades at the period's end: the page says Pro now and "Switches to
/// Starter on <date>", and once the test clock passes that date, Starter.
async fn a_downgrade_waits_for_the_period_end_and_the_page_says_when(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    downgrades_at_period_end(&app).await;
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

crate::support::on_both_databases!(
    switching_plans_from_the_card_confirms_in_stripe,
    a_downgrade_waits_for_the_period_end_and_the_page_says_when,
);
