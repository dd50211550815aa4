//! Stripe's own CLI (`@stripe/cli` from npm, pinned in package.json) aimed at the mounted double
//! with `--api-base`: `stripe trigger` runs Stripe's own fixture for every event type Billfold
//! handles, the events reach Billfold signed, every one is answered 2xx (applied, or recorded
//! `ignored` when the object belongs to no Billfold customer, as the fixtures' own customers do),
//! none fails, and what Billfold stores of the double's subscriptions, invoices and cards says
//! what the double says.

use std::path::PathBuf;

use crate::support::{
    app::{Backend, TestApp},
    billing::sign_up_with_customer,
    rows::scalar,
    standalone_stripe::settled,
};

/// The CLI's binary, as `npm ci` installs it.
fn cli() -> Option<PathBuf> {
    let bin = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/node_modules/.bin/stripe"
    ));
    bin.exists().then_some(bin)
}

/// The CLI run with `args` against the app's mounted double: (succeeded, stdout, stderr).
async fn run_cli(
    bin: PathBuf,
    args: Vec<String>,
    api_base: String,
    home: PathBuf,
) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(bin)
            .args(&args)
            .args([
                "--api-key",
                "sk_test_stripe_cli_against_the_double",
                "--api-base",
                &api_base,
            ])
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .env("STRIPE_CLI_TELEMETRY_OPTOUT", "1")
            .output()
            .expect("run the Stripe CLI");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("the CLI's thread")
}

/// `stripe trigger EVENT` against the app's mounted double: (succeeded, what it printed).
async fn trigger(bin: PathBuf, event: &str, api_base: String, home: PathBuf) -> (bool, String) {
    let args = vec!["trigger".to_owned(), event.to_owned()];
    let (ok, out, err) = run_cli(bin, args, api_base, home).await;
    (ok, format!("{out}{err}"))
}

/// `stripe RESOURCE OPERATION …`: the object the CLI printed, or a failure naming what it said.
async fn resource_command(
    bin: &std::path::Path,
    args: &[&str],
    api_base: &str,
    home: &std::path::Path,
) -> serde_json::Value {
    let owned = args.iter().map(|a| (*a).to_owned()).collect();
    let (ok, out, err) = run_cli(
        bin.to_path_buf(),
        owned,
        api_base.to_owned(),
        home.to_path_buf(),
    )
    .await;
    assert!(ok, "stripe {}: {out}{err}", args.join(" "));
    // A deletion first says which account it runs on; the object follows.
    let json = out.find('{').map_or("", |at| &out[at..]);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("stripe {}: {e}: {out}", args.join(" ")))
}

async fn every_handled_event_type_triggers_through_stripes_own_cli(backend: Backend) {
    let Some(bin) = cli() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Stripe CLI is not installed (npm ci installs it): in CI this test must run"
        );
        eprintln!("SKIPPED: the Stripe CLI is not installed (run `npm ci`)");
        return;
    };
    let app = TestApp::spawn(backend).await;
    let sim = app.state.sim.clone().expect("the mounted double");
    // A Billfold customer beside the fixtures' own, so both kinds of event arrive.
    let (_, ours) = sign_up_with_customer(&app).await;
    let home = tempfile::tempdir().expect("a home for the CLI's config");
    let api_base = app.url("/_stripe-sim");
    let mut ran = Vec::new();
    let mut no_fixture = Vec::new();
    let mut failed_triggers = Vec::new();
    for (event, _) in billfold::webhooks::event::HANDLED {
        let (ok, said) = trigger(
            bin.clone(),
            event,
            api_base.clone(),
            home.path().to_path_buf(),
        )
        .await;
        if said.contains("event") && said.contains("is not supported") {
            no_fixture.push(*event);
            continue;
        }
        if ok {
            ran.push(*event);
        } else {
            let last = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            failed_triggers.push(format!(
                "{event}: {}",
                last.chars().take(300).collect::<String>()
            ));
        }
    }
    // No fixture sends `price.deleted`; the CLI's own resource commands do, as on a real
    // account: a legacy plan (a price) made and deleted.
    let plan = resource_command(
        &bin,
        &[
            "plans",
            "create",
            "-d",
            "amount=1500",
            "-d",
            "currency=usd",
            "-d",
            "interval=month",
            "-d",
            "product[name]=Made by the CLI",
        ],
        &api_base,
        home.path(),
    )
    .await;
    let plan_id = plan["id"].as_str().expect("the plan's id").to_owned();
    assert_eq!(plan["object"], "plan", "{plan}");
    let gone = resource_command(
        &bin,
        &["plans", "delete", &plan_id, "--confirm"],
        &api_base,
        home.path(),
    )
    .await;
    assert_eq!(gone["deleted"], true, "{gone}");
    // Nor `customer.subscription.resumed`: a trial that ends without a card pauses its
    // subscription; a card, then `stripe subscriptions resume`. On Pro, whose features the
    // customer holds while trialing and again once resumed: Stripe's entitlement summaries.
    let pro = crate::support::billing::monthly_price(&app, "Pro").await;
    let customer = resource_command(
        &bin,
        &["customers", "create", "-d", "email=resumed@example.com"],
        &api_base,
        home.path(),
    )
    .await;
    let customer = customer["id"].as_str().expect("a customer id").to_owned();
    let item = format!("items[0][price]={pro}");
    let on_trial = resource_command(
        &bin,
        &[
            "subscriptions",
            "create",
            "-d",
            &format!("customer={customer}"),
            "-d",
            &item,
            "-d",
            "trial_period_days=3",
            "-d",
            "trial_settings[end_behavior][missing_payment_method]=pause",
        ],
        &api_base,
        home.path(),
    )
    .await;
    let sub = on_trial["id"]
        .as_str()
        .expect("a subscription id")
        .to_owned();
    let paused = resource_command(
        &bin,
        &["subscriptions", "update", &sub, "-d", "trial_end=now"],
        &api_base,
        home.path(),
    )
    .await;
    assert_eq!(paused["status"], "paused", "{paused}");
    let card = resource_command(
        &bin,
        &[
            "payment_methods",
            "attach",
            "pm_card_visa",
            "-d",
            &format!("customer={customer}"),
        ],
        &api_base,
        home.path(),
    )
    .await;
    let card = card["id"].as_str().expect("a card id").to_owned();
    resource_command(
        &bin,
        &[
            "subscriptions",
            "update",
            &sub,
            "-d",
            &format!("default_payment_method={card}"),
        ],
        &api_base,
        home.path(),
    )
    .await;
    let resumed = resource_command(
        &bin,
        &["subscriptions", "resume", &sub],
        &api_base,
        home.path(),
    )
    .await;
    assert_eq!(resumed["status"], "active", "{resumed}");
    let mut by_command = Vec::new();
    for event in [
        "price.deleted",
        "customer.subscription.resumed",
        "entitlements.active_entitlement_summary.updated",
    ] {
        if let Some(at) = no_fixture.iter().position(|e| *e == event) {
            by_command.push(no_fixture.remove(at));
        }
    }
    settled(&sim).await;
    let deliveries = sim.deliveries();
    for event in &by_command {
        assert!(
            deliveries
                .iter()
                .any(|d| d.event_type == *event && d.delivered),
            "{event} reached Billfold"
        );
    }
    for d in &deliveries {
        assert!(
            d.delivered && d.last_status.is_some_and(|s| (200..300).contains(&s)),
            "{} ({}) was not answered 2xx: {:?} {:?}",
            d.event_type,
            d.event_id,
            d.last_status,
            d.last_error
        );
    }
    let failed = scalar(
        &app,
        "SELECT COUNT(*) FROM webhook_events WHERE outcome IN ('failed', 'set_aside')",
    )
    .await;
    assert_eq!(failed.as_deref(), Some("0"), "no event recorded failed");
    // Every subscription, invoice and card Billfold stores is the double's, as the double has it.
    for (table, path, column) in [
        ("subscriptions", "subscriptions", "status"),
        ("invoices", "invoices", "status"),
    ] {
        let rows =
            crate::support::rows::rows(&app, &format!("SELECT id, {column} FROM {table}")).await;
        for row in rows {
            let (id, stored) = (&row[0], &row[1]);
            let theirs = sim_object(&app, &format!("{path}/{id}")).await;
            if stored == "deleted" {
                // A deleted draft is gone from Stripe: a 404, which names it.
                assert!(
                    theirs["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(id.as_str())),
                    "{table} {id} is deleted in Billfold, but the double has {theirs}"
                );
                continue;
            }
            assert_eq!(
                theirs[column].as_str(),
                Some(stored.as_str()),
                "{table} {id}: Billfold says {stored}, the double {}",
                theirs[column]
            );
        }
    }
    let cards =
        crate::support::rows::rows(&app, "SELECT id, customer_id FROM payment_methods").await;
    for row in cards {
        let theirs = sim_object(&app, &format!("payment_methods/{}", row[0])).await;
        // A detached card belongs to nobody on either side (NULL reads as "").
        assert_eq!(
            theirs["customer"].as_str().unwrap_or(""),
            row[1].as_str(),
            "card {}",
            row[0]
        );
    }
    let applied = scalar(
        &app,
        "SELECT COUNT(*) FROM webhook_events WHERE outcome = 'applied'",
    )
    .await;
    let ignored = scalar(
        &app,
        "SELECT COUNT(*) FROM webhook_events WHERE outcome = 'ignored'",
    )
    .await;
    println!(
        "stripe trigger: {} of {} handled event types ran, {} more through the CLI's resource \
         commands ({} deliveries: {} applied, {} ignored); no fixture or command here for: {}; Billfold's \
         own customer: {ours}",
        ran.len(),
        billfold::webhooks::event::HANDLED.len(),
        by_command.len(),
        deliveries.len(),
        applied.unwrap_or_default(),
        ignored.unwrap_or_default(),
        no_fixture.join(", ")
    );
    assert!(
        ran.len() + by_command.len() + no_fixture.len() + failed_triggers.len()
            == billfold::webhooks::event::HANDLED.len(),
        "every handled type was tried"
    );
    assert!(
        failed_triggers.is_empty(),
        "{} trigger(s) failed:\n{}",
        failed_triggers.len(),
        failed_triggers.join("\n")
    );
    app.stop().await;
}

async fn sim_object(app: &TestApp, path: &str) -> serde_json::Value {
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

crate::support::on_both_databases!(every_handled_event_type_triggers_through_stripes_own_cli,);
