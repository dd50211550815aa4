//! `billfold doctor` and `billfold portal apply`, against the Stripe double: a good setup
//! passes every check, and each check fails when its cause is set up.

use billfold::{
    auth::validate::{Email, Password},
    billing_file::BillingFile,
    commands::{
        catalog,
        doctor::{self, Check, Status},
        portal,
    },
    config::{Config, Secret},
    db::{
        clock::now,
        entities::{price, stripe_customer},
    },
    stripe_api::raw::Rest,
};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::support::{
    app::{unique_email, Backend, TestApp},
    billing::{sign_up_with_customer, subscribe_in_stripe},
};

async fn checks_at(app: &TestApp, rest: &Rest, clock: fn() -> i64) -> Vec<Check> {
    doctor::run(&app.state.config, &app.db, rest, clock).await
}

async fn checks(app: &TestApp) -> Vec<Check> {
    let rest = Rest::new(&app.state.config).expect("client");
    checks_at(app, &rest, now).await
}

fn status_of(checks: &[Check], name: &str) -> Status {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {}", doctor::format(checks)))
        .status
}

/// Asserts that exactly the named check fails (with a fix), and says so readably if not.
fn only_fails(checks: &[Check], name: &str) {
    let report = doctor::format(checks);
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name)
        .collect();
    assert_eq!(failed, [name], "{report}");
    assert!(checks
        .iter()
        .all(|c| c.status == Status::Pass || c.fix.is_some()));
    assert!(doctor::failed(checks));
}

/// The app with its catalogue loaded and one reconciler cycle behind it.
async fn good_setup(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("RECONCILE_EVERY", "5m")];
    env.extend_from_slice(extra);
    let app = TestApp::spawn_with(backend, &env).await;
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(100));
    while patience.another_try().await {
        if portal::catalogue_is_loaded(&app.db).await.expect("query") {
            break;
        }
    }
    let report = billfold::reconcile::run_cycle(&app.state)
        .await
        .expect("a cycle");
    assert!(report.succeeded());
    // An operator (an account made without a Stripe customer), granted on the server.
    billfold::auth::ssr::create_user(
        &app.db,
        &Email::parse(OPERATOR).expect("an email"),
        Password::parse("correct horse battery").expect("a password"),
        billfold::auth::ssr::Address::Proven,
    )
    .await
    .expect("the operator's account");
    let (ok, out) = app.cli(&["admin", "add", OPERATOR]);
    assert!(ok, "{out}");
    app
}

const OPERATOR: &str = "ops@billfold.test";

async fn post(rest: &Rest, path: &str, form: &[(&str, &str)]) -> Value {
    let form: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let answer = rest.post(path, &form).await.expect("request");
    assert!(answer.ok(), "{path}: {} {}", answer.status, answer.body);
    answer.body
}

async fn doctor_passes_a_good_setup_and_fails_each_broken_one(backend: Backend) {
    let app = good_setup(backend, &[]).await;
    let rest = Rest::new(&app.state.config).expect("client");
    let good = checks(&app).await;
    let report = doctor::format(&good);
    assert!(
        good.iter().all(|c| c.status == Status::Pass),
        "a good setup passes everything:\n{report}"
    );
    assert!(report.contains("0 failed"), "{report}");
    let operators = good
        .iter()
        .find(|c| c.name == "operators")
        .expect("an operators check");
    assert_eq!(operators.detail, format!("1: {OPERATOR}"), "{report}");

    // The clock: a minute off Stripe's.
    only_fails(&checks_at(&app, &rest, || now() + 60).await, "clock");

    // The key.
    let mut bad_key: Config = (*app.state.config).clone();
    bad_key.stripe.secret_key = Some(Secret::new("not-a-stripe-key"));
    let bad_rest = Rest::new(&bad_key).expect("client");
    let broken = doctor::run(&bad_key, &app.db, &bad_rest, now).await;
    assert_eq!(status_of(&broken, "stripe key"), Status::Fail);

    // The webhook endpoint: missing event types, disabled, on another API version.
    let endpoints = rest
        .list_all("webhook_endpoints", 100)
        .await
        .expect("endpoints");
    let ours = endpoints[0]["id"].as_str().expect("id").to_owned();
    let path = format!("webhook_endpoints/{ours}");
    post(&rest, &path, &[("enabled_events[0]", "invoice.paid")]).await;
    let broken = checks(&app).await;
    only_fails(&broken, "webhook endpoint");
    assert!(doctor::format(&broken).contains("customer.subscription.updated"));
    post(
        &rest,
        &path,
        &[("enabled_events[0]", "*"), ("disabled", "true")],
    )
    .await;
    only_fails(&checks(&app).await, "webhook endpoint");
    let url = billfold::stripe_api::webhook_url(&app.state.config);
    let old = post(
        &rest,
        "webhook_endpoints",
        &[
            ("url", url.as_str()),
            ("enabled_events[0]", "*"),
            ("api_version", "2024-06-20"),
        ],
    )
    .await;
    let broken = checks(&app).await;
    only_fails(&broken, "webhook endpoint");
    assert!(doctor::format(&broken).contains("2024-06-20"));
    post(
        &rest,
        &format!("webhook_endpoints/{}", old["id"].as_str().expect("id")),
        &[("disabled", "true")],
    )
    .await;
    post(&rest, &path, &[("disabled", "false")]).await;
    assert!(!doctor::failed(&checks(&app).await));

    // The portal configuration: each thing the page offers.
    let configurations = rest
        .list_all("billing_portal/configurations", 100)
        .await
        .expect("configurations");
    let default = configurations
        .iter()
        .find(|c| c["is_default"] == true)
        .expect("a default configuration");
    let path = format!(
        "billing_portal/configurations/{}",
        default["id"].as_str().expect("id")
    );
    for (field, check) in [
        (
            "features[payment_method_update][enabled]",
            "portal: payment method",
        ),
        (
            "features[subscription_cancel][enabled]",
            "portal: cancellation",
        ),
        (
            "features[subscription_update][enabled]",
            "portal: plan switching",
        ),
        (
            "features[invoice_history][enabled]",
            "portal: invoice history",
        ),
    ] {
        post(&rest, &path, &[(field, "false")]).await;
        only_fails(&checks(&app).await, check);
        post(&rest, &path, &[(field, "true")]).await;
    }
    post(
        &rest,
        &path,
        &[("features[subscription_cancel][mode]", "immediately")],
    )
    .await;
    only_fails(&checks(&app).await, "portal: cancellation");
    post(
        &rest,
        &path,
        &[("features[subscription_cancel][mode]", "at_period_end")],
    )
    .await;
    // The per-seat plan's seats: not adjustable, or adjustable beyond the catalogue's maximum.
    let team_at = default["features"]["subscription_update"]["products"]
        .as_array()
        .expect("products")
        .iter()
        .position(|p| p["product"] == "prod_team")
        .expect("Team in the portal");
    assert_eq!(
        status_of(&good, "portal: seats"),
        Status::Pass,
        "{}",
        doctor::format(&good)
    );
    let products = default["features"]["subscription_update"]["products"]
        .as_array()
        .expect("products")
        .clone();
    let resend = |seats: Option<(&'static str, &'static str)>| {
        let mut form: Vec<(String, String)> = Vec::new();
        for (i, p) in products.iter().enumerate() {
            let at = format!("features[subscription_update][products][{i}]");
            form.push((
                format!("{at}[product]"),
                p["product"].as_str().expect("id").into(),
            ));
            for (j, price) in p["prices"].as_array().expect("prices").iter().enumerate() {
                form.push((
                    format!("{at}[prices][{j}]"),
                    price.as_str().expect("id").into(),
                ));
            }
            let q = format!("{at}[adjustable_quantity]");
            match seats.filter(|_| i == team_at) {
                Some((min, max)) => {
                    form.push((format!("{q}[enabled]"), "true".into()));
                    form.push((format!("{q}[minimum]"), min.into()));
                    form.push((format!("{q}[maximum]"), max.into()));
                }
                None => form.push((format!("{q}[enabled]"), "false".into())),
            }
        }
        form
    };
    for seats in [None, Some(("1", "500"))] {
        let form = resend(seats);
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        post(&rest, &path, &pairs).await;
        let broken = checks(&app).await;
        only_fails(&broken, "portal: seats");
        assert!(
            doctor::format(&broken).contains("prod_team"),
            "{}",
            doctor::format(&broken)
        );
    }
    let form = resend(Some(("1", "50")));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    post(&rest, &path, &pairs).await;
    assert!(!doctor::failed(&checks(&app).await));

    post(&rest, &path, &[("active", "false")]).await;
    only_fails(&checks(&app).await, "portal configuration");
    post(&rest, &path, &[("active", "true")]).await;

    // A plan renamed in the Dashboard: the catalogue check names it, and applying the
    // catalogue puts it back.
    post(&rest, "products/prod_pro", &[("name", "Pro (old)")]).await;
    let broken = checks(&app).await;
    only_fails(&broken, "catalogue");
    assert!(doctor::format(&broken).contains("\"Pro (old)\" -> \"Pro\""));
    let account = catalog::read_account(&rest, &app.state.config.catalog)
        .await
        .expect("account");
    let steps = catalog::plan(&app.state.config.catalog, &account);
    catalog::execute(&rest, &app.state.config.catalog, &steps)
        .await
        .expect("apply");

    // A price the picker shows that Stripe does not have.
    let some = price::Entity::find()
        .filter(price::Column::Active.eq(true))
        .one(&app.db)
        .await
        .expect("query")
        .expect("a price");
    // The ghost takes the real price's lookup key, so it is the one the catalogue sells.
    price::Entity::insert(price::ActiveModel {
        id: Set("price_ghost".into()),
        ..price::ActiveModel::from(some.clone())
    })
    .exec(&app.db)
    .await
    .expect("ghost price");
    let unkeyed = |key: Option<String>| price::ActiveModel {
        id: Set(some.id.clone()),
        lookup_key: Set(key),
        ..Default::default()
    };
    price::Entity::update(unkeyed(None))
        .exec(&app.db)
        .await
        .expect("the real price without its key");
    let broken = checks(&app).await;
    assert_eq!(
        status_of(&broken, "prices"),
        Status::Fail,
        "{}",
        doctor::format(&broken)
    );
    assert_eq!(status_of(&broken, "portal: plan switching"), Status::Fail);
    price::Entity::delete_by_id("price_ghost")
        .exec(&app.db)
        .await
        .expect("delete");
    price::Entity::update(unkeyed(some.lookup_key.clone()))
        .exec(&app.db)
        .await
        .expect("the real price's key back");

    // Customers of the other mode only.
    let user = billfold::auth::ssr::create_user(
        &app.db,
        &billfold::auth::validate::Email::parse("mode@example.com").expect("email"),
        billfold::auth::validate::Password::parse("correct horse battery").expect("password"),
        billfold::auth::ssr::Address::Proven,
    )
    .await
    .expect("user");
    stripe_customer::Entity::insert(stripe_customer::ActiveModel {
        user_id: Set(user.id),
        livemode: Set(true),
        customer_id: Set("cus_live_one".into()),
        created_at: Set(now()),
        ..Default::default()
    })
    .exec(&app.db)
    .await
    .expect("live customer");
    only_fails(&checks(&app).await, "database mode");
    stripe_customer::Entity::delete_many()
        .filter(stripe_customer::Column::CustomerId.eq("cus_live_one"))
        .exec(&app.db)
        .await
        .expect("delete");

    // A migration not applied.
    Migrator::down(&app.db, Some(1)).await.expect("one down");
    only_fails(&checks(&app).await, "migrations");
    Migrator::up(&app.db, None).await.expect("up again");

    // No reconciler cycle for a day (seen from a clock a day on; the clock check fails too).
    let broken = checks_at(&app, &rest, || now() + 86_400).await;
    assert_eq!(status_of(&broken, "reconciler"), Status::Fail);

    assert!(!doctor::failed(&checks(&app).await), "all healed again");
    app.stop().await;
}

/// `portal apply` creates the configuration billing.toml describes, changes nothing the
/// second time, shows a field-by-field diff, and the double's portal obeys it.
async fn the_portal_is_configured_from_billing_toml(backend: Backend) {
    let app = good_setup(backend, &[]).await;
    let rest = Rest::new(&app.state.config).expect("client");
    let config = &app.state.config;
    let mut spec = BillingFile::load(&config.billing_file)
        .expect("billing.toml")
        .portal;
    let before = rest
        .list_all("billing_portal/configurations", 100)
        .await
        .expect("list")
        .len();

    let dry = portal::apply(&rest, config, &app.db, &spec, true)
        .await
        .expect("dry run");
    assert!(dry.id.is_none() && !dry.changes.is_empty());
    let listed = rest
        .list_all("billing_portal/configurations", 100)
        .await
        .expect("list");
    assert_eq!(listed.len(), before, "a dry run changes nothing");

    let made = portal::apply(&rest, config, &app.db, &spec, false)
        .await
        .expect("apply");
    assert!(made.created);
    let id = made.id.clone().expect("an id");
    let said = portal::format_applied(&made, false, false);
    assert!(
        said.contains(&format!("STRIPE_PORTAL_CONFIGURATION_ID={id}")),
        "{said}"
    );

    let again = portal::apply(&rest, config, &app.db, &spec, false)
        .await
        .expect("apply again");
    assert_eq!(again.id.as_deref(), Some(id.as_str()));
    assert!(again.changes.is_empty(), "idempotent: {:?}", again.changes);
    assert!(portal::format_applied(&again, false, true).contains("nothing to change"));

    let stored = rest
        .get(&format!("billing_portal/configurations/{id}"))
        .await
        .expect("get")
        .body;
    let f = &stored["features"];
    assert_eq!(f["subscription_cancel"]["mode"], "at_period_end");
    assert_eq!(
        f["subscription_update"]["proration_behavior"],
        "create_prorations"
    );
    assert_eq!(
        f["subscription_update"]["schedule_at_period_end"]["conditions"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let picker = portal::picker_plans(&app.db, &app.state.config)
        .await
        .expect("plans");
    assert_eq!(portal::switchable_plans(&stored), picker);
    // The per-seat plan lets customers choose its seats, within the catalogue's bounds.
    let team = f["subscription_update"]["products"]
        .as_array()
        .expect("products")
        .iter()
        .find(|p| p["product"] == "prod_team")
        .expect("Team");
    assert_eq!(
        team["adjustable_quantity"],
        serde_json::json!({"enabled": true, "minimum": 1, "maximum": 50})
    );
    assert!(f["subscription_update"]["default_allowed_updates"]
        .as_array()
        .expect("updates")
        .iter()
        .any(|u| u == "quantity"));
    let pro = f["subscription_update"]["products"]
        .as_array()
        .expect("products")
        .iter()
        .find(|p| p["product"] == "prod_pro")
        .expect("Pro");
    assert_eq!(pro["adjustable_quantity"]["enabled"], false);

    // Cancellation turned off in the file: the diff names the field, and the portal the app
    // opens (now this configuration) has no cancel button.
    spec.cancellation.enabled = false;
    let dry = portal::apply(&rest, config, &app.db, &spec, true)
        .await
        .expect("dry run");
    assert_eq!(
        dry.changes,
        vec![(
            "features.subscription_cancel.enabled".to_owned(),
            "true".to_owned(),
            "false".to_owned()
        )]
    );
    portal::apply(&rest, config, &app.db, &spec, false)
        .await
        .expect("apply");

    let (_, customer) = sign_up_with_customer(&app).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    subscribe_in_stripe(&stripe, &customer, 900).await;
    let session = post(
        &rest,
        "billing_portal/sessions",
        &[
            ("customer", customer.as_str()),
            ("configuration", id.as_str()),
        ],
    )
    .await;
    let page = reqwest::get(session["url"].as_str().expect("url"))
        .await
        .expect("portal page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Update plan"), "plan switching is on");
    assert!(!page.contains("Cancel plan"), "cancellation is off");

    // With the app pointed at it, the doctor sees the page's "Cancel plan" has nowhere to go.
    let mut pointed: Config = (**config).clone();
    pointed.stripe.portal_configuration_id = Some(id.clone());
    let checked = doctor::run(&pointed, &app.db, &rest, now).await;
    only_fails(&checked, "portal: cancellation");
    app.stop().await;
}

crate::support::on_both_databases!(
    doctor_passes_a_good_setup_and_fails_each_broken_one,
    the_portal_is_configured_from_billing_toml,
);

/// The customers the database holds are checked against the key: one Stripe does not know
/// (a key of another account than the one they were made in) fails the doctor, with a fix.
async fn doctor_fails_on_a_stored_customer_the_account_does_not_know(backend: Backend) {
    let app = good_setup(backend, &[]).await;
    let email = unique_email();
    assert_eq!(
        app.sign_up(&email, "correct horse battery").await.status(),
        302
    );
    let good = checks(&app).await;
    assert_eq!(
        status_of(&good, "stripe customers"),
        Status::Pass,
        "{}",
        doctor::format(&good)
    );

    let user = billfold::auth::ssr::create_user(
        &app.db,
        &billfold::auth::validate::Email::parse("elsewhere@example.com").expect("email"),
        billfold::auth::validate::Password::parse("correct horse battery").expect("password"),
        billfold::auth::ssr::Address::Proven,
    )
    .await
    .expect("user");
    stripe_customer::Entity::insert(stripe_customer::ActiveModel {
        user_id: Set(user.id),
        livemode: Set(false),
        customer_id: Set("cus_MadeInAnotherAccount".into()),
        created_at: Set(now() + 1),
        ..Default::default()
    })
    .exec(&app.db)
    .await
    .expect("a customer of another account");
    let broken = checks(&app).await;
    only_fails(&broken, "stripe customers");
    assert!(
        doctor::format(&broken).contains("cus_MadeInAnotherAccount"),
        "{}",
        doctor::format(&broken)
    );

    // Customers Stripe deleted are not sampled.
    stripe_customer::Entity::update_many()
        .col_expr(
            stripe_customer::Column::Deleted,
            sea_orm::sea_query::Expr::value(true),
        )
        .filter(stripe_customer::Column::CustomerId.eq("cus_MadeInAnotherAccount"))
        .exec(&app.db)
        .await
        .expect("marked deleted");
    assert!(!doctor::failed(&checks(&app).await));
    app.stop().await;
}

crate::support::on_both_databases!(doctor_fails_on_a_stored_customer_the_account_does_not_know);

crate::support::on_both_databases!(commits_that_could_be_lost_fail_the_doctor);

/// A webhook is answered after its commit and never sent again: a database that may lose an
/// answered commit fails the doctor, naming the setting.
async fn commits_that_could_be_lost_fail_the_doctor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let check = doctor::check_durability(&app.db).await;
    assert_eq!(check.status, Status::Pass, "{check:?}");
    let url = app.state.config.database_url.expose().to_owned();
    let lax = match backend {
        Backend::Sqlite => {
            let mut options = sea_orm::ConnectOptions::new(url);
            options.max_connections(1).min_connections(1);
            let lax = sea_orm::Database::connect(options)
                .await
                .expect("a connection");
            lax.execute_unprepared("PRAGMA synchronous = OFF")
                .await
                .expect("pragma");
            lax
        }
        Backend::Postgres => {
            let name = url
                .rsplit('/')
                .next()
                .and_then(|tail| tail.split('?').next())
                .expect("a database name")
                .to_owned();
            app.db
                .execute_unprepared(&format!(
                    "ALTER DATABASE \"{name}\" SET synchronous_commit = off"
                ))
                .await
                .expect("alter database");
            // New connections take the database's setting.
            sea_orm::Database::connect(url.as_str())
                .await
                .expect("a connection")
        }
    };
    let check = doctor::check_durability(&lax).await;
    assert_eq!(check.status, Status::Fail, "{check:?}");
    let said = format!("{} {}", check.detail, check.fix.unwrap_or_default());
    assert!(
        said.contains(match backend {
            Backend::Sqlite => "synchronous",
            Backend::Postgres => "synchronous_commit = off",
        }),
        "{said}"
    );
    lax.close().await.expect("close");
    app.stop().await;
}
