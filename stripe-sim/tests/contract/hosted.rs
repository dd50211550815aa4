//! The hosted pages, driven as a browser would: plain GETs and form POSTs.

use std::collections::HashMap;

use stripe_billing::{billing_portal_session::*, subscription::RetrieveSubscription};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, RetrieveCheckoutSession,
};
use stripe_core::customer::{ListCustomer, RetrieveCustomer, RetrieveCustomerReturned};
use stripe_shared::{InvoiceStatus, SubscriptionStatus};

use crate::helpers::*;

async fn checkout(
    sim: &Sim,
    lookup_key: &str,
    customer: Option<&str>,
) -> stripe_shared::CheckoutSession {
    let mut line = CreateCheckoutSessionLineItems::new();
    line.price = Some(price(sim, lookup_key).await);
    line.quantity = Some(1);
    let mut req = CreateCheckoutSession::new()
        .mode(stripe_checkout::CheckoutSessionMode::Subscription)
        .line_items(vec![line])
        .client_reference_id("user-7")
        .success_url("https://app.example/billing?session_id={CHECKOUT_SESSION_ID}")
        .cancel_url("https://app.example/billing?canceled=1");
    if let Some(c) = customer {
        req = req.customer(c);
    }
    req.send(&sim.client).await.expect("checkout session")
}

fn card_form(number: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("email", "buyer@example.com".to_string()),
        ("card_number", number.to_string()),
        ("card_expiry", "12 / 34".to_string()),
        ("card_cvc", "123".to_string()),
        ("cardholder_name", "Grace Hopper".to_string()),
    ])
}

#[tokio::test]
async fn checkout_with_a_good_card_subscribes_and_redirects() {
    let sim = start().await;
    let cs = checkout(&sim, "starter_monthly", None).await;
    let url = cs.url.clone().expect("url");
    let browser = browser();
    let page = browser.get(&url).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    for label in [
        "Starter",
        "$9.00 per month",
        r#"for="card_number""#,
        r#"for="card_expiry""#,
        r#"for="card_cvc""#,
        r#"for="cardholder_name""#,
        r#"for="email""#,
        "Cancel and return",
        "https://app.example/billing?canceled=1",
    ] {
        assert!(html.contains(label), "the checkout page lacks {label}");
    }

    let paid = browser
        .post(&url)
        .form(&card_form("4242 4242 4242 4242"))
        .send()
        .await
        .expect("pay");
    assert_eq!(paid.status(), 303);
    assert_eq!(
        location(&paid),
        format!("https://app.example/billing?session_id={}", cs.id)
    );

    let done = RetrieveCheckoutSession::new(cs.id.clone())
        .send(&sim.client)
        .await
        .expect("retrieve");
    assert_eq!(
        done.status,
        Some(stripe_checkout::CheckoutSessionStatus::Complete)
    );
    assert_eq!(done.payment_status.as_str(), "paid");
    let sub_id = done
        .subscription
        .as_ref()
        .map(|s| s.id().clone())
        .expect("subscription");
    let sub = RetrieveSubscription::new(sub_id)
        .expand(vec!["latest_invoice".into()])
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(sub.status, SubscriptionStatus::Active);
    let invoice = sub
        .latest_invoice
        .as_ref()
        .and_then(|i| i.as_object())
        .expect("invoice");
    assert_eq!(invoice.status, Some(InvoiceStatus::Paid));
    assert_eq!(invoice.amount_paid, 900);
    let cus = done
        .customer
        .as_ref()
        .map(|c| c.id().to_string())
        .expect("customer");
    match RetrieveCustomer::new(cus.as_str())
        .send(&sim.client)
        .await
        .expect("customer")
    {
        RetrieveCustomerReturned::Customer(c) => {
            assert_eq!(c.email.as_deref(), Some("buyer@example.com"))
        }
        RetrieveCustomerReturned::DeletedCustomer(_) => panic!("deleted"),
    }
    let completed = events_of(&sim, "checkout.session.completed").await;
    assert_eq!(completed.len(), 1);
    assert_eq!(
        completed[0]["data"]["object"]["client_reference_id"],
        "user-7"
    );

    // Coming back to a completed session goes on to success_url again.
    let again = browser.get(&url).send().await.expect("again");
    assert_eq!(again.status(), 303);
}

#[tokio::test]
async fn a_declined_card_shows_the_error_and_creates_nothing() {
    let sim = start().await;
    let cs = checkout(&sim, "team_monthly", None).await;
    let url = cs.url.clone().expect("url");
    let browser = browser();
    for (number, message) in [
        ("4000000000009995", "insufficient funds"),
        ("4000000000000341", "declined"),
    ] {
        let r = browser
            .post(&url)
            .form(&card_form(number))
            .send()
            .await
            .expect("pay");
        assert_eq!(r.status(), 402, "{number}");
        let html = r.text().await.expect("html");
        assert!(html.contains(message), "{number}: {html}");
        assert!(html.contains(r#"role="alert""#));
        assert!(html.contains(number), "the form keeps what was typed");
    }
    let invalid = browser
        .post(&url)
        .form(&card_form("1234 5678"))
        .send()
        .await
        .expect("pay");
    assert_eq!(invalid.status(), 400);
    assert!(invalid.text().await.expect("html").contains("test cards"));

    assert!(ListCustomer::new()
        .send(&sim.client)
        .await
        .expect("list")
        .data
        .is_empty());
    let still = RetrieveCheckoutSession::new(cs.id.clone())
        .send(&sim.client)
        .await
        .expect("retrieve");
    assert_eq!(
        still.status,
        Some(stripe_checkout::CheckoutSessionStatus::Open)
    );
}

#[tokio::test]
async fn checkout_for_a_trial_plan_starts_trialing_with_a_zero_invoice() {
    let sim = start().await;
    let cus = customer(&sim, "known@example.com").await;
    let cs = checkout(&sim, "pro_monthly", Some(&cus)).await;
    let url = cs.url.clone().expect("url");
    let html = reqwest::get(&url)
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("14 days free"));
    assert!(
        html.contains("known@example.com"),
        "an existing customer is not asked for an email"
    );
    let mut form = card_form("4242424242424242");
    form.remove("email");
    let r = browser().post(&url).form(&form).send().await.expect("pay");
    assert_eq!(r.status(), 303);
    let done = RetrieveCheckoutSession::new(cs.id.clone())
        .send(&sim.client)
        .await
        .expect("retrieve");
    assert_eq!(
        done.customer.as_ref().map(|c| c.id().to_string()),
        Some(cus)
    );
    let sub_id = done
        .subscription
        .as_ref()
        .map(|s| s.id().clone())
        .expect("sub");
    let sub = RetrieveSubscription::new(sub_id)
        .expand(vec!["latest_invoice".into()])
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(sub.status, SubscriptionStatus::Trialing);
    let invoice = sub
        .latest_invoice
        .as_ref()
        .and_then(|i| i.as_object())
        .expect("invoice");
    assert_eq!(
        (invoice.amount_due, invoice.status.clone()),
        (0, Some(InvoiceStatus::Paid))
    );
}

async fn portal(
    sim: &Sim,
    customer: &str,
    flow: Option<CreateBillingPortalSessionFlowData>,
) -> stripe_billing::BillingPortalSession {
    let mut req = CreateBillingPortalSession::new()
        .customer(customer)
        .return_url("https://app.example/billing?from=portal");
    if let Some(f) = flow {
        req = req.flow_data(f);
    }
    req.send(&sim.client).await.expect("portal session")
}

#[tokio::test]
async fn portal_cancel_at_period_end_then_renew() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let session = portal(&sim, &cus, None).await;
    let browser = browser();
    let home = browser.get(&session.url).send().await.expect("home");
    assert_eq!(home.status(), 200);
    let html = home.text().await.expect("html");
    for text in [
        "Current plan",
        "Starter",
        "renews on",
        "Update plan",
        "Cancel plan",
        "Visa •••• 4242",
        "Invoice history",
        "Return to",
    ] {
        assert!(html.contains(text), "the portal home lacks {text}");
    }
    let cancel_url = format!("{}/subscriptions/{}/cancel", session.url, sub.id);
    let screen = browser
        .get(&cancel_url)
        .send()
        .await
        .expect("cancel screen");
    assert!(screen
        .text()
        .await
        .expect("html")
        .contains("Reason for cancelling"));
    let done = browser
        .post(&cancel_url)
        .form(&[("reason", "too_expensive")])
        .send()
        .await
        .expect("cancel");
    assert_eq!(done.status(), 303);
    assert!(location(&done).ends_with("?notice=cancel"));

    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert!(s.cancel_at_period_end);
    assert_eq!(s.status, SubscriptionStatus::Active);
    let updated = events_of(&sim, "customer.subscription.updated").await;
    let last = updated.last().expect("an update event");
    assert_eq!(last["data"]["object"]["cancel_at_period_end"], true);
    assert_eq!(
        last["data"]["previous_attributes"]["cancel_at_period_end"],
        false
    );
    assert_eq!(
        last["data"]["object"]["cancellation_details"]["feedback"],
        "too_expensive"
    );

    let home = browser
        .get(&session.url)
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("html");
    assert!(home.contains("will be canceled on") && home.contains("Renew plan"));
    let renewed = browser
        .post(format!("{}/subscriptions/{}/renew", session.url, sub.id))
        .send()
        .await
        .expect("renew");
    assert_eq!(renewed.status(), 303);
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert!(!s.cancel_at_period_end && s.cancel_at.is_none());
}

#[tokio::test]
async fn portal_payment_method_update_makes_the_card_default() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let mut flow = CreateBillingPortalSessionFlowData::new(
        CreateBillingPortalSessionFlowDataType::PaymentMethodUpdate,
    );
    let mut after = CreateBillingPortalSessionFlowDataAfterCompletion::new(
        CreateBillingPortalSessionFlowDataAfterCompletionType::HostedConfirmation,
    );
    after.hosted_confirmation = Some(
        CreateBillingPortalSessionFlowDataAfterCompletionHostedConfirmation {
            custom_message: Some("Your new card is saved.".into()),
        },
    );
    flow.after_completion = Some(after);
    let session = portal(&sim, &cus, Some(flow)).await;
    let browser = browser();
    let entry = browser.get(&session.url).send().await.expect("entry");
    assert_eq!(entry.status(), 303, "a flow opens on its own screen");
    let screen_url = absolute(&sim, &location(&entry));
    assert!(screen_url.ends_with("/payment-method"));

    let declined = browser
        .post(&screen_url)
        .form(&card_form("4000000000009995"))
        .send()
        .await
        .expect("declined");
    assert!(declined
        .text()
        .await
        .expect("html")
        .contains("insufficient funds"));
    let saved = browser
        .post(&screen_url)
        .form(&card_form("5555 5555 5555 4444"))
        .send()
        .await
        .expect("save");
    assert_eq!(saved.status(), 303);
    let confirmation = browser
        .get(absolute(&sim, &location(&saved)))
        .send()
        .await
        .expect("done");
    assert!(confirmation
        .text()
        .await
        .expect("html")
        .contains("Your new card is saved."));

    let c = match RetrieveCustomer::new(cus.as_str())
        .send(&sim.client)
        .await
        .expect("customer")
    {
        RetrieveCustomerReturned::Customer(c) => c,
        RetrieveCustomerReturned::DeletedCustomer(_) => panic!("deleted"),
    };
    let default = c
        .invoice_settings
        .and_then(|s| s.default_payment_method)
        .map(|p| p.id().to_string())
        .expect("default");
    let pm = stripe_payment::payment_method::RetrievePaymentMethod::new(default.as_str())
        .send(&sim.client)
        .await
        .expect("pm");
    assert_eq!(pm.card.map(|c| c.brand), Some("mastercard".to_string()));
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(
        s.default_payment_method.map(|p| p.id().to_string()),
        Some(default)
    );
}

#[tokio::test]
async fn portal_flows_redirect_after_completion_and_sessions_expire() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let mut item = CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirmItems::new(
        sub.items.data[0].id.as_str(),
    );
    item.price = Some(price(&sim, "team_monthly").await);
    let mut flow = CreateBillingPortalSessionFlowData::new(
        CreateBillingPortalSessionFlowDataType::SubscriptionUpdateConfirm,
    );
    flow.subscription_update_confirm = Some(
        CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirm::new(
            vec![item],
            sub.id.as_str(),
        ),
    );
    let mut after = CreateBillingPortalSessionFlowDataAfterCompletion::new(
        CreateBillingPortalSessionFlowDataAfterCompletionType::Redirect,
    );
    after.redirect = Some(
        CreateBillingPortalSessionFlowDataAfterCompletionRedirect::new(
            "https://app.example/billing?updated=1",
        ),
    );
    flow.after_completion = Some(after);
    let session = portal(&sim, &cus, Some(flow)).await;
    let browser = browser();
    let entry = browser.get(&session.url).send().await.expect("entry");
    let confirm_url = absolute(&sim, &location(&entry));
    assert!(confirm_url.contains("/update/confirm?price="));
    let confirm = browser
        .get(&confirm_url)
        .send()
        .await
        .expect("confirm")
        .text()
        .await
        .expect("html");
    assert!(confirm.contains("Confirm your updated subscription") && confirm.contains("Team"));
    let team = price(&sim, "team_monthly").await;
    let post_url = confirm_url
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let done = browser
        .post(&post_url)
        .form(&[("price", team.as_str())])
        .send()
        .await
        .expect("confirm");
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "https://app.example/billing?updated=1");
    let s = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("sub");
    assert_eq!(s.items.data[0].price.id.as_str(), team);

    // The session is spent once the customer has gone back.
    let expired = browser.get(&session.url).send().await.expect("expired");
    assert_eq!(expired.status(), 410);
    assert!(expired.text().await.expect("html").contains("expired"));

    // A plain session: the way back marks it spent too.
    let plain = portal(&sim, &cus, None).await;
    let back = browser
        .get(format!("{}/return", plain.url))
        .send()
        .await
        .expect("return");
    assert_eq!(location(&back), "https://app.example/billing?from=portal");
    assert_eq!(
        browser
            .get(&plain.url)
            .send()
            .await
            .expect("again")
            .status(),
        410
    );
}

#[tokio::test]
async fn portal_billing_details_update_the_customer() {
    let sim = start().await;
    let (cus, _) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let session = portal(&sim, &cus, None).await;
    let url = format!("{}/billing-details", session.url);
    let browser = browser();
    let form = browser
        .get(&url)
        .send()
        .await
        .expect("form")
        .text()
        .await
        .expect("html");
    for label in [
        "Name",
        "Email",
        "Address line 1",
        "City",
        "Postal code",
        "Country",
    ] {
        assert!(form.contains(&format!(">{label}")), "no {label} field");
    }
    let saved = browser
        .post(&url)
        .form(&[
            ("name", "Grace Hopper"),
            ("email", "grace@example.com"),
            ("line1", "1 Navy Way"),
            ("city", "Arlington"),
            ("postal_code", "22202"),
            ("state", "VA"),
            ("country", "us"),
        ])
        .send()
        .await
        .expect("save");
    assert_eq!(saved.status(), 303);
    let c = match RetrieveCustomer::new(cus.as_str())
        .send(&sim.client)
        .await
        .expect("customer")
    {
        RetrieveCustomerReturned::Customer(c) => c,
        RetrieveCustomerReturned::DeletedCustomer(_) => panic!("deleted"),
    };
    assert_eq!(c.name.as_deref(), Some("Grace Hopper"));
    assert_eq!(c.email.as_deref(), Some("grace@example.com"));
    let address = c.address.expect("address");
    assert_eq!(
        (address.city.as_deref(), address.country.as_deref()),
        (Some("Arlington"), Some("US"))
    );
    let updated = events_of(&sim, "customer.updated").await;
    assert_eq!(
        updated
            .last()
            .map(|e| e["data"]["previous_attributes"]["email"].clone()),
        Some(serde_json::json!("subscriber@example.com"))
    );
}
