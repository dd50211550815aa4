//! Organisations: the billing customer is an organisation's. The move from customers of
//! users keeps every row's meaning, and every user's billing reads the same after it.

use migration::{Migrator, MigratorTrait};
use serde_json::Value;

use crate::support::{
    app::{browser_client, location, unique_email, Backend, TestApp},
    billing::{customer_of, subscribe_in_stripe, PASSWORD},
    mail_catcher::{link_to, MailCatcher},
    rows::{prove_address, scalar},
    standalone_stripe::settled,
};

/// Signs up `email` in a browser of its own; that browser.
async fn signed_up(app: &TestApp, email: &str) -> reqwest::Client {
    let client = browser_client();
    let res = client
        .post(app.url("/api/signup"))
        .header("Origin", &app.base)
        .header("Accept", "text/html")
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign up");
    assert_eq!(res.status(), 302, "sign-up of {email}");
    client
}

async fn state_of(app: &TestApp, client: &reqwest::Client) -> Value {
    let res = client
        .get(app.url("/api/billing/state"))
        .send()
        .await
        .expect("state");
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

async fn count(app: &TestApp, table: &str) -> i64 {
    scalar(app, &format!("SELECT COUNT(*) FROM {table}"))
        .await
        .expect("count")
        .parse()
        .expect("a number")
}

const TABLES: [&str; 9] = [
    "users",
    "sessions",
    "stripe_customers",
    "subscriptions",
    "invoices",
    "payment_methods",
    "webhook_events",
    "drift_records",
    "mail_outbox",
];

/// A database filled through the double (people with plans, one cancelling, one with only a
/// customer, one drift record), taken back to the schema before organisations and moved again:
/// every table keeps its rows, every customer lands in its user's personal organisation with
/// its user as the owner, and each user's billing state is what it was.
async fn the_move_to_organisations_keeps_every_users_billing(backend: Backend) {
    use stripe_billing::subscription::UpdateSubscription;
    let app = TestApp::spawn(backend).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    let mut people = Vec::new();
    for plan in [Some(900), Some(2900), Some(900), None] {
        let email = unique_email();
        let client = signed_up(&app, &email).await;
        let customer = customer_of(&app, &email).await.expect("a customer");
        if let Some(amount) = plan {
            let sub = subscribe_in_stripe(&stripe, &customer, amount).await;
            if amount == 2900 {
                UpdateSubscription::new(sub.as_str())
                    .cancel_at_period_end(true)
                    .send(&stripe)
                    .await
                    .expect("cancel at period end");
            }
        }
        people.push((email, client, customer));
    }
    settled(app.state.sim.as_ref().expect("the mounted double")).await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        &format!(
            "INSERT INTO drift_records (detected_at, customer_id, object_type, object_id, field, \
             event_type, database_value, stripe_value) VALUES (1, '{}', 'subscription', 'sub_x', \
             'status', 'customer.subscription.updated', 'active', 'canceled')",
            people[0].2
        ),
    )
    .await
    .expect("a drift record");

    let mut before = Vec::new();
    for (_, client, _) in &people {
        before.push(state_of(&app, client).await);
    }
    let states: Vec<&str> = before
        .iter()
        .map(|s| s["state"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(states[3], "none", "{states:?}");
    assert!(states[..3].iter().all(|s| *s != "none"), "{states:?}");
    assert!(
        before[1]["dates"].to_string().contains("cancel") || states[1] != states[0],
        "the cancelling plan reads differently: {:?}",
        before[1]
    );
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push(count(&app, table).await);
    }
    assert!(
        counts.iter().all(|&n| n > 0),
        "every table has rows: {counts:?}"
    );

    // Back to customers of users, then forward again.
    Migrator::down(&app.db, Some(1)).await.expect("down");
    assert!(
        sea_orm::ConnectionTrait::execute_unprepared(&app.db, "SELECT COUNT(*) FROM organizations")
            .await
            .is_err(),
        "no organisations before the move"
    );
    Migrator::up(&app.db, None).await.expect("the move");

    for (table, was) in TABLES.into_iter().zip(&counts) {
        assert_eq!(count(&app, table).await, *was, "{table} keeps its rows");
    }
    assert_eq!(
        count(&app, "organizations").await,
        counts[0],
        "one per account"
    );
    assert_eq!(count(&app, "memberships").await, counts[0], "its owner");
    for (email, client, customer) in &people {
        let user: i64 = scalar(
            &app,
            &format!("SELECT id FROM users WHERE email = '{email}'"),
        )
        .await
        .expect("user")
        .parse()
        .expect("id");
        let org = scalar(
            &app,
            &format!("SELECT id FROM organizations WHERE personal_of = {user}"),
        )
        .await
        .expect("a personal organisation");
        assert_eq!(
            scalar(
                &app,
                &format!(
                    "SELECT organization_id FROM stripe_customers WHERE customer_id = '{customer}'"
                )
            )
            .await,
            Some(org.clone()),
            "{email}'s customer is their organisation's"
        );
        assert_eq!(
            scalar(
                &app,
                &format!(
                    "SELECT role FROM memberships WHERE organization_id = {org} AND user_id = {user}"
                )
            )
            .await
            .as_deref(),
            Some("owner")
        );
        let _ = client;
    }
    for ((email, client, _), was) in people.iter().zip(&before) {
        assert_eq!(&state_of(&app, client).await, was, "{email}'s billing");
    }
    app.stop().await;
}

/// Posts a server function from `client` as the hydrated page does (a JSON answer).
async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    endpoint: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let res = client
        .post(app.url(endpoint))
        .header("Origin", &app.base)
        .form(fields)
        .send()
        .await
        .expect("request");
    (res.status().as_u16(), res.text().await.expect("body"))
}

async fn page_of(app: &TestApp, client: &reqwest::Client, path: &str) -> String {
    client
        .get(app.url(path))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html")
}

/// A team organisation: its owner invites by mail, the invited address accepts (another
/// address cannot), a member may not pay and is told whom to ask, a billing admin may, the
/// last owner cannot leave, and a member who leaves is back in their personal organisation.
async fn a_team_invites_and_only_billing_managers_pay(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::spawn_with(backend, &catcher.env()).await;
    let owner_email = unique_email();
    let owner = signed_up(&app, &owner_email).await;
    prove_address(&app, &owner_email).await;

    // A personal organisation invites nobody.
    let invitee = unique_email();
    let (status, body) = post(
        &app,
        &owner,
        "/api/org/invite",
        &[("email", invitee.as_str()), ("role", "member")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("create a team organisation"), "{body}");

    let (status, body) = post(&app, &owner, "/api/org/create", &[("name", "Acme Ltd")]).await;
    assert_eq!(status, 200, "{body}");
    let org = page_of(&app, &owner, "/settings/organization").await;
    assert!(
        org.contains("Acme Ltd") && org.contains("Your role: Owner."),
        "{org}"
    );
    for (fields, status) in [
        ([("email", "not-an-address"), ("role", "member")], 400),
        ([("email", invitee.as_str()), ("role", "emperor")], 400),
        ([("email", owner_email.as_str()), ("role", "member")], 409),
    ] {
        let (got, body) = post(&app, &owner, "/api/org/invite", &fields).await;
        assert_eq!(got, status, "{fields:?}: {body}");
    }
    let (status, body) = post(
        &app,
        &owner,
        "/api/org/invite",
        &[("email", invitee.as_str()), ("role", "member")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mail = catcher.wait_for(&invitee, 1).await;
    let link = link_to(&mail[0], "/accept-invitation");
    let path = &link[link.find("/accept-invitation").expect("path")..];
    let token = path.split("token=").nth(1).expect("token").to_owned();

    // Signed out, the link says what it offers and how to accept.
    let offer = page_of(&app, &browser_client(), path).await;
    assert!(
        offer.contains("Acme Ltd") && offer.contains("Log in to accept"),
        "{offer}"
    );
    // Another address cannot use it.
    let stranger = signed_up(&app, &unique_email()).await;
    let (status, body) = post(
        &app,
        &stranger,
        "/api/org/invitation/accept",
        &[("token", token.as_str())],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains(&invitee), "{body}");
    // The invited address accepts (its link proves the address) and lands in the team.
    let member = signed_up(&app, &invitee).await;
    let (status, body) = post(
        &app,
        &member,
        "/api/org/invitation/accept",
        &[("token", token.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(
        &app,
        &member,
        "/api/org/invitation/accept",
        &[("token", token.as_str())],
    )
    .await;
    assert_eq!(status, 400, "once only");
    let team = page_of(&app, &member, "/settings/organization").await;
    assert!(
        team.contains("Acme Ltd")
            && team.contains("Your role: Member.")
            && team.contains("2 members"),
        "{team}"
    );
    assert!(
        !page_of(&app, &member, "/settings/billing")
            .await
            .contains("unproven-address"),
        "the invitation's link proved the address"
    );

    // A member may not pay, whatever they post; the page says whom to ask.
    let billing = page_of(&app, &member, "/settings/billing").await;
    assert!(billing.contains("billing-member-notice"), "{billing}");
    assert!(billing.contains(&owner_email), "whom to ask");
    assert!(!billing.contains("Manage Billing"), "no billing buttons");
    let price = scalar(
        &app,
        "SELECT id FROM prices WHERE lookup_key = 'starter_monthly'",
    )
    .await
    .expect("the Starter price");
    for (endpoint, fields) in [
        ("/api/billing/portal", vec![]),
        (
            "/api/billing/portal",
            vec![("flow", "payment_method_update")],
        ),
        ("/api/billing/checkout", vec![("price_id", price.as_str())]),
        ("/api/billing/account", vec![]),
    ] {
        let (status, body) = post(&app, &member, endpoint, &fields).await;
        assert_eq!(status, 403, "{endpoint}: {body}");
        assert!(
            body.contains(&owner_email),
            "{endpoint} names whom to ask: {body}"
        );
    }

    // Made a billing admin, the same member may.
    let member_id = scalar(
        &app,
        &format!("SELECT id FROM users WHERE email = '{invitee}'"),
    )
    .await
    .expect("id");
    let (status, body) = post(
        &app,
        &owner,
        "/api/org/role",
        &[("user_id", member_id.as_str()), ("role", "billing_admin")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &app,
        &member,
        "/api/billing/checkout",
        &[("price_id", price.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let team_customer = scalar(
        &app,
        "SELECT customer_id FROM stripe_customers WHERE organization_id = \
         (SELECT id FROM organizations WHERE name = 'Acme Ltd')",
    )
    .await
    .expect("the team's own customer");
    let owners_customer = customer_of(&app, &owner_email).await;
    assert_ne!(
        Some(team_customer),
        owners_customer,
        "not the owner's personal one"
    );

    // The last owner stays; the member leaves and is back in their personal organisation.
    let (status, body) = post(&app, &owner, "/api/org/leave", &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("needs an owner"), "{body}");
    let (status, body) = post(&app, &member, "/api/org/leave", &[]).await;
    assert_eq!(status, 200, "{body}");
    let after = page_of(&app, &member, "/settings/organization").await;
    assert!(
        after.contains("Personal") && after.contains("Your role: Owner."),
        "{after}"
    );
    // And as a plain form, switching goes back to the organisation page.
    let res = owner
        .post(app.url("/api/org/switch"))
        .header("Origin", &app.base)
        .header("Accept", "text/html")
        .header("Referer", app.url("/settings/organization"))
        .form(&[("organization_id", "999999")])
        .send()
        .await
        .expect("switch");
    assert_eq!(res.status(), 302);
    assert!(
        location(&res).contains("/settings/organization?") && location(&res).contains("__err"),
        "back to the page with the refusal: {}",
        location(&res)
    );
    app.stop().await;
}

crate::support::on_both_databases!(
    the_move_to_organisations_keeps_every_users_billing,
    a_team_invites_and_only_billing_managers_pay,
);
