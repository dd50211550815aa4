//! Fills a migrated Billfold database with a big, realistic population in bulk: for each of
//! `customers` people an account with its personal organisation and owner membership, a Stripe
//! customer, a subscription (mostly active; some trialing, past due, cancelling or ended), a
//! default card, `invoices_per_customer` invoices, and the entitlement row; and `events`
//! recorded webhook events. The rows are the ones the app's writers make (the same columns,
//! values and links), written with set-based `INSERT … SELECT` statements over a number series,
//! so a million customers take minutes, not hours. Used by `examples/fill_db.rs` and by the
//! webhook benchmark (`--rows`).
//!
//! The recorded events carry a short payload (the envelope and the object's id), not a whole
//! object: the table's row count and indexes are what a big installation has, its bytes are not.

use std::time::Instant;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};

/// What to add.
pub struct Fill {
    pub customers: u64,
    pub invoices_per_customer: u64,
    pub events: u64,
}

/// Rows per statement: each chunk is one transaction on its own.
const CHUNK: u64 = 200_000;

/// A fixed Argon2id hash (of a password nobody knows): filled accounts exist, nobody signs in
/// as them.
const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZmlsbGVkLWFjY291bnQ$\
                             mJ1Ut0qDdIv1v0HtFvXLJQf4lYbqjZ5oM3r7a6H0t0c";

/// The plan the filled subscriptions are on: the cheapest active recurring price the database
/// knows, else a stand-in.
struct Plan {
    price_id: String,
    product_id: String,
    product_name: String,
    unit_amount: i64,
    currency: String,
    interval: String,
}

async fn plan(db: &DatabaseConnection) -> Result<Plan, String> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id, product_id, product_name, unit_amount, currency, interval FROM prices \
             WHERE active AND interval IS NOT NULL AND unit_amount IS NOT NULL \
             ORDER BY unit_amount, id LIMIT 1",
        ))
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = row else {
        return Ok(Plan {
            price_id: "price_bench".into(),
            product_id: "prod_bench".into(),
            product_name: "Pro".into(),
            unit_amount: 2000,
            currency: "usd".into(),
            interval: "month".into(),
        });
    };
    let text = |i: usize| row.try_get_by_index::<String>(i).map_err(|e| e.to_string());
    Ok(Plan {
        price_id: text(0)?,
        product_id: text(1)?,
        product_name: text(2)?,
        unit_amount: row.try_get_by_index::<i64>(3).map_err(|e| e.to_string())?,
        currency: text(4)?,
        interval: text(5)?,
    })
}

/// `'…'` with quotes doubled: the plan's values come from the database, not from a stranger,
/// but a name may hold a quote.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A number series `seq(i)` from `lo` to `hi` inclusive, as each backend makes one best.
fn series(backend: DatabaseBackend, lo: u64, hi: u64) -> (String, String) {
    match backend {
        DatabaseBackend::Postgres => (String::new(), format!("generate_series({lo}, {hi}) AS seq(i)")),
        _ => (
            format!("WITH RECURSIVE seq(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM seq WHERE i < {hi}) "),
            "seq".into(),
        ),
    }
}

async fn max_id(db: &DatabaseConnection, table: &str) -> Result<u64, String> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM {table}"),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let max = row
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0);
    Ok(u64::try_from(max).unwrap_or(0))
}

async fn exec(db: &DatabaseConnection, sql: String) -> Result<(), String> {
    db.execute_unprepared(&sql)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e}\n  in: {}", &sql[..sql.len().min(300)]))
}

/// Runs `make(lo, hi)`'s statement for every chunk of `1..=total`, printing the rate.
async fn chunked(
    db: &DatabaseConnection,
    what: &str,
    total: u64,
    make: impl Fn(u64, u64) -> String,
) -> Result<(), String> {
    let started = Instant::now();
    let mut lo = 1;
    while lo <= total {
        let hi = (lo + CHUNK - 1).min(total);
        exec(db, make(lo, hi)).await?;
        lo = hi + 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  {what:<22} {total:>11} rows in {secs:>7.1} s ({:.0} rows/s)",
        total as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Adds the population; returns nothing but prints each table's rows and time.
pub async fn fill(db: &DatabaseConnection, f: &Fill) -> Result<(), String> {
    let backend = db.get_database_backend();
    let plan = plan(db).await?;
    let now = billfold::db::clock::now();
    let month = 2_592_000_i64;
    // Ids continue after what the database holds, so a filled database can be filled again.
    let user0 = max_id(db, "users").await?;
    let org0 = max_id(db, "organizations").await?;
    let member0 = max_id(db, "memberships").await?;
    let customer0 = max_id(db, "stripe_customers").await?;
    let n = f.customers;
    let hash = quoted(PASSWORD_HASH);
    let (price, product, product_name, currency, interval) = (
        quoted(&plan.price_id),
        quoted(&plan.product_id),
        quoted(&plan.product_name),
        quoted(&plan.currency),
        quoted(&plan.interval),
    );
    let amount = plan.unit_amount;
    println!(
        "filling {n} customers ({} invoices each) and {} events on {:?}, plan {}",
        f.invoices_per_customer, f.events, backend, plan.price_id
    );
    let series = |lo, hi| series(backend, lo, hi);

    chunked(db, "users", n, |lo, hi| {
        let (with, from) = series(lo, hi);
        format!(
            "{with}INSERT INTO users (id, email, password_hash, created_at, email_verified_at, current_organization_id) \
             SELECT {user0} + i, 'fill' || ({user0} + i) || '@bench.billfold.test', {hash}, {now} - i, {now} - i, {org0} + i FROM {from}"
        )
    })
    .await?;
    chunked(db, "organizations", n, |lo, hi| {
        let (with, from) = series(lo, hi);
        format!(
            "{with}INSERT INTO organizations (id, name, personal_of, billing_email, created_at) \
             SELECT {org0} + i, 'Personal', {user0} + i, NULL, {now} - i FROM {from}"
        )
    })
    .await?;
    chunked(db, "memberships", n, |lo, hi| {
        let (with, from) = series(lo, hi);
        format!(
            "{with}INSERT INTO memberships (id, organization_id, user_id, role, created_at) \
             SELECT {member0} + i, {org0} + i, {user0} + i, 'owner', {now} - i FROM {from}"
        )
    })
    .await?;
    chunked(db, "stripe_customers", n, |lo, hi| {
        let (with, from) = series(lo, hi);
        format!(
            "{with}INSERT INTO stripe_customers (id, user_id, organization_id, livemode, customer_id, email, name, deleted, \
             created_at, stripe_event_at, default_payment_method, open_checkout_session, previous_customer_id) \
             SELECT {customer0} + i, {user0} + i, {org0} + i, FALSE, 'cus_fill_' || ({user0} + i), \
             'fill' || ({user0} + i) || '@bench.billfold.test', NULL, FALSE, {now} - i, {now} - i, \
             'pm_fill_' || ({user0} + i), NULL, NULL FROM {from}"
        )
    })
    .await?;
    // One in twenty trialing, one in fifty past due, one in thirty ended, one in ten cancelling.
    chunked(db, "subscriptions", n, |lo, hi| {
        let (with, from) = series(lo, hi);
        format!(
            "{with}INSERT INTO subscriptions (id, customer_id, status, price_id, plan_name, unit_amount, currency, interval, \
             current_period_start, current_period_end, cancel_at_period_end, cancel_at, canceled_at, ended_at, \
             trial_start, trial_end, default_payment_method, latest_invoice_id, livemode, deleted, stripe_event_at, \
             updated_at, product_id, quantity, item_id, quantity_lowered_at) \
             SELECT 'sub_fill_' || ({user0} + i), 'cus_fill_' || ({user0} + i), \
             CASE WHEN i % 30 = 0 THEN 'canceled' WHEN i % 50 = 0 THEN 'past_due' WHEN i % 20 = 0 THEN 'trialing' ELSE 'active' END, \
             {price}, {product_name}, {amount}, {currency}, {interval}, \
             {now} - (i % {month}), {now} - (i % {month}) + {month}, \
             (i % 10 = 0 AND i % 30 <> 0), NULL, \
             CASE WHEN i % 30 = 0 THEN {now} - (i % {month}) ELSE NULL END, \
             CASE WHEN i % 30 = 0 THEN {now} - (i % {month}) ELSE NULL END, \
             CASE WHEN i % 20 = 0 AND i % 30 <> 0 AND i % 50 <> 0 THEN {now} - (i % {month}) ELSE NULL END, \
             CASE WHEN i % 20 = 0 AND i % 30 <> 0 AND i % 50 <> 0 THEN {now} - (i % {month}) + 1209600 ELSE NULL END, \
             'pm_fill_' || ({user0} + i), 'in_fill_' || ({user0} + i) || '_{k}', FALSE, FALSE, {now} - i, {now} - i, \
             {product}, 1, 'si_fill_' || ({user0} + i), NULL FROM {from}",
            k = f.invoices_per_customer
        )
    })
    .await?;
    chunked(db, "payment_methods", n, |lo, hi| {
        let (with, from) = series(lo, hi);
        format!(
            "{with}INSERT INTO payment_methods (id, customer_id, brand, last4, exp_month, exp_year, is_default, livemode, \
             stripe_event_at, updated_at) \
             SELECT 'pm_fill_' || ({user0} + i), 'cus_fill_' || ({user0} + i), \
             CASE WHEN i % 3 = 0 THEN 'mastercard' ELSE 'visa' END, CAST(1000 + i % 9000 AS TEXT), \
             1 + i % 12, 2027 + i % 5, TRUE, FALSE, {now} - i, {now} - i FROM {from}"
        )
    })
    .await?;
    // The entitlement row Stripe's summary event leaves (the plan's features, one per line).
    chunked(db, "customer_entitlements", n, |lo, hi| {
        let (with, from) = series(lo, hi);
        format!(
            "{with}INSERT INTO customer_entitlements (customer_id, lookup_keys, livemode, stripe_event_at, updated_at) \
             SELECT 'cus_fill_' || ({user0} + i), 'export', FALSE, {now} - i, {now} - i FROM {from} \
             WHERE i % 30 <> 0"
        )
    })
    .await?;
    // Invoice k of customer c is row (c - 1) * K + k of the series; the last one is the newest.
    let k = f.invoices_per_customer.max(1);
    if f.invoices_per_customer > 0 {
        chunked(db, "invoices", n * k, |lo, hi| {
            let (with, from) = series(lo, hi);
            let c = format!("({user0} + (i - 1) / {k} + 1)");
            let nth = format!("((i - 1) % {k} + 1)");
            let created = format!("({now} - ({k} - {nth}) * {month} - (i % 86400))");
            format!(
                "{with}INSERT INTO invoices (id, customer_id, subscription_id, status, amount_due, amount_paid, currency, \
                 hosted_invoice_url, period_start, period_end, created, livemode, stripe_event_at, updated_at, \
                 attempt_count, next_payment_attempt, finalized_at) \
                 SELECT 'in_fill_' || {c} || '_' || {nth}, 'cus_fill_' || {c}, 'sub_fill_' || {c}, \
                 'paid', {amount}, {amount}, {currency}, 'https://invoice.stripe.com/i/in_fill_' || {c} || '_' || {nth}, \
                 {created}, {created} + {month}, {created}, FALSE, {created}, {created}, 1, NULL, {created} FROM {from}"
            )
        })
        .await?;
    }
    let types = "CASE WHEN i % 4 = 0 THEN 'invoice.paid' WHEN i % 4 = 1 THEN 'customer.subscription.updated' \
                 WHEN i % 4 = 2 THEN 'invoice.finalized' ELSE 'payment_method.attached' END";
    let event0 = now - i64::try_from(f.events).unwrap_or(i64::MAX / 4);
    chunked(db, "webhook_events", f.events, |lo, hi| {
        let (with, from) = series(lo, hi);
        format!(
            "{with}INSERT INTO webhook_events (id, event_type, livemode, created, api_version, received_at, processed_at, \
             outcome, error, attempts, applied_from_api, payload, stripe_refused, payload_removed_at) \
             SELECT 'evt_fill_{user0}_' || i, {types}, FALSE, {event0} + i, '2026-09-30.endive', {event0} + i, {event0} + i, \
             'applied', NULL, 1, FALSE, \
             '{{\"id\":\"evt_fill_{user0}_' || i || '\",\"object\":\"event\",\"type\":\"' || {types} || '\",\"created\":' || ({event0} + i) || \
             ',\"livemode\":false,\"data\":{{\"object\":{{\"id\":\"sub_fill_' || ({user0} + 1 + i % {n1}) || '\"}}}}}}', \
             FALSE, NULL FROM {from}",
            n1 = n.max(1)
        )
    })
    .await?;

    if backend == DatabaseBackend::Postgres {
        // Explicit ids: the sequences move past them.
        for table in ["users", "organizations", "memberships", "stripe_customers"] {
            exec(
                db,
                format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                ),
            )
            .await?;
        }
    }
    let started = Instant::now();
    exec(db, "ANALYZE".to_owned()).await?;
    if backend == DatabaseBackend::Sqlite {
        // Into the database file: the log would otherwise hold gigabytes the server reads through.
        exec(db, "PRAGMA wal_checkpoint(TRUNCATE)".to_owned()).await?;
    }
    println!(
        "  analyze, checkpoint    {:>27.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
