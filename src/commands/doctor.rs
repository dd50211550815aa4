//! `billfold doctor`: the deployment checked against the Stripe account it is configured for.
//! One line per check (pass, warn or fail), and for each problem the fix in one sentence. It
//! reads and never writes, and exits non-zero when a check fails.

use std::collections::BTreeSet;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    sea_query::{Expr, Order},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde_json::Value;

use super::portal;
use crate::billing_file::{BillingFile, PortalSpec};
use crate::{
    config::{Config, StripeMode},
    db::entities::stripe_customer,
    stripe_api::raw::Rest,
    webhooks::event::HANDLED,
};

/// How far the server's clock may be from Stripe's.
const CLOCK_TOLERANCE_SECS: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// For a problem: what to do, in one sentence.
    pub fix: Option<String>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn problem(
    name: &'static str,
    status: Status,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    problem(name, Status::Fail, detail, fix)
}

fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    problem(name, Status::Warn, detail, fix)
}

/// Runs every check. `now` is the server's clock (unix seconds).
pub async fn run(
    config: &Config,
    db: &DatabaseConnection,
    rest: &Rest,
    now: impl Fn() -> i64,
) -> Vec<Check> {
    let mut checks = Vec::new();
    // The key first: without it, the other Stripe checks would only repeat its failure.
    let key = check_key(config, rest, &now).await;
    let key_works = key.iter().all(|c| c.status != Status::Fail);
    checks.extend(key);
    checks.push(check_database_mode(config, db).await);
    checks.push(check_durability(db).await);
    let migrations = check_migrations(db).await;
    // Likewise an old schema: the checks that read what later migrations added would only
    // repeat that the migrations are pending.
    let schema_current = migrations.status == Status::Pass;
    checks.push(migrations);
    if schema_current {
        checks.push(check_operators(db).await);
    }
    if key_works {
        if schema_current {
            checks.push(check_customers(config, db, rest).await);
        }
        checks.push(check_webhook_endpoint(config, rest).await);
        let mut portal = check_portal(config, db, rest).await;
        if !schema_current {
            // Plan switching compares the prices for sale, which need the current schema.
            portal.retain(|c| c.name != "portal: plan switching");
        }
        checks.extend(portal);
        checks.push(check_catalog(config, rest).await);
        if schema_current {
            checks.push(check_prices(config, db, rest).await);
        }
    }
    if schema_current {
        checks.push(check_reconciler(config, db, now()).await);
        checks.push(check_refused_events(db).await);
    }
    checks
}

/// Whether any check failed.
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

/// The report: one line per check, the fix indented under a problem.
pub fn format(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!("{tag}  {:<26} {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      {:<26} fix: {fix}\n", ""));
        }
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    out.push_str(&format!(
        "{} passed, {} warned, {} failed\n",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail)
    ));
    out
}

/// The key answers, and Stripe's clock agrees with ours.
async fn check_key(config: &Config, rest: &Rest, now: &impl Fn() -> i64) -> Vec<Check> {
    let mode = match config.stripe.mode {
        StripeMode::Live => "live",
        StripeMode::Test => "test",
        StripeMode::Simulated => "simulated",
    };
    let asked_at = now();
    let answer = match rest.get("customers?limit=1").await {
        Ok(a) => a,
        Err(e) => {
            return vec![fail(
                "stripe key",
                format!("Stripe could not be reached: {e}"),
                "Check the network path to Stripe (or STRIPE_API_BASE) from this machine.",
            )]
        }
    };
    let key = match answer.status {
        200 => pass("stripe key", format!("answers ({mode} mode)")),
        401 => {
            return vec![fail(
                "stripe key",
                format!("Stripe refused the key: {}", answer.error_message()),
                "Set STRIPE_SECRET_KEY to a secret or restricted key of this account \
                 (Dashboard, Developers, API keys).",
            )]
        }
        403 => {
            return vec![fail(
                "stripe key",
                format!("the key may not read customers: {}", answer.error_message()),
                "Give the restricted key read and write access to Customers, Subscriptions, \
                 Checkout, Customer Portal, Invoices, Prices and Products.",
            )]
        }
        other => {
            return vec![fail(
                "stripe key",
                format!("Stripe answered {other}: {}", answer.error_message()),
                "Try again; if it persists, check Stripe's status page.",
            )]
        }
    };
    let clock = match answer.date {
        None => warn(
            "clock",
            "Stripe's answer carried no Date header",
            "Nothing to do unless webhook signatures are refused as too old.",
        ),
        Some(theirs) => {
            let skew = asked_at - theirs;
            if skew.abs() < CLOCK_TOLERANCE_SECS {
                pass("clock", format!("within {}s of Stripe's", skew.abs()))
            } else {
                fail(
                    "clock",
                    format!(
                        "{}s {} Stripe's",
                        skew.abs(),
                        if skew > 0 { "ahead of" } else { "behind" }
                    ),
                    "Synchronise this machine's clock (NTP): webhook signatures are checked \
                     against it.",
                )
            }
        }
    };
    vec![key, clock]
}

/// The database holds customers of the key's mode (or none yet).
async fn check_database_mode(config: &Config, db: &DatabaseConnection) -> Check {
    let livemode = config.stripe.mode.livemode();
    // Only the one column, so an older schema still answers.
    let count = |live: bool| {
        stripe_customer::Entity::find()
            .select_only()
            .column(stripe_customer::Column::Livemode)
            .filter(stripe_customer::Column::Livemode.eq(live))
            .count(db)
    };
    let (ours, theirs) = match (count(livemode).await, count(!livemode).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return fail(
                "database mode",
                format!("cannot read the customers: {e}"),
                "Check DATABASE_URL and run `billfold migrate`.",
            )
        }
    };
    let (mine, other) = if livemode {
        ("live", "test")
    } else {
        ("test", "live")
    };
    match (ours, theirs) {
        (0, 0) => pass("database mode", "no customers yet"),
        (_, 0) => pass("database mode", format!("{ours} {mine}-mode customers")),
        (0, _) => fail(
            "database mode",
            format!("the database holds {theirs} {other}-mode customers and none of the key's {mine} mode"),
            format!("Use the {other}-mode key with this database, or give {mine} mode a database of its own."),
        ),
        _ => warn(
            "database mode",
            format!("{ours} {mine}-mode and {theirs} {other}-mode customers in one database"),
            "Keep test and live data in separate databases.",
        ),
    }
}

/// A webhook is answered 2xx only after the commit that holds its effects, and Stripe never
/// sends an answered event again: so that commit must survive a crash. SQLite syncs its log on
/// every commit (`synchronous=FULL`, set on each connection by the pool); PostgreSQL does with
/// `fsync` on and `synchronous_commit` anything but `off` (`local`, `on`, `remote_write` and
/// `remote_apply` all flush the local log first).
pub async fn check_durability(db: &DatabaseConnection) -> Check {
    const NAME: &str = "durable commits";
    let read = |sql: &'static str| async move {
        db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .map(|row| row.and_then(|r| r.try_get_by_index::<String>(0).ok()))
    };
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            let level = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "PRAGMA synchronous",
                ))
                .await
                .map(|row| row.and_then(|r| r.try_get_by_index::<i64>(0).ok()));
            match level {
                // 2 is FULL, 3 EXTRA.
                Ok(Some(level)) if level >= 2 => pass(NAME, "SQLite syncs its log on every commit"),
                Ok(level) => fail(
                    NAME,
                    format!("SQLite's synchronous is {level:?}, not FULL: an answered webhook can be lost in a power cut"),
                    "Open the database only through Billfold's pool (it sets synchronous=FULL).",
                ),
                Err(e) => fail(NAME, format!("cannot read PRAGMA synchronous: {e}"), "Check DATABASE_URL."),
            }
        }
        DbBackend::Postgres => match (
            read("SHOW fsync").await,
            read("SHOW synchronous_commit").await,
        ) {
            (Ok(Some(fsync)), Ok(Some(commit))) => {
                if fsync != "on" {
                    fail(
                        NAME,
                        format!("PostgreSQL runs with fsync = {fsync}: a crash can lose commits, and Stripe will not resend events already answered"),
                        "Set fsync = on in postgresql.conf.",
                    )
                } else if commit == "off" {
                    fail(
                        NAME,
                        "synchronous_commit = off: PostgreSQL answers a commit before its log is on disk, so a crash can lose webhooks already answered 2xx (Stripe will not resend them)",
                        "Set synchronous_commit = on (or local) for Billfold's database: ALTER DATABASE … SET synchronous_commit = on.",
                    )
                } else {
                    pass(NAME, format!("PostgreSQL flushes its log before a commit returns (synchronous_commit = {commit})"))
                }
            }
            (Err(e), _) | (_, Err(e)) => fail(
                NAME,
                format!("cannot read the settings: {e}"),
                "Check DATABASE_URL.",
            ),
            _ => fail(
                NAME,
                "PostgreSQL did not say its fsync and synchronous_commit",
                "Check DATABASE_URL.",
            ),
        },
        other => warn(
            NAME,
            format!("{other:?} is not a database Billfold knows"),
            "Use SQLite or PostgreSQL.",
        ),
    }
}

/// How many of the database's customers are looked up in Stripe.
const CUSTOMERS_SAMPLED: u64 = 5;

/// A few of the database's customers (this mode's, not deleted, picked at random) are in the
/// key's account. A key of another account answers `resource_missing` for every one of them,
/// and Billfold then refuses its users' billing rather than give them new, empty customers.
async fn check_customers(config: &Config, db: &DatabaseConnection, rest: &Rest) -> Check {
    const NAME: &str = "stripe customers";
    use stripe_customer::Column as C;
    // Only the one column, so an older schema still answers.
    let sampled: Result<Vec<String>, _> = stripe_customer::Entity::find()
        .select_only()
        .column(C::CustomerId)
        .filter(C::Livemode.eq(config.stripe.mode.livemode()))
        .filter(C::Deleted.eq(false))
        .order_by(Expr::cust("RANDOM()"), Order::Asc)
        .limit(CUSTOMERS_SAMPLED)
        .into_tuple()
        .all(db)
        .await;
    let sampled = match sampled {
        Ok(ids) if ids.is_empty() => return pass(NAME, "no customers to look up yet"),
        Ok(ids) => ids,
        Err(e) => {
            return fail(
                NAME,
                format!("cannot read the customers: {e}"),
                "Check DATABASE_URL and run `billfold migrate`.",
            )
        }
    };
    let mut unknown = Vec::new();
    for id in &sampled {
        match rest.get(&format!("customers/{id}")).await {
            Ok(a) if a.ok() => {}
            Ok(a) if a.status == 404 => unknown.push(id.as_str()),
            Ok(a) => {
                return fail(
                    NAME,
                    format!(
                        "Stripe answered {} for {id}: {}",
                        a.status,
                        a.error_message()
                    ),
                    "Try again; if it persists, check Stripe's status page.",
                )
            }
            Err(e) => {
                return fail(
                    NAME,
                    format!("Stripe could not be reached: {e}"),
                    "Try again.",
                )
            }
        }
    }
    if unknown.is_empty() {
        return pass(
            NAME,
            format!("the {} sampled are in this account", sampled.len()),
        );
    }
    fail(
        NAME,
        format!(
            "{} of the {} sampled are not in this Stripe account (not even deleted): {}",
            unknown.len(),
            sampled.len(),
            unknown.join(", ")
        ),
        "Set STRIPE_SECRET_KEY to a key of the account these customers were made in (their \
         users cannot open billing until then), or give this account a database of its own.",
    )
}

async fn check_migrations(db: &DatabaseConnection) -> Check {
    match Migrator::get_pending_migrations(db).await {
        Ok(pending) if pending.is_empty() => pass("migrations", "the schema is current"),
        Ok(pending) => fail(
            "migrations",
            format!(
                "{} pending: {}",
                pending.len(),
                pending
                    .iter()
                    .map(|m| m.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "Run `billfold migrate` (the app also migrates when it starts).",
        ),
        Err(e) => fail(
            "migrations",
            format!("cannot read the migration table: {e}"),
            "Check DATABASE_URL.",
        ),
    }
}

/// Who may open `/admin/billing`: listed, so an operator sees who else holds the keys.
async fn check_operators(db: &DatabaseConnection) -> Check {
    match crate::admin::operators::list(db).await {
        Ok(operators) if operators.is_empty() => warn(
            "operators",
            "nobody may open /admin/billing",
            "Grant an existing account: `billfold admin add EMAIL`.",
        ),
        Ok(operators) => pass(
            "operators",
            format!(
                "{}: {}",
                operators.len(),
                operators
                    .iter()
                    .map(|o| o.email.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => warn(
            "operators",
            format!("cannot read the operators: {e}"),
            "Run `billfold migrate`, then `billfold admin list`.",
        ),
    }
}

/// No event is left unapplied because Stripe refused a request it needs in a way no retry
/// changes (a restricted key without a permission): those wait for the key to be fixed and
/// a replay. Events set aside for other reasons are a warning.
async fn check_refused_events(db: &DatabaseConnection) -> Check {
    const NAME: &str = "events refused by Stripe";
    match crate::webhooks::history::attention(db).await {
        Ok(a) if a.refused_by_stripe > 0 => fail(
            NAME,
            format!(
                "{} event(s) not applied: Stripe refused a request they need (see /admin/billing?outcome=failed)",
                a.refused_by_stripe
            ),
            "fix the key's permissions, then `billfold webhooks replay --outcome failed`",
        ),
        Ok(a) if a.set_aside > 0 => warn(
            NAME,
            format!(
                "none, but {} event(s) set aside by the reconciler after failing again and again",
                a.set_aside
            ),
            "See /admin/billing?outcome=set_aside for why; fix that, then `billfold webhooks replay --outcome set_aside`.",
        ),
        Ok(_) => pass(NAME, "none: every event Stripe sent could be applied"),
        Err(e) => warn(
            NAME,
            format!("cannot read the events: {e}"),
            "Run `billfold migrate`, then `billfold doctor` again.",
        ),
    }
}

/// An enabled endpoint for this app, on the pinned version, with every handled event type.
async fn check_webhook_endpoint(config: &Config, rest: &Rest) -> Check {
    const NAME: &str = "webhook endpoint";
    let url = crate::stripe_api::webhook_url(config);
    let pinned = stripe_shared::version::VERSION.as_str();
    let endpoints = match rest.list_all("webhook_endpoints", 1_000).await {
        Ok(e) => e,
        Err(e) => {
            return fail(
                NAME,
                format!("cannot list the endpoints: {e:#}"),
                "Give the key read access to Webhook Endpoints.",
            )
        }
    };
    let create = format!(
        "In Stripe (Dashboard, Developers, Webhooks) add an endpoint for {url} on API version \
         {pinned} with the events Billfold handles, and set STRIPE_WEBHOOK_SECRET to its secret."
    );
    let Some(endpoint) = endpoints
        .iter()
        .filter(|e| e["url"].as_str() == Some(url.as_str()))
        .max_by_key(|e| e["status"].as_str() == Some("enabled"))
    else {
        return fail(NAME, format!("no endpoint for {url}"), create);
    };
    let id = endpoint["id"].as_str().unwrap_or("?");
    if endpoint["status"].as_str() != Some("enabled") {
        return fail(
            NAME,
            format!("{id} for {url} is disabled"),
            format!("Enable {id} in Stripe (Dashboard, Developers, Webhooks)."),
        );
    }
    let enabled: BTreeSet<&str> = endpoint["enabled_events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let missing: Vec<&str> = if enabled.contains("*") {
        vec![]
    } else {
        HANDLED
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| !enabled.contains(t))
            .collect()
    };
    if !missing.is_empty() {
        return fail(
            NAME,
            format!(
                "{id} does not send {} event type(s): {}",
                missing.len(),
                missing.join(", ")
            ),
            format!("Add those event types to {id} in Stripe (Dashboard, Developers, Webhooks)."),
        );
    }
    let version = endpoint["api_version"]
        .as_str()
        .unwrap_or("the account default");
    if version != pinned {
        return fail(
            NAME,
            format!("{id} is on API version {version}, Billfold on {pinned}"),
            format!(
                "Add an endpoint on API version {pinned} (Stripe cannot change an endpoint's \
                 version), move STRIPE_WEBHOOK_SECRET to its secret, then delete {id}; until \
                 then every event costs an API read."
            ),
        );
    }
    pass(
        NAME,
        format!("{id} for {url}, {pinned}, every handled event type"),
    )
}

/// The portal configuration the app opens: exists, active, and allows what the page offers.
async fn check_portal(config: &Config, db: &DatabaseConnection, rest: &Rest) -> Vec<Check> {
    let spec: Option<PortalSpec> = BillingFile::load(&config.billing_file)
        .ok()
        .map(|f| f.portal);
    let apply = if config.stripe.portal_configuration_id.is_some() {
        "Run `billfold portal apply` (it configures the portal from billing.toml)."
    } else {
        "Run `billfold portal apply` (it configures a portal from billing.toml) and set \
         STRIPE_PORTAL_CONFIGURATION_ID to the id it prints; the account's default is open now."
    };
    let configuration = match &config.stripe.portal_configuration_id {
        Some(id) => match rest.get(&format!("billing_portal/configurations/{id}")).await {
            Ok(a) if a.ok() => a.body,
            Ok(a) => {
                return vec![fail(
                    "portal configuration",
                    format!("STRIPE_PORTAL_CONFIGURATION_ID={id}: {}", a.error_message()),
                    format!("Set STRIPE_PORTAL_CONFIGURATION_ID to a configuration of this account, or unset it. {apply}"),
                )]
            }
            Err(e) => {
                return vec![fail(
                    "portal configuration",
                    format!("cannot read {id}: {e}"),
                    "Try again.",
                )]
            }
        },
        None => match rest.list_all("billing_portal/configurations", 1_000).await {
            Ok(all) => match all.into_iter().find(|c| c["is_default"].as_bool() == Some(true)) {
                Some(c) => c,
                None => {
                    return vec![fail(
                        "portal configuration",
                        "the account has no default portal configuration",
                        apply,
                    )]
                }
            },
            Err(e) => {
                return vec![fail(
                    "portal configuration",
                    format!("cannot list the configurations: {e:#}"),
                    "Give the key read access to Customer Portal.",
                )]
            }
        },
    };
    let id = configuration["id"].as_str().unwrap_or("?").to_owned();
    let f = &configuration["features"];
    let on = |v: &Value| v.as_bool() == Some(true);
    let mut checks = Vec::new();
    if !on(&configuration["active"]) {
        checks.push(fail(
            "portal configuration",
            format!("{id} is not active"),
            apply,
        ));
        return checks;
    }
    checks.push(pass("portal configuration", format!("{id} is active")));

    checks.push(if on(&f["payment_method_update"]["enabled"]) {
        pass("portal: payment method", "customers can update their card")
    } else {
        fail(
            "portal: payment method",
            format!("{id} does not let customers update their payment method (the page's \"Update payment method\")"),
            apply,
        )
    });

    let cancel_mode = f["subscription_cancel"]["mode"].as_str().unwrap_or("?");
    let wanted_mode = spec
        .as_ref()
        .map(|s| s.cancellation.mode.as_str())
        .unwrap_or("at_period_end");
    checks.push(if !on(&f["subscription_cancel"]["enabled"]) {
        fail(
            "portal: cancellation",
            format!("{id} does not let customers cancel (the page's \"Cancel plan\")"),
            apply,
        )
    } else if cancel_mode != wanted_mode {
        fail(
            "portal: cancellation",
            format!("{id} cancels {cancel_mode}, billing.toml says {wanted_mode}"),
            apply,
        )
    } else {
        pass("portal: cancellation", format!("cancels {cancel_mode}"))
    });

    let plans = portal::picker_plans(db, config).await;
    let mut seats = None;
    checks.push(match plans {
        Err(e) => fail(
            "portal: plan switching",
            format!("{e:#}"),
            "Check DATABASE_URL.",
        ),
        Ok(_) if !on(&f["subscription_update"]["enabled"]) => fail(
            "portal: plan switching",
            format!("{id} does not let customers switch plans (the page's \"Change plan\")"),
            apply,
        ),
        Ok(plans) => {
            let allowed = portal::switchable_plans(&configuration);
            let missing: Vec<String> = plans
                .iter()
                .flat_map(|(product, p)| {
                    p.prices
                        .iter()
                        .filter(|p| !allowed.get(product).is_some_and(|a| a.prices.contains(*p)))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect();
            seats = seats_check(&id, &plans, &allowed, &f["subscription_update"], apply);
            if missing.is_empty() {
                let n: usize = plans.values().map(|p| p.prices.len()).sum();
                pass(
                    "portal: plan switching",
                    format!("between all {n} prices the plan picker shows"),
                )
            } else {
                fail(
                    "portal: plan switching",
                    format!(
                        "{id} cannot switch to {} price(s) the picker shows: {}",
                        missing.len(),
                        missing.join(", ")
                    ),
                    apply,
                )
            }
        }
    });

    checks.extend(seats);
    checks.push(if on(&f["invoice_history"]["enabled"]) {
        pass("portal: invoice history", "shown")
    } else {
        fail(
            "portal: invoice history",
            format!("{id} hides the invoice history the page links to"),
            apply,
        )
    });
    checks
}

/// A plan priced per seat lets its customers choose the seats the catalogue allows in the
/// portal, and no other plan lets them buy several units. `None` when switching is off or no
/// plan is priced per seat and none is adjustable (nothing to say).
fn seats_check(
    id: &str,
    plans: &portal::Plans,
    allowed: &portal::Plans,
    update: &serde_json::Value,
    apply: &str,
) -> Option<Check> {
    const NAME: &str = "portal: seats";
    let quantity_allowed = update["default_allowed_updates"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "quantity"));
    let mut wrong = Vec::new();
    for (product, want) in plans {
        let have = allowed.get(product).and_then(|p| p.seats);
        let have = have.filter(|_| quantity_allowed);
        if have != want.seats {
            let say = |s: Option<crate::billing_file::Seats>| {
                s.map_or_else(
                    || "not adjustable".to_owned(),
                    |s| format!("{} seats", s.bounds()),
                )
            };
            wrong.push(format!(
                "{product}: {} (billing.toml: {})",
                say(have),
                say(want.seats)
            ));
        }
    }
    let per_seat = plans.values().filter(|p| p.seats.is_some()).count();
    if wrong.is_empty() {
        (per_seat > 0).then(|| {
            pass(
                NAME,
                format!("the {per_seat} per-seat plan(s) let customers choose their seats within the catalogue's bounds"),
            )
        })
    } else {
        Some(fail(
            NAME,
            format!(
                "{id} lets customers choose quantities billing.toml does not: {}",
                wrong.join("; ")
            ),
            apply,
        ))
    }
}

/// Every price the picker shows is an active price in Stripe.
/// The account sells what billing.toml's catalogue says: the steps `billfold catalog apply`
/// would take, if any, are the differences.
async fn check_catalog(config: &Config, rest: &Rest) -> Check {
    const NAME: &str = "catalogue";
    let account = match super::catalog::read_account(rest, &config.catalog).await {
        Ok(a) => a,
        Err(e) => {
            return fail(
                NAME,
                format!("cannot read the account's products and prices: {e:#}"),
                "Give the key read access to Products and Prices.",
            )
        }
    };
    let steps = super::catalog::plan(&config.catalog, &account);
    if steps.is_empty() {
        let prices: usize = config.catalog.plans.iter().map(|p| p.prices.len()).sum();
        return pass(
            NAME,
            format!(
                "Stripe sells the {} plans and {prices} prices of billing.toml",
                config.catalog.plans.len()
            ),
        );
    }
    let shown: Vec<String> = steps.iter().take(5).map(|s| s.describe()).collect();
    let more = steps.len().saturating_sub(shown.len());
    fail(
        NAME,
        format!(
            "Stripe differs from billing.toml in {} place(s): {}{}",
            steps.len(),
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ),
        "Run `billfold catalog apply --dry-run` to see the changes, then `billfold catalog apply`.",
    )
}

async fn check_prices(config: &Config, db: &DatabaseConnection, rest: &Rest) -> Check {
    const NAME: &str = "prices";
    let plans = match portal::picker_plans(db, config).await {
        Ok(p) => p,
        Err(e) => return fail(NAME, format!("{e:#}"), "Check DATABASE_URL."),
    };
    let shown: BTreeSet<String> = portal::PortalProduct::all_prices(&plans);
    if shown.is_empty() {
        return warn(
            NAME,
            "the plan picker shows no prices (none of the account's prices is one the catalogue sells)",
            "Run `billfold catalog apply` (it makes billing.toml's plans in Stripe); the app loads them at start.",
        );
    }
    let active: BTreeSet<String> = match rest.list_all("prices?active=true", 10_000).await {
        Ok(all) => all
            .into_iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect(),
        Err(e) => {
            return fail(
                NAME,
                format!("cannot list Stripe's prices: {e:#}"),
                "Give the key read access to Prices.",
            )
        }
    };
    let unknown: Vec<&String> = shown.difference(&active).collect();
    if unknown.is_empty() {
        pass(
            NAME,
            format!(
                "all {} prices the picker shows are active in Stripe",
                shown.len()
            ),
        )
    } else {
        fail(
            NAME,
            format!(
                "the picker shows {} price(s) Stripe does not have active: {}",
                unknown.len(),
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "Run `billfold sync --all` so the catalogue matches Stripe (and check the webhook \
             endpoint sends price and product events).",
        )
    }
}

/// The reconciler finished a whole cycle recently (on any replica).
async fn check_reconciler(config: &Config, db: &DatabaseConnection, now: i64) -> Check {
    const NAME: &str = "reconciler";
    let Some(every) = config.reconcile_every else {
        return warn(
            NAME,
            "turned off (RECONCILE_EVERY=0)",
            "Unset RECONCILE_EVERY (or set e.g. 5m) so drift and missed events heal by themselves.",
        );
    };
    let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
    match crate::reconcile::last_success(db).await {
        Err(e) => fail(NAME, format!("cannot read its state: {e}"), "Check DATABASE_URL."),
        Ok(None) => warn(
            NAME,
            "no cycle has finished yet",
            "Start the app and wait one RECONCILE_EVERY, or run `billfold reconcile`.",
        ),
        Ok(Some(at)) if now - at <= 2 * every + 60 => {
            pass(NAME, format!("last whole cycle {}s ago", now - at))
        }
        Ok(Some(at)) => fail(
            NAME,
            format!(
                "last whole cycle {}s ago, expected every {every}s",
                now - at
            ),
            "Check that the app is running and its log for reconciler errors; `billfold reconcile` runs one now.",
        ),
    }
}
