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

/// The id of the catalogue's price `lookup_key`, once the app has loaded the prices from Stripe
/// (at start, beside the first requests).
async fn price_of(app: &TestApp, lookup_key: &str) -> String {
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(50));
    while patience.another_try().await {
        let id = scalar(
            app,
            &format!("SELECT id FROM prices WHERE lookup_key = '{lookup_key}' AND active = true"),
        )
        .await;
        if let Some(id) = id {
            return id;
        }
    }
    panic!("the price {lookup_key} never arrived");
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
    // The seat-shortfall column came after the move: both go back.
    Migrator::down(&app.db, Some(2)).await.expect("down");
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
    for (email, _, customer) in &people {
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
    let price = price_of(&app, "starter_monthly").await;
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

    let state = state_of(&app, &member).await;
    assert_eq!(state["organization"]["name"], "Acme Ltd", "{state}");
    assert_eq!(state["organization"]["role"], "member");
    assert_eq!(state["organization"]["manages_billing"], false);
    assert!(
        state["organization"]["billing_contacts"]
            .to_string()
            .contains(&owner_email),
        "{state}"
    );

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

/// The repository's billing file with another seat policy, for the app under test.
fn billing_file_with(policy: &str) -> tempfile::NamedTempFile {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/billing.toml");
    let text = std::fs::read_to_string(file).expect("billing.toml");
    let start = text.find("\n[catalog.seat_policy]").expect("a seat policy") + 1;
    let mut changed = text[..start].to_owned();
    changed.push_str("[catalog.seat_policy]\n");
    changed.push_str(policy);
    let mut out = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut out, changed.as_bytes()).expect("write");
    out
}

async fn stripe_object(app: &TestApp, path: &str) -> Value {
    reqwest::Client::new()
        .get(app.url(&format!("/_stripe-sim/v1/{path}")))
        .bearer_auth("sk_test_through_the_double")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

/// Waits (a bounded while) until the double's subscription has `quantity`.
async fn quantity_becomes(app: &TestApp, sub: &str, quantity: u64) -> Value {
    let mut seen = Value::Null;
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(50));
    while patience.another_try().await {
        seen = stripe_object(app, &format!("subscriptions/{sub}")).await;
        if seen["items"]["data"][0]["quantity"].as_u64() == Some(quantity) {
            return seen;
        }
    }
    panic!(
        "the quantity never became {quantity}: {}",
        seen["items"]["data"][0]
    );
}

/// A member joins as the invitation's acceptance makes them one (their membership and the
/// queued seat update in one transaction), without the mail round trip (and without sign-up's
/// limit per client: twenty people do not sign up from one address).
async fn join(app: &TestApp, org: i64) -> i64 {
    use billfold::{
        auth::{
            org::add_member,
            ssr::{create_user, Address},
            validate::{Email, Password},
        },
        billing::seats,
        db::begin_write,
        domain::Role,
    };
    let email = Email::parse(&unique_email()).expect("an address");
    let user = create_user(
        &app.db,
        &email,
        Password::parse(PASSWORD).expect("a password"),
        Address::Proven,
    )
    .await
    .expect("an account")
    .id;
    let txn = begin_write(&app.db).await.expect("begin");
    add_member(&*txn, org, user, Role::Member, billfold::db::clock::now())
        .await
        .expect("member");
    seats::queue_sync(&*txn, org, &app.state.config.catalog.seat_policy)
        .await
        .expect("queue");
    txn.commit().await.expect("commit");
    user
}

/// Seats follow members through the outbox under the stated policy: an accepted invitation
/// raises the quantity (charged now, one invoice), twenty people joining in bursts reach Stripe
/// as a few coalesced updates within the hour's budget and end at the right count, and a
/// removed member's seat stays paid until the period's end.
async fn seats_follow_members_under_the_policy(backend: Backend) {
    use stripe_billing::subscription::{CreateSubscription, CreateSubscriptionItems};
    use stripe_payment::payment_method::AttachPaymentMethod;
    let catcher = MailCatcher::start().await;
    let billing = billing_file_with(
        "count_pending_invitations = false\ngrowth = \"charge_now\"\nrelease = \"period_end\"\n\
         coalesce_secs = 2\nupdates_per_hour = 10\n",
    );
    let mut env = catcher.env().to_vec();
    env.push(("BILLING_FILE", billing.path().to_str().expect("path")));
    let app = TestApp::spawn_with(backend, &env).await;
    let owner_email = unique_email();
    let owner = signed_up(&app, &owner_email).await;
    prove_address(&app, &owner_email).await;
    let (status, body) = post(&app, &owner, "/api/org/create", &[("name", "Seats Inc")]).await;
    assert_eq!(status, 200, "{body}");
    let org: i64 = scalar(
        &app,
        "SELECT id FROM organizations WHERE name = 'Seats Inc'",
    )
    .await
    .expect("org")
    .parse()
    .expect("id");
    let (status, body) = post(&app, &owner, "/api/billing/account", &[]).await;
    assert_eq!(status, 200, "{body}");
    let customer = scalar(
        &app,
        &format!("SELECT customer_id FROM stripe_customers WHERE organization_id = {org}"),
    )
    .await
    .expect("the team's customer");

    // Team, one seat, as Checkout would start it for one member.
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    let pm = AttachPaymentMethod::new("pm_card_visa")
        .customer(customer.as_str())
        .send(&stripe)
        .await
        .expect("attach");
    let team = price_of(&app, "team_monthly").await;
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(team);
    item.quantity = Some(1);
    let sub = CreateSubscription::new()
        .customer(customer.as_str())
        .items(vec![item])
        .default_payment_method(pm.id.to_string())
        .send(&stripe)
        .await
        .expect("subscribe")
        .id
        .to_string();
    settled(app.state.sim.as_ref().expect("the double")).await;
    let invoices_before = stripe_object(&app, &format!("invoices?subscription={sub}")).await
        ["data"]
        .as_array()
        .map_or(0, Vec::len);

    // An accepted invitation: two seats, charged now (one more invoice).
    let invitee = unique_email();
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
    let token = link.split("token=").nth(1).expect("token").to_owned();
    let member = signed_up(&app, &invitee).await;
    let (status, body) = post(
        &app,
        &member,
        "/api/org/invitation/accept",
        &[("token", token.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    quantity_becomes(&app, &sub, 2).await;
    settled(app.state.sim.as_ref().expect("the double")).await;
    let invoices = stripe_object(&app, &format!("invoices?subscription={sub}")).await;
    assert_eq!(
        invoices["data"].as_array().map_or(0, Vec::len),
        invoices_before + 1,
        "charged now: one invoice for the added seat: {invoices}"
    );

    // Twenty join in bursts over several seconds: a few coalesced updates, within budget.
    let updates_before = quantity_updates(&app, &sub);
    let mut last_joined = 0;
    for burst in 0..4 {
        for _ in 0..5 {
            last_joined = join(&app, org).await;
        }
        if burst < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        }
    }
    quantity_becomes(&app, &sub, 22).await;
    let sent = quantity_updates(&app, &sub) - updates_before;
    assert!(
        (1..=9).contains(&sent),
        "twenty joins went to Stripe as {sent} updates (budget 10 an hour, one spent: a slow machine splits the bursts into more windows, never twenty)"
    );

    // A removed member's seat stays paid until the period's end: the change waits for it.
    let member_id = scalar(
        &app,
        &format!("SELECT id FROM users WHERE email = '{invitee}'"),
    )
    .await
    .expect("id");
    let (status, body) = post(
        &app,
        &owner,
        "/api/org/remove",
        &[("user_id", member_id.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut deferred = None;
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(50));
    while patience.another_try().await {
        let row = scalar(
            &app,
            &format!("SELECT last_error FROM stripe_outbox WHERE key = 'seat_quantity:{customer}'"),
        )
        .await;
        if row
            .as_deref()
            .is_some_and(|e| e.contains("end of the period"))
        {
            deferred = row;
            break;
        }
    }
    assert!(deferred.is_some(), "the release waits for the period's end");
    assert_eq!(
        stripe_object(&app, &format!("subscriptions/{sub}")).await["items"]["data"][0]["quantity"]
            .as_u64(),
        Some(22),
        "still paid until then"
    );
    let page = page_of(&app, &owner, "/settings/organization").await;
    assert!(
        page.contains("Seats: 21 used, 22 paid (the plan allows up to 50)."),
        "{page}"
    );

    // Someone lowers the quantity in Stripe below the members: the page tells the owner, and
    // nobody loses anything.
    let item = stripe_object(&app, &format!("subscriptions/{sub}")).await["items"]["data"][0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    let mut line = stripe_billing::subscription::UpdateSubscriptionItems::new();
    line.id = Some(item);
    line.quantity = Some(5);
    stripe_billing::subscription::UpdateSubscription::new(sub.as_str())
        .items(vec![line])
        .send(&stripe)
        .await
        .expect("lower the quantity");
    let mut page = String::new();
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(50));
    while patience.another_try().await {
        page = page_of(&app, &owner, "/settings/organization").await;
        if page.contains("seats-short") {
            break;
        }
    }
    assert!(page.contains("Seats: 21 used, 5 paid"), "{page}");
    assert!(page.contains("seats-short"), "{page}");
    // The reconciler records it as drift: 21 seats used, 5 paid.
    billfold::reconcile::run_cycle(&app.state)
        .await
        .expect("a reconciler cycle");
    let drift = scalar(
        &app,
        &format!(
            "SELECT database_value || '/' || stripe_value FROM drift_records \
             WHERE object_type = 'seats' AND object_id = '{sub}'"
        ),
    )
    .await;
    assert_eq!(drift.as_deref(), Some("21/5"), "the seat drift is recorded");

    // Who holds the five paid seats: the owner does; the last to join does not, and keeps the
    // plan until the period in which the quantity went down ends (the default policy), while
    // "nothing" would take it now.
    use billfold::{
        billing::{entitlement, seats},
        billing_file::catalog::{BeyondPaid, SeatPolicy},
        db::entities::subscription,
        domain::{CurrentOrg, Role},
        web::CurrentUser,
    };
    use sea_orm::EntityTrait;
    let row = subscription::Entity::find_by_id(sub.as_str())
        .one(&app.db)
        .await
        .expect("query")
        .expect("the subscription's row");
    assert_eq!(row.quantity, Some(5));
    let lowered_at = row.quantity_lowered_at.expect("the lowering is recorded");
    assert!(row
        .current_period_start
        .is_some_and(|start| lowered_at >= start));
    let owner_id: i64 = scalar(
        &app,
        &format!("SELECT id FROM users WHERE email = '{owner_email}'"),
    )
    .await
    .expect("owner")
    .parse()
    .expect("id");
    let policy = app.state.config.catalog.seat_policy;
    assert_eq!(policy.beyond_paid, BeyondPaid::UntilPeriodEnd);
    let nothing = SeatPolicy {
        beyond_paid: BeyondPaid::Nothing,
        ..policy
    };
    for (user, under_default, under_nothing) in [(owner_id, true, true), (last_joined, true, false)]
    {
        let holds = |p: SeatPolicy| {
            let row = row.clone();
            let db = app.db.clone();
            async move {
                seats::member_holds_seat(&db, &p, &row, org, user)
                    .await
                    .expect("the rule")
            }
        };
        assert_eq!(holds(policy).await, under_default, "user {user}");
        assert_eq!(holds(nothing).await, under_nothing, "user {user}");
    }
    let member = CurrentUser {
        id: last_joined,
        email: "member@example.com".into(),
        email_verified: true,
        org: CurrentOrg {
            id: org,
            name: "Seats Inc".into(),
            personal: false,
            role: Role::Member,
        },
    };
    let access = entitlement::load(&app.state, &member)
        .await
        .expect("access")
        .access;
    assert!(access.granted, "kept until the period ends: {access:?}");
    app.stop().await;
}

/// How many quantity updates (`POST /v1/subscriptions/{id}`) the double received for `sub`.
fn quantity_updates(app: &TestApp, sub: &str) -> usize {
    let path = format!("/v1/subscriptions/{sub}");
    app.state
        .sim
        .as_ref()
        .expect("the double")
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .count()
}

/// The owner of a new team organisation, as server code sees them acting for it, and the
/// organisation's id.
async fn team_owner(app: &TestApp, name: &str) -> (billfold::web::CurrentUser, i64) {
    use billfold::{
        auth::{
            org,
            ssr::{create_user, Address},
            validate::{Email, Password},
        },
        domain::{CurrentOrg, Role},
        organizations::service,
        web::CurrentUser,
    };
    let email = unique_email();
    let user = create_user(
        &app.db,
        &Email::parse(&email).expect("an address"),
        Password::parse(PASSWORD).expect("a password"),
        Address::Proven,
    )
    .await
    .expect("an account");
    let (personal, _) = org::current(&app.db, &user).await.expect("personal");
    let me = CurrentUser {
        id: user.id,
        email,
        email_verified: true,
        org: personal,
    };
    let id = service::create(&app.state, &me, name)
        .await
        .expect("the team");
    let owner = CurrentUser {
        org: CurrentOrg {
            id,
            name: name.to_owned(),
            personal: false,
            role: Role::Owner,
        },
        ..me
    };
    (owner, id)
}

/// Two replicas on one database, one Stripe: members join and leave through both, one replica
/// restarts in the middle of the burst, and the quantity ends equal to the members, every
/// update Stripe received having changed it (nothing sent twice), within the hour's budget.
async fn replicas_and_a_restart_end_in_one_correct_quantity(backend: Backend) {
    use stripe_billing::subscription::{CreateSubscription, CreateSubscriptionItems};
    use stripe_payment::payment_method::AttachPaymentMethod;
    const KEY: &str = "sk_test_seat_replicas";
    const SECRET: &str = "whsec_seat_replicas";
    let stripe = crate::support::standalone_stripe::StandaloneStripe::start(
        KEY,
        SECRET,
        stripe_sim::DeliveryOptions::default(),
    )
    .await;
    let billing = billing_file_with(
        "count_pending_invitations = false\ngrowth = \"next_invoice\"\nrelease = \"at_once\"\n\
         coalesce_secs = 1\nupdates_per_hour = 12\n",
    );
    let env = [
        ("STRIPE_SECRET_KEY", KEY),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("STRIPE_API_BASE", stripe.base.as_str()),
        ("BILLING_FILE", billing.path().to_str().expect("path")),
    ];
    let app = TestApp::spawn_with(backend, &env).await;
    let replica = app.spawn_replica(&env).await;
    // Stripe's webhooks reach the replica that stays up (the other restarts on a new port).
    stripe
        .sim
        .add_webhook_endpoint(&replica.url("/api/webhooks/stripe"), SECRET);
    let (owner, org) = team_owner(&app, "Replicas Ltd").await;
    let customer = billfold::billing::customer::ensure_customer(&app.state, &owner)
        .await
        .expect("the team's customer");
    let pm = AttachPaymentMethod::new("pm_card_visa")
        .customer(customer.as_str())
        .send(&stripe.client)
        .await
        .expect("attach");
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(price_of(&app, "team_monthly").await);
    item.quantity = Some(1);
    let sub = CreateSubscription::new()
        .customer(customer.as_str())
        .items(vec![item])
        .default_payment_method(pm.id.to_string())
        .send(&stripe.client)
        .await
        .expect("subscribe")
        .id
        .to_string();
    stripe.settled().await;

    // Six join through the first replica, which then restarts at once (its queued update not
    // yet sent); six more join and three leave through the other, three through the restarted.
    let mut joined = Vec::new();
    for _ in 0..6 {
        joined.push(join(&app, org).await);
    }
    let app = app.restart(&env).await;
    for _ in 0..6 {
        joined.push(join(&replica, org).await);
    }
    for (n, user) in joined.iter().take(6).enumerate() {
        let via = if n % 2 == 0 { &replica } else { &app };
        billfold::organizations::service::remove(&via.state, &owner, &user.to_string())
            .await
            .expect("removed");
    }
    // 1 owner + 12 joined - 6 removed.
    let want = 7;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let quantity = stripe.object(&format!("subscriptions/{sub}")).await["items"]["data"][0]
            ["quantity"]
            .as_u64();
        if quantity == Some(want) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the quantity stayed {quantity:?}, not {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Nothing more goes out after it settled: wait past a coalescing window or two.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    stripe.settled().await;
    let path = format!("/v1/subscriptions/{sub}");
    let posts = stripe
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .count();
    let events = stripe
        .object("events?type=customer.subscription.updated&limit=100")
        .await;
    let changes = events["data"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["data"]["object"]["id"] == sub.as_str())
        .filter(|e| e["data"]["previous_attributes"]["items"].is_object())
        .count();
    assert!((1..=12).contains(&posts), "{posts} quantity updates");
    assert_eq!(
        posts, changes,
        "every update Stripe received changed the quantity: none was sent twice"
    );
    assert_eq!(
        stripe.object(&format!("subscriptions/{sub}")).await["items"]["data"][0]["quantity"],
        want
    );
    let row = scalar(
        &app,
        &format!("SELECT quantity FROM subscriptions WHERE id = '{sub}'"),
    )
    .await;
    assert_eq!(
        row.as_deref(),
        Some("7"),
        "the database says what Stripe says"
    );
    replica.stop().await;
    app.stop().await;
}

crate::support::on_both_databases!(
    the_move_to_organisations_keeps_every_users_billing,
    a_team_invites_and_only_billing_managers_pay,
    seats_follow_members_under_the_policy,
    replicas_and_a_restart_end_in_one_correct_quantity,
);
