//! Every resource the double serves, through async-stripe's request builders.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use stripe_billing::{
    billing_portal_configuration::ListBillingPortalConfiguration,
    billing_portal_session::*,
    invoice::{ListInvoice, RetrieveInvoice},
    subscription::*,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
    RetrieveCheckoutSession,
};
use stripe_core::customer::*;
use stripe_payment::payment_method::{
    AttachPaymentMethod, DetachPaymentMethod, ListPaymentMethod, ListPaymentMethodType,
};
use stripe_product::{
    price::{ListPrice, RetrievePrice},
    product::{ListProduct, RetrieveProduct},
};
use stripe_shared::{InvoiceStatus, SubscriptionStatus};
use stripe_types::Expandable;

use crate::helpers::*;

#[tokio::test]
async fn customers_create_retrieve_update_list_delete() {
    let sim = start().await;
    let created = CreateCustomer::new()
        .email("ada@example.com")
        .name("Ada Lovelace")
        .metadata(HashMap::from([("user_id".to_string(), "42".to_string())]))
        .send(&sim.client)
        .await
        .expect("create");
    assert!(created.id.as_str().starts_with("cus_"));
    assert!(!created.livemode);
    assert_eq!(
        created
            .metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .map(String::as_str),
        Some("42")
    );

    let updated = UpdateCustomer::new(created.id.clone())
        .name("Ada King")
        .send(&sim.client)
        .await
        .expect("update");
    assert_eq!(updated.name.as_deref(), Some("Ada King"));
    assert_eq!(updated.email.as_deref(), Some("ada@example.com"));

    customer(&sim, "someone-else@example.com").await;
    let found = ListCustomer::new()
        .email("ada@example.com")
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(found.data.len(), 1);
    assert_eq!(found.data[0].id, created.id);
    assert_eq!(found.url, "/v1/customers");

    match RetrieveCustomer::new(created.id.clone())
        .send(&sim.client)
        .await
        .expect("retrieve")
    {
        RetrieveCustomerReturned::Customer(c) => assert_eq!(c.name.as_deref(), Some("Ada King")),
        RetrieveCustomerReturned::DeletedCustomer(_) => panic!("not deleted yet"),
    }
    let deleted = DeleteCustomer::new(created.id.clone())
        .send(&sim.client)
        .await
        .expect("delete");
    assert_eq!(deleted.id, created.id);
    assert!(matches!(
        RetrieveCustomer::new(created.id.clone())
            .send(&sim.client)
            .await
            .expect("retrieve"),
        RetrieveCustomerReturned::DeletedCustomer(_)
    ));
    let found = ListCustomer::new()
        .email("ada@example.com")
        .send(&sim.client)
        .await
        .expect("list");
    assert!(found.data.is_empty());
}

#[tokio::test]
async fn lists_paginate_with_starting_after() {
    let sim = start().await;
    for i in 0..5 {
        customer(&sim, &format!("page{i}@example.com")).await;
    }
    let first = ListCustomer::new()
        .limit(2)
        .send(&sim.client)
        .await
        .expect("page");
    assert_eq!(first.data.len(), 2);
    assert!(first.has_more);
    // Newest first, as Stripe lists.
    assert_eq!(first.data[0].email.as_deref(), Some("page4@example.com"));
    let all: Vec<stripe_shared::Customer> = ListCustomer::new()
        .limit(2)
        .paginate()
        .stream(&sim.client)
        .try_collect()
        .await
        .expect("paginate");
    assert_eq!(all.len(), 5);
}

#[tokio::test]
async fn the_catalogue_is_seeded() {
    let sim = start().await;
    let products = ListProduct::new()
        .active(true)
        .send(&sim.client)
        .await
        .expect("products");
    let mut names: Vec<_> = products.data.iter().map(|p| p.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["Pro", "Starter", "Team"]);
    let pro = RetrieveProduct::new("prod_pro")
        .send(&sim.client)
        .await
        .expect("product");
    assert_eq!(pro.name, "Pro");

    let pro_prices = ListPrice::new()
        .product("prod_pro")
        .active(true)
        .send(&sim.client)
        .await
        .expect("prices");
    assert_eq!(pro_prices.data.len(), 2);
    let monthly = RetrievePrice::new(price(&sim, "pro_monthly").await)
        .send(&sim.client)
        .await
        .expect("price");
    assert_eq!(monthly.unit_amount, Some(2900));
    let recurring = monthly.recurring.expect("recurring");
    assert_eq!(recurring.interval.as_str(), "month");
    assert_eq!(recurring.trial_period_days, Some(14));
    let yearly = RetrievePrice::new(price(&sim, "team_yearly").await)
        .send(&sim.client)
        .await
        .expect("price");
    assert_eq!(
        yearly
            .recurring
            .map(|r| r.interval.as_str().to_string())
            .as_deref(),
        Some("year")
    );
    assert_eq!(
        ListPrice::new()
            .send(&sim.client)
            .await
            .expect("all")
            .data
            .len(),
        6
    );
}

#[tokio::test]
async fn payment_methods_attach_list_detach() {
    let sim = start().await;
    let cus = customer(&sim, "pm@example.com").await;
    let pm = AttachPaymentMethod::new("pm_card_visa")
        .customer(&cus)
        .send(&sim.client)
        .await
        .expect("attach");
    assert!(pm.id.as_str().starts_with("pm_") && pm.id.as_str() != "pm_card_visa");
    let card = pm.card.clone().expect("card");
    assert_eq!((card.brand.as_str(), card.last4.as_str()), ("visa", "4242"));
    let failing = attach(&sim, "pm_card_chargeCustomerFail", &cus).await;

    let listed = ListPaymentMethod::new()
        .customer(&cus)
        .type_(ListPaymentMethodType::Card)
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(listed.data.len(), 2);
    let via_customer = ListPaymentMethodsCustomer::new(cus.clone())
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(via_customer.data.len(), 2);

    let detached = DetachPaymentMethod::new(failing.as_str())
        .send(&sim.client)
        .await
        .expect("detach");
    assert!(detached.customer.is_none());
    let listed = ListPaymentMethodsCustomer::new(cus.clone())
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(listed.data.len(), 1);

    let declined = AttachPaymentMethod::new("pm_card_chargeDeclinedInsufficientFunds")
        .customer(&cus)
        .send(&sim.client)
        .await;
    match declined {
        Err(stripe::StripeError::Stripe(e, 402)) => {
            assert_eq!(e.type_.as_str(), "card_error");
            assert_eq!(e.decline_code.as_deref(), Some("insufficient_funds"));
        }
        other => panic!("expected a 402 card error, got {other:?}"),
    }
}

#[tokio::test]
async fn subscriptions_create_update_cancel_and_list() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    assert!(sub.id.as_str().starts_with("sub_"));
    assert_eq!(sub.status, SubscriptionStatus::Active);
    let item = &sub.items.data[0];
    assert!(item.id.as_str().starts_with("si_"));
    assert!(item.current_period_end > item.current_period_start);
    assert_eq!(item.price.unit_amount, Some(900));

    // Schedule and remove a cancellation.
    let s = UpdateSubscription::new(sub.id.clone())
        .cancel_at_period_end(true)
        .send(&sim.client)
        .await
        .expect("cancel at end");
    assert!(s.cancel_at_period_end);
    assert_eq!(s.cancel_at, Some(item.current_period_end));
    let s = UpdateSubscription::new(sub.id.clone())
        .cancel_at_period_end(false)
        .send(&sim.client)
        .await
        .expect("resume");
    assert!(!s.cancel_at_period_end && s.cancel_at.is_none());
    let at = item.current_period_end - 86_400;
    let s = UpdateSubscription::new(sub.id.clone())
        .cancel_at(UpdateSubscriptionCancelAt::Timestamp(at))
        .send(&sim.client)
        .await
        .expect("cancel_at");
    assert_eq!(s.cancel_at, Some(at));

    // Switch the item's price; a new default payment method.
    let mut switch = UpdateSubscriptionItems::new();
    switch.id = Some(item.id.to_string());
    switch.price = Some(price(&sim, "pro_monthly").await);
    let pm2 = attach(&sim, "pm_card_mastercard", &cus).await;
    let s = UpdateSubscription::new(sub.id.clone())
        .items(vec![switch])
        .default_payment_method(&pm2)
        .send(&sim.client)
        .await
        .expect("switch");
    assert_eq!(s.items.data[0].price.unit_amount, Some(2900));
    assert_eq!(s.items.data[0].id, item.id);
    assert_eq!(
        s.default_payment_method
            .as_ref()
            .map(|p| p.id().to_string()),
        Some(pm2.clone())
    );

    let listed = ListSubscription::new()
        .customer(&cus)
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(listed.data.len(), 1);

    let canceled = CancelSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("cancel");
    assert_eq!(canceled.status, SubscriptionStatus::Canceled);
    assert!(canceled.ended_at.is_some());
    let open = ListSubscription::new()
        .customer(&cus)
        .send(&sim.client)
        .await
        .expect("list");
    assert!(
        open.data.is_empty(),
        "canceled subscriptions are not listed by default"
    );
    let all = ListSubscription::new()
        .customer(&cus)
        .status(ListSubscriptionStatus::All)
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(all.data.len(), 1);
    let retrieved = RetrieveSubscription::new(sub.id.clone())
        .send(&sim.client)
        .await
        .expect("retrieve");
    assert_eq!(retrieved.status, SubscriptionStatus::Canceled);
}

#[tokio::test]
async fn trials_and_expanding_the_latest_invoice() {
    let sim = start().await;
    let cus = customer(&sim, "trial@example.com").await;
    let pm = attach(&sim, "pm_card_visa", &cus).await;
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(price(&sim, "starter_monthly").await);
    let sub = CreateSubscription::new()
        .customer(&cus)
        .items(vec![item])
        .default_payment_method(&pm)
        .trial_period_days(7u32)
        .send(&sim.client)
        .await
        .expect("create");
    assert_eq!(sub.status, SubscriptionStatus::Trialing);
    assert!(sub
        .trial_end
        .is_some_and(|end| end - sub.start_date == 7 * 86_400));

    let expanded = RetrieveSubscription::new(sub.id.clone())
        .expand(vec!["latest_invoice".to_string()])
        .send(&sim.client)
        .await
        .expect("retrieve");
    let invoice = expanded
        .latest_invoice
        .as_ref()
        .and_then(Expandable::as_object)
        .expect("expanded invoice");
    assert_eq!(invoice.amount_due, 0);
    assert_eq!(invoice.status, Some(InvoiceStatus::Paid));
}

#[tokio::test]
async fn invoices_list_retrieve_and_hosted_page() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "team_monthly").await;
    let (_, failing_sub) = subscribed(&sim, "pm_card_chargeCustomerFail", "starter_monthly").await;
    assert_eq!(failing_sub.status, SubscriptionStatus::Incomplete);

    let by_customer = ListInvoice::new()
        .customer(&cus)
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(by_customer.data.len(), 1);
    let by_sub = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("list");
    let inv = &by_sub.data[0];
    assert_eq!(inv.status, Some(InvoiceStatus::Paid));
    assert_eq!((inv.amount_due, inv.amount_paid), (9900, 9900));
    let open = ListInvoice::new()
        .status(InvoiceStatus::Open)
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(open.data.len(), 1);
    assert_eq!(open.data[0].attempt_count, 1);

    let id = inv.id.clone().expect("id");
    let retrieved = RetrieveInvoice::new(id.clone())
        .send(&sim.client)
        .await
        .expect("retrieve");
    let url = retrieved.hosted_invoice_url.expect("hosted url");
    assert!(url.starts_with(&sim.base));
    let page = reqwest::get(&url).await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("$99.00"));
}

#[tokio::test]
async fn checkout_sessions_create_and_retrieve() {
    let sim = start().await;
    let cus = customer(&sim, "checkout@example.com").await;
    let mut line = CreateCheckoutSessionLineItems::new();
    line.price = Some(price(&sim, "pro_monthly").await);
    line.quantity = Some(1);
    let mut data = CreateCheckoutSessionSubscriptionData::new();
    data.trial_period_days = Some(30);
    let cs = CreateCheckoutSession::new()
        .mode(stripe_checkout::CheckoutSessionMode::Subscription)
        .customer(&cus)
        .client_reference_id("user-42")
        .line_items(vec![line])
        .subscription_data(data)
        .metadata(HashMap::from([("plan".to_string(), "pro".to_string())]))
        .success_url("https://app.example/billing?session_id={CHECKOUT_SESSION_ID}")
        .cancel_url("https://app.example/billing")
        .send(&sim.client)
        .await
        .expect("create");
    assert!(cs.id.as_str().starts_with("cs_test_"));
    assert!(cs
        .url
        .as_deref()
        .is_some_and(|u| u.starts_with(&format!("{}/checkout/", sim.base))));
    assert_eq!(cs.client_reference_id.as_deref(), Some("user-42"));
    let again = RetrieveCheckoutSession::new(cs.id.clone())
        .expand(vec!["line_items".to_string()])
        .send(&sim.client)
        .await
        .expect("retrieve");
    assert_eq!(
        again.status,
        Some(stripe_checkout::CheckoutSessionStatus::Open)
    );
    assert_eq!(again.line_items.map(|l| l.data.len()), Some(1));
}

#[tokio::test]
async fn portal_configuration_and_every_flow_type() {
    let sim = start().await;
    let configs = ListBillingPortalConfiguration::new()
        .is_default(true)
        .send(&sim.client)
        .await
        .expect("configs");
    let config = &configs.data[0];
    assert!(config.features.subscription_update.enabled);
    assert!(config.features.subscription_cancel.enabled);
    assert!(config.features.payment_method_update.enabled);
    assert!(config.features.invoice_history.enabled);
    assert!(config.features.customer_update.enabled);
    assert_eq!(
        config
            .features
            .subscription_update
            .products
            .as_ref()
            .map(Vec::len),
        Some(3)
    );

    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let plain = CreateBillingPortalSession::new()
        .customer(&cus)
        .return_url("https://app.example/billing?from=portal")
        .configuration(config.id.as_str())
        .locale(stripe_billing::BillingPortalSessionLocale::En)
        .send(&sim.client)
        .await
        .expect("portal session");
    assert!(plain.id.as_str().starts_with("bps_"));
    assert!(plain.url.starts_with(&format!("{}/portal/", sim.base)));
    assert!(plain.flow.is_none());

    let redirect = |url: &str| {
        let mut after = CreateBillingPortalSessionFlowDataAfterCompletion::new(
            CreateBillingPortalSessionFlowDataAfterCompletionType::Redirect,
        );
        after.redirect = Some(CreateBillingPortalSessionFlowDataAfterCompletionRedirect::new(url));
        after
    };
    let mut pm_flow = CreateBillingPortalSessionFlowData::new(
        CreateBillingPortalSessionFlowDataType::PaymentMethodUpdate,
    );
    let mut hosted = CreateBillingPortalSessionFlowDataAfterCompletion::new(
        CreateBillingPortalSessionFlowDataAfterCompletionType::HostedConfirmation,
    );
    hosted.hosted_confirmation = Some(
        CreateBillingPortalSessionFlowDataAfterCompletionHostedConfirmation {
            custom_message: Some("Card saved".into()),
        },
    );
    pm_flow.after_completion = Some(hosted);
    let mut cancel_flow = CreateBillingPortalSessionFlowData::new(
        CreateBillingPortalSessionFlowDataType::SubscriptionCancel,
    );
    cancel_flow.subscription_cancel = Some(
        CreateBillingPortalSessionFlowDataSubscriptionCancel::new(sub.id.as_str()),
    );
    cancel_flow.after_completion = Some(redirect("https://app.example/billing?canceled=1"));
    let mut update_flow = CreateBillingPortalSessionFlowData::new(
        CreateBillingPortalSessionFlowDataType::SubscriptionUpdate,
    );
    update_flow.subscription_update = Some(
        CreateBillingPortalSessionFlowDataSubscriptionUpdate::new(sub.id.as_str()),
    );
    let mut item = CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirmItems::new(
        sub.items.data[0].id.as_str(),
    );
    item.price = Some(price(&sim, "pro_monthly").await);
    item.quantity = Some(1);
    let mut confirm_flow = CreateBillingPortalSessionFlowData::new(
        CreateBillingPortalSessionFlowDataType::SubscriptionUpdateConfirm,
    );
    confirm_flow.subscription_update_confirm = Some(
        CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirm::new(
            vec![item],
            sub.id.as_str(),
        ),
    );
    confirm_flow.after_completion = Some(redirect("https://app.example/billing?updated=1"));

    for (flow, kind) in [
        (pm_flow, "payment_method_update"),
        (cancel_flow, "subscription_cancel"),
        (update_flow, "subscription_update"),
        (confirm_flow, "subscription_update_confirm"),
    ] {
        let session = CreateBillingPortalSession::new()
            .customer(&cus)
            .return_url("https://app.example/billing")
            .flow_data(flow)
            .send(&sim.client)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        let flow = session.flow.expect("flow");
        assert_eq!(flow.type_.as_str(), kind);
    }

    let unknown = CreateBillingPortalSession::new()
        .customer("cus_nobody")
        .send(&sim.client)
        .await;
    match unknown {
        Err(stripe::StripeError::Stripe(e, 404)) => {
            assert_eq!(
                e.code.as_ref().map(|c| c.as_str()),
                Some("resource_missing")
            );
            assert_eq!(e.param.as_deref(), Some("customer"));
        }
        other => panic!("expected 404, got {other:?}"),
    }
    let mut bad_flow = CreateBillingPortalSessionFlowData::new(
        CreateBillingPortalSessionFlowDataType::SubscriptionCancel,
    );
    bad_flow.subscription_cancel = Some(CreateBillingPortalSessionFlowDataSubscriptionCancel::new(
        "sub_nothing",
    ));
    match CreateBillingPortalSession::new()
        .customer(&cus)
        .flow_data(bad_flow)
        .send(&sim.client)
        .await
    {
        Err(stripe::StripeError::Stripe(e, 404)) => {
            assert_eq!(
                e.param.as_deref(),
                Some("flow_data[subscription_cancel][subscription]")
            );
        }
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn events_retrieve_and_filter_by_type() {
    let sim = start().await;
    let cus = customer(&sim, "events@example.com").await;
    let listed = stripe_core::event::ListEvent::new()
        .type_("customer.created")
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(listed.data.len(), 1);
    let event = &listed.data[0];
    assert_eq!(event.api_version.as_deref(), Some("2026-09-30.endive"));
    let again = stripe_core::event::RetrieveEvent::new(event.id.clone())
        .send(&sim.client)
        .await
        .expect("retrieve");
    assert_eq!(again.id, event.id);
    let body = miniserde::json::to_string(&again.data.object);
    assert!(body.contains(&cus));
}

#[tokio::test]
async fn webhook_endpoints_create_and_list() {
    let sim = start().await;
    let (status, endpoint) = post_form(
        &sim,
        "/v1/webhook_endpoints",
        "url=https%3A%2F%2Fapp.example%2Fapi%2Fwebhooks%2Fstripe&enabled_events[]=customer.created&enabled_events[]=invoice.paid",
    )
    .await;
    assert_eq!(status, 200);
    assert!(endpoint["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("we_")));
    assert!(endpoint["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    assert_eq!(
        endpoint["enabled_events"],
        serde_json::json!(["customer.created", "invoice.paid"])
    );
    let id = sim
        .sim
        .add_webhook_endpoint("http://127.0.0.1:9/hook", "whsec_fixed");
    assert_eq!(
        sim.sim
            .add_webhook_endpoint("http://127.0.0.1:9/hook", "whsec_fixed"),
        id,
        "idempotent per URL"
    );
    let (_, list) = get_json(&sim, "/v1/webhook_endpoints").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    assert!(
        list["data"][0].get("secret").is_none(),
        "secrets are shown only at creation"
    );
}

#[tokio::test]
async fn works_when_mounted_under_a_path() {
    let sim = start_nested("/_stripe-sim").await;
    let cus = customer(&sim, "nested@example.com").await;
    let portal = CreateBillingPortalSession::new()
        .customer(&cus)
        .return_url("https://app.example/")
        .send(&sim.client)
        .await
        .expect("portal");
    assert!(portal.url.starts_with(&format!("{}/portal/", sim.base)));
    let page = reqwest::get(&portal.url).await.expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("/_stripe-sim/portal/"),
        "links keep the mount path"
    );
}

#[tokio::test]
async fn invoices_are_voided_and_marked_uncollectible_as_stripe_allows() {
    use stripe_billing::invoice::{MarkUncollectibleInvoice, VoidInvoiceInvoice};
    let sim = start().await;
    let client = &sim.client;
    let open_invoice = |sub: stripe_shared::Subscription| async move {
        let list = ListInvoice::new()
            .subscription(sub.id.as_str())
            .send(client)
            .await
            .expect("list");
        let inv = list.data.into_iter().next().expect("an invoice");
        assert_eq!(inv.status, Some(InvoiceStatus::Open));
        inv.id.expect("id")
    };
    let (_, first) = subscribed(&sim, "pm_card_chargeCustomerFail", "starter_monthly").await;
    let (_, second) = subscribed(&sim, "pm_card_chargeCustomerFail", "team_monthly").await;
    let (one, two) = (open_invoice(first).await, open_invoice(second).await);

    let marked = MarkUncollectibleInvoice::new(one.clone())
        .send(&sim.client)
        .await
        .expect("mark uncollectible");
    assert_eq!(marked.status, Some(InvoiceStatus::Uncollectible));
    // Uncollectible can still be voided; void is final.
    let voided = VoidInvoiceInvoice::new(one.clone())
        .send(&sim.client)
        .await
        .expect("void");
    assert_eq!(voided.status, Some(InvoiceStatus::Void));
    assert!(voided.status_transitions.voided_at.is_some());
    for refused in [
        VoidInvoiceInvoice::new(one.clone())
            .send(&sim.client)
            .await
            .err(),
        MarkUncollectibleInvoice::new(one.clone())
            .send(&sim.client)
            .await
            .err(),
    ] {
        assert!(
            matches!(refused, Some(stripe::StripeError::Stripe(_, 400))),
            "{refused:?}"
        );
    }
    let voided = VoidInvoiceInvoice::new(two.clone())
        .send(&sim.client)
        .await
        .expect("void an open invoice");
    assert_eq!(voided.status, Some(InvoiceStatus::Void));

    let types: Vec<String> = all_events(&sim)
        .await
        .into_iter()
        .filter(|e| {
            e["data"]["object"]["id"] == one.as_str() || e["data"]["object"]["id"] == two.as_str()
        })
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    for t in ["invoice.marked_uncollectible", "invoice.voided"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    assert_eq!(types.iter().filter(|t| *t == "invoice.voided").count(), 2);
}

#[tokio::test]
async fn products_are_renamed_archived_and_deleted_as_stripe_allows() {
    use stripe_product::product::{CreateProduct, DeleteProduct, RetrieveProduct, UpdateProduct};
    let sim = start().await;
    let client = &sim.client;
    let price_id = price(&sim, "pro_monthly").await;
    let pro = stripe_product::price::RetrievePrice::new(price_id.as_str())
        .send(client)
        .await
        .expect("price")
        .product
        .id()
        .to_string();

    let renamed = UpdateProduct::new(pro.as_str())
        .name("Pro Plus")
        .send(client)
        .await
        .expect("rename");
    assert_eq!(renamed.name, "Pro Plus");
    let archived = UpdateProduct::new(pro.as_str())
        .active(false)
        .send(client)
        .await
        .expect("archive");
    assert!(!archived.active);
    let read = RetrieveProduct::new(pro.as_str())
        .send(client)
        .await
        .expect("read");
    assert_eq!((read.name.as_str(), read.active), ("Pro Plus", false));

    // A product with prices cannot be deleted (archive it instead); one without can.
    let refused = DeleteProduct::new(pro.as_str()).send(client).await.err();
    assert!(
        matches!(refused, Some(stripe::StripeError::Stripe(_, 400))),
        "{refused:?}"
    );
    let lone = CreateProduct::new("Add-on")
        .send(client)
        .await
        .expect("create");
    let deleted = DeleteProduct::new(lone.id.as_str())
        .send(client)
        .await
        .expect("delete");
    assert_eq!(deleted.id, lone.id);
    let gone = RetrieveProduct::new(lone.id.as_str())
        .send(client)
        .await
        .err();
    assert!(
        matches!(gone, Some(stripe::StripeError::Stripe(_, 404))),
        "{gone:?}"
    );

    let updates = events_of(&sim, "product.updated").await;
    assert_eq!(updates.len(), 2, "one event per change");
    // Oldest first: the rename, then the archive.
    assert_eq!(updates[0]["data"]["previous_attributes"]["name"], "Pro");
    assert_eq!(updates[1]["data"]["previous_attributes"]["active"], true);
    for t in ["product.created", "product.deleted"] {
        let about_lone = events_of(&sim, t)
            .await
            .into_iter()
            .filter(|e| e["data"]["object"]["id"] == lone.id.as_str())
            .count();
        assert_eq!(about_lone, 1, "{t}");
    }
}

#[tokio::test]
async fn prices_are_created_and_lookup_keys_move_only_when_asked() {
    use stripe_product::price::{
        CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, ListPrice, UpdatePrice,
    };
    let sim = start().await;
    let client = &sim.client;
    let old = price(&sim, "pro_monthly").await;
    let product = stripe_product::price::RetrievePrice::new(old.as_str())
        .send(client)
        .await
        .expect("price")
        .product
        .id()
        .to_string();
    let create = |key: &str| {
        CreatePrice::new(stripe_types::Currency::USD)
            .product(product.as_str())
            .unit_amount(3900)
            .recurring(CreatePriceRecurring::new(
                CreatePriceRecurringInterval::Month,
            ))
            .lookup_key(key)
    };

    // A lookup key another price holds is refused, and nothing is made.
    let refused = create("pro_monthly").send(client).await.err();
    assert!(
        matches!(refused, Some(stripe::StripeError::Stripe(_, 400))),
        "{refused:?}"
    );
    // Moved on request: the new price has it, the old one no longer.
    let new = create("pro_monthly")
        .transfer_lookup_key(true)
        .send(client)
        .await
        .expect("create with the key moved");
    assert_eq!(new.unit_amount, Some(3900));
    assert_eq!(new.lookup_key.as_deref(), Some("pro_monthly"));
    assert_eq!(
        new.recurring.as_ref().map(|r| r.interval.as_str()),
        Some("month")
    );
    let listed = ListPrice::new()
        .lookup_keys(vec!["pro_monthly".to_owned()])
        .send(client)
        .await
        .expect("list");
    assert_eq!(
        listed
            .data
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        [new.id.as_str()]
    );
    // The old price is archived (never edited: its amount stays).
    let archived = UpdatePrice::new(old.as_str())
        .active(false)
        .send(client)
        .await
        .expect("archive");
    assert!(!archived.active);
    assert_eq!(archived.lookup_key, None);
    assert_eq!(archived.unit_amount, Some(2900));

    assert_eq!(
        events_of(&sim, "price.created")
            .await
            .iter()
            .filter(|e| e["data"]["object"]["id"] == new.id.as_str())
            .count(),
        1
    );
    let moved: Vec<_> = events_of(&sim, "price.updated")
        .await
        .into_iter()
        .filter(|e| e["data"]["object"]["id"] == old.as_str())
        .collect();
    assert_eq!(moved.len(), 2, "the key moved, then the archive");
    assert_eq!(
        moved[0]["data"]["previous_attributes"]["lookup_key"],
        "pro_monthly"
    );
    assert_eq!(moved[1]["data"]["previous_attributes"]["active"], true);

    // A price without `recurring` is a one-time price, which a subscription refuses.
    let one_time = CreatePrice::new(stripe_types::Currency::USD)
        .product(product.as_str())
        .unit_amount(100)
        .send(client)
        .await
        .expect("a one-time price");
    assert_eq!(one_time.type_, stripe_shared::PriceType::OneTime);
    assert!(one_time.recurring.is_none());
    let customer = crate::helpers::customer(&sim, "one-time@example.com").await;
    let mut item = stripe_billing::subscription::CreateSubscriptionItems::new();
    item.price = Some(one_time.id.to_string());
    let refused = stripe_billing::subscription::CreateSubscription::new()
        .customer(&customer)
        .items(vec![item])
        .send(client)
        .await
        .err();
    assert!(
        matches!(refused, Some(stripe::StripeError::Stripe(_, 400))),
        "{refused:?}"
    );
    let no_product = CreatePrice::new(stripe_types::Currency::USD)
        .product("prod_nope")
        .unit_amount(100)
        .recurring(CreatePriceRecurring::new(
            CreatePriceRecurringInterval::Month,
        ))
        .send(client)
        .await
        .err();
    assert!(
        matches!(no_product, Some(stripe::StripeError::Stripe(_, 404))),
        "{no_product:?}"
    );
}
