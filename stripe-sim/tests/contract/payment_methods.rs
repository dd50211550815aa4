//! Cards made from test tokens, updated, and saved through setup intents, as Stripe's CLI
//! fixtures and other people's suites make them: every answer parses as async-stripe's own
//! types, and a bad value is refused naming its parameter.

use stripe_shared::{PaymentMethod, SetupIntent, SetupIntentStatus};

use crate::helpers::*;

fn parse<T: miniserde::Deserialize>(v: &serde_json::Value) -> T {
    miniserde::json::from_str(&v.to_string())
        .unwrap_or_else(|e| panic!("async-stripe cannot read it ({e:?}): {v}"))
}

#[tokio::test]
async fn a_card_from_a_token_is_updated_and_refuses_a_bad_expiry() {
    let sim = start().await;
    let (status, made) = post_form(
        &sim,
        "/v1/payment_methods",
        "type=card&card[token]=tok_mastercard&billing_details[name]=Jenny+Rosen&metadata[from]=token",
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let pm: PaymentMethod = parse(&made);
    let card = pm.card.as_ref().expect("a card");
    assert_eq!(
        (card.brand.as_str(), card.last4.as_str()),
        ("mastercard", "4444")
    );
    assert_eq!(pm.billing_details.name.as_deref(), Some("Jenny Rosen"));
    assert_eq!(made["metadata"]["from"], "token");

    for (body, param) in [
        ("type=card&card[token]=tok_nothing", "card[token]"),
        ("type=sepa_debit&card[token]=tok_visa", "type"),
        ("type=card&card[number]=4111111111111112", "card[number]"),
    ] {
        let (status, err) = post_form(&sim, "/v1/payment_methods", body).await;
        assert!(status == 400 || status == 404, "{body}: {status} {err}");
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
    }

    let customer = customer(&sim, "cards@example.com").await;
    let (status, _) = post_form(
        &sim,
        &format!("/v1/payment_methods/{}/attach", pm.id),
        &format!("customer={customer}"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, updated) = post_form(
        &sim,
        &format!("/v1/payment_methods/{}", pm.id),
        "card[exp_month]=7&card[exp_year]=2031&billing_details[email]=jenny%40example.com",
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["card"]["exp_month"], 7);
    assert_eq!(updated["card"]["exp_year"], 2031);
    let events = events_of(&sim, "payment_method.updated").await;
    let last = events.last().expect("payment_method.updated");
    crate::webhooks::assert_typed(&last.to_string());
    assert_eq!(
        last["data"]["previous_attributes"]["card"]["exp_month"],
        card.exp_month
    );

    for (body, param) in [
        ("card[exp_month]=13", "card[exp_month]"),
        ("card[exp_year]=31", "card[exp_year]"),
        ("card[exp_month]=soon", "card[exp_month]"),
    ] {
        let (status, err) = post_form(&sim, &format!("/v1/payment_methods/{}", pm.id), body).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
    }
    let (_, unchanged) = get_json(&sim, &format!("/v1/payment_methods/{}", pm.id)).await;
    assert_eq!(
        unchanged["card"]["exp_month"], 7,
        "a refused update changes nothing"
    );
}

#[tokio::test]
async fn a_setup_intent_saves_a_card_or_waits_for_authentication() {
    let sim = start().await;
    let customer = customer(&sim, "setup@example.com").await;
    let (status, saved) = post_form(
        &sim,
        "/v1/setup_intents",
        &format!("customer={customer}&payment_method=pm_card_visa&confirm=true&metadata[order]=42"),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    let intent: SetupIntent = parse(&saved);
    assert_eq!(intent.status, SetupIntentStatus::Succeeded);
    assert_eq!(saved["metadata"]["order"], "42");
    let pm = saved["payment_method"].as_str().expect("the saved card");
    let (_, card) = get_json(&sim, &format!("/v1/payment_methods/{pm}")).await;
    assert_eq!(card["customer"], customer.as_str());

    let (_, waiting) = post_form(
        &sim,
        "/v1/setup_intents",
        &format!("customer={customer}&payment_method=pm_card_threeDSecure2Required&confirm=true"),
    )
    .await;
    assert_eq!(
        parse::<SetupIntent>(&waiting).status,
        SetupIntentStatus::RequiresAction
    );

    let (_, unconfirmed) = post_form(
        &sim,
        "/v1/setup_intents",
        &format!("customer={customer}&payment_method=pm_card_visa"),
    )
    .await;
    assert_eq!(
        parse::<SetupIntent>(&unconfirmed).status,
        SetupIntentStatus::RequiresConfirmation
    );
    let (status, err) = post_form(
        &sim,
        "/v1/setup_intents",
        &format!("customer={customer}&confirm=true"),
    )
    .await;
    assert_eq!(
        (status, &err["error"]["param"]),
        (400, &"payment_method".into())
    );
}
