//! The comparison with Stripe, and the checks over the event log and the reconciler's
//! cycles.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use sea_orm::ConnectionTrait;
use serde_json::Value;

use crate::{world::World, Tally};

impl World {
    // ----- the comparison -----------------------------------------------------------------

    pub async fn compare(&self, delivered: &[&(String, String)]) -> anyhow::Result<()> {
        let mut diffs: Vec<String> = Vec::new();
        let mut products: BTreeMap<String, String> = BTreeMap::new();
        for cus in &self.customers {
            let customer = self.get(&format!("customers/{cus}")).await?;
            let default_pm = customer["invoice_settings"]["default_payment_method"]
                .as_str()
                .map(str::to_owned);

            // Subscriptions.
            let subs = self
                .list(&format!("subscriptions?customer={cus}&status=all"))
                .await?;
            let rows = self
                .rows(&format!(
                    "SELECT id, status, price_id, plan_name, {}, {} \
                     FROM subscriptions WHERE customer_id = '{cus}'",
                    text_bool("cancel_at_period_end"),
                    text_bool("deleted")
                ))
                .await?;
            same_ids(cus, "subscriptions", &subs, &rows, &mut diffs);
            for s in &subs {
                let id = s["id"].as_str().unwrap_or_default();
                let Some(row) = rows.get(id) else { continue };
                let price = &s["items"]["data"][0]["price"];
                let product_id = price["product"].as_str().unwrap_or_default().to_owned();
                if !products.contains_key(&product_id) {
                    let p = self.get(&format!("products/{product_id}")).await?;
                    products.insert(
                        product_id.clone(),
                        p["name"].as_str().unwrap_or_default().to_owned(),
                    );
                }
                let status = s["status"].as_str().unwrap_or_default();
                let terminal = matches!(status, "canceled" | "incomplete_expired");
                let want = [
                    status.to_owned(),
                    price["id"].as_str().unwrap_or_default().to_owned(),
                    products[&product_id].clone(),
                    s["cancel_at_period_end"]
                        .as_bool()
                        .unwrap_or(false)
                        .to_string(),
                    terminal.to_string(),
                ];
                if row[1..] != want {
                    diffs.push(format!(
                        "subscription {id}: stored {:?}, Stripe {want:?}",
                        &row[1..]
                    ));
                }
            }

            // Payment methods, and which is the default.
            let cards = self
                .list(&format!("payment_methods?customer={cus}"))
                .await?;
            let rows = self
                .rows(&format!(
                    "SELECT id, {} FROM payment_methods WHERE customer_id = '{cus}'",
                    text_bool("is_default")
                ))
                .await?;
            let ids = same_ids(cus, "cards", &cards, &rows, &mut diffs);
            let stored_default: Vec<&String> = rows
                .iter()
                .filter(|(_, r)| r[1] == "true")
                .map(|(id, _)| id)
                .collect();
            let want_default: Vec<&String> =
                default_pm.iter().filter(|d| ids.contains(*d)).collect();
            if stored_default != want_default {
                diffs.push(format!(
                    "{cus}: default card {want_default:?} in Stripe, {stored_default:?} stored"
                ));
                if std::env::var_os("PROOF_DEBUG").is_some() {
                    self.dump(cus).await?;
                }
            }

            // Invoices.
            let invoices = self.list(&format!("invoices?customer={cus}")).await?;
            let rows = self
                .rows(&format!(
                    "SELECT id, status, CAST(amount_paid AS TEXT) FROM invoices WHERE customer_id = '{cus}'"
                ))
                .await?;
            for inv in &invoices {
                let id = inv["id"].as_str().unwrap_or_default();
                let want = [
                    inv["status"].as_str().unwrap_or("draft").to_owned(),
                    inv["amount_paid"].as_i64().unwrap_or_default().to_string(),
                ];
                match rows.get(id) {
                    Some(row) if row[1..] == want => {}
                    Some(row) => diffs.push(format!(
                        "invoice {id}: stored {:?}, Stripe {want:?}",
                        &row[1..]
                    )),
                    None => diffs.push(format!("invoice {id}: not stored")),
                }
            }
        }

        // Prices' product names.
        let prices = self
            .rows("SELECT id, product_id, product_name FROM prices")
            .await?;
        for (id, row) in &prices {
            if let Some(name) = products.get(&row[1]) {
                if &row[2] != name {
                    diffs.push(format!(
                        "price {id}: product name {:?} stored, {name:?} in Stripe",
                        row[2]
                    ));
                }
            }
        }

        // The event log: each delivered event recorded once, none failed.
        let recorded = self.rows("SELECT id, outcome FROM webhook_events").await?;
        let delivered: BTreeSet<&str> = delivered.iter().map(|e| e.0.as_str()).collect();
        for id in &delivered {
            match recorded.get(*id) {
                Some(r) if r[1] == "failed" => {
                    diffs.push(format!("event {id}: recorded as failed"))
                }
                Some(_) => {}
                None => diffs.push(format!("event {id}: delivered, not recorded")),
            }
        }
        // Applied once: one committed transaction claimed each event.
        let twice = self
            .rows(
                "SELECT event_id, CAST(COUNT(*) AS TEXT) FROM proof_applied \
                 GROUP BY event_id HAVING COUNT(*) > 1",
            )
            .await?;
        for (id, row) in &twice {
            diffs.push(format!("event {id}: applied by {} transactions", row[1]));
        }
        anyhow::ensure!(diffs.is_empty(), "{}", diffs.join("; "));
        Ok(())
    }

    /// No two reconciler cycles overlapped, whichever replica (or this runner) ran them;
    /// with several replicas, more than one of them ran cycles. Replicas run a cycle every
    /// second, but after an outage their next one can be a while coming: they get a minute.
    pub async fn check_reconcile_runs(&self, tally: &mut Tally) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let me = format!(":{}", std::process::id());
        loop {
            let runs = self.reconcile_runs().await?;
            for pair in runs.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                anyhow::ensure!(
                    b.1 >= a.2,
                    "reconciler cycles overlapped: {} ran {}..{} ms, {} started at {} ms",
                    a.0,
                    a.1,
                    a.2,
                    b.0,
                    b.1
                );
            }
            let runners: BTreeSet<&str> = runs.iter().map(|r| r.0.as_str()).collect();
            let replicas = runners.iter().filter(|r| !r.ends_with(&me)).count();
            if self.apps.count() > 1 && replicas < 2 {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "only {runners:?} ran reconciler cycles ({} in all); the check of their \
                     turns proves nothing",
                    runs.len()
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            tally.reconcile_runs += runs.len() as u64;
            tally.runners += replicas as u64;
            return Ok(());
        }
    }

    /// Every recorded cycle as (runner, started, finished), in the order they started.
    async fn reconcile_runs(&self) -> anyhow::Result<Vec<(String, i64, i64)>> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                backend,
                "SELECT runner, started_at_ms, finished_at_ms FROM reconcile_runs \
                 ORDER BY started_at_ms, id",
            ))
            .await?;
        let mut runs = Vec::new();
        for row in rows {
            runs.push((
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
            ));
        }
        Ok(runs)
    }

    /// Prints a customer's events as delivered and what became of them (PROOF_DEBUG).
    async fn dump(&self, cus: &str) -> anyhow::Result<()> {
        let outcomes = self
            .rows("SELECT id, outcome, CAST(attempts AS TEXT) FROM webhook_events")
            .await?;
        for (id, body) in &self.events {
            let e: Value = serde_json::from_str(body)?;
            let o = &e["data"]["object"];
            if o["customer"] != cus && o["id"] != cus {
                continue;
            }
            eprintln!(
                "{id} {} created={} object={} default={} customer={} -> {:?}",
                e["type"],
                e["created"],
                o["id"],
                o["invoice_settings"]["default_payment_method"],
                o["customer"],
                outcomes.get(id.as_str()).map(|r| &r[1..])
            );
        }
        Ok(())
    }

    /// Rows of text columns, keyed by their first column.
    pub async fn rows(&self, sql: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(backend, sql))
            .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            let mut values = Vec::new();
            while let Ok(v) = row.try_get_by_index::<Option<String>>(values.len()) {
                values.push(v.unwrap_or_default());
            }
            if let Some(key) = values.first().cloned() {
                out.insert(key, values);
            }
        }
        Ok(out)
    }
}

/// Stripe's ids of a customer's `objects`; a difference if the stored rows hold others.
fn same_ids(
    cus: &str,
    what: &str,
    objects: &[Value],
    rows: &BTreeMap<String, Vec<String>>,
    diffs: &mut Vec<String>,
) -> BTreeSet<String> {
    let ids: BTreeSet<String> = objects
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect();
    let row_ids: BTreeSet<String> = rows.keys().cloned().collect();
    if ids != row_ids {
        diffs.push(format!(
            "{cus}: {what} {ids:?} in Stripe, {row_ids:?} stored"
        ));
    }
    ids
}

/// A boolean column as `'true'`/`'false'` text, on SQLite and PostgreSQL alike.
fn text_bool(column: &str) -> String {
    format!("CASE WHEN {column} THEN 'true' ELSE 'false' END")
}
