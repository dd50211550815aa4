//! Compare and heal: each cycle re-reads a slice of customers from the API, those compared
//! longest ago first, and heals them through [`sync::sync_customer`] (the one writer). Every
//! field the heal changed is a drift: what the database said, what Stripe says, and the
//! event that would have carried it, recorded in `drift_records`.
//!
//! The slice is sized so that every customer is compared at least once a day at the
//! configured interval (and never fewer than [`MIN_SLICE`] a cycle).

use std::{collections::BTreeMap, time::Duration};

use sea_orm::{
    sea_query::OnConflict,
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    IdenStatic, Iterable, ModelTrait, PaginatorTrait, QueryFilter, Statement, Value,
};

use super::{CycleError, Report};
use crate::{
    billing::sync,
    config::DEFAULT_RECONCILE_EVERY,
    db::begin_write,
    db::{
        clock::now,
        entities::{
            customer_check, customer_entitlement, drift_record, invoice, payment_method,
            stripe_customer, subscription, subscription_schedule,
        },
    },
    state::AppState,
};

/// A day: every customer is compared within one.
const DAY: Duration = Duration::from_secs(86_400);

/// The fewest customers a cycle compares (unless there are fewer).
pub const MIN_SLICE: u64 = 50;

/// How many customers a cycle compares: `total` spread over the cycles of a day.
pub fn slice_size(total: u64, every: Duration) -> u64 {
    let cycles_a_day = (DAY.as_secs() / every.as_secs().max(1)).max(1);
    total.div_ceil(cycles_a_day).max(MIN_SLICE)
}

/// Compares the next slice of customers with Stripe, heals them, records the drift.
pub async fn compare_slice(state: &AppState, report: &mut Report) -> Result<(), CycleError> {
    let db = &state.db;
    let livemode = state.config.stripe.mode.livemode();
    let total = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::Livemode.eq(livemode))
        .filter(stripe_customer::Column::Deleted.eq(false))
        .count(db)
        .await?;
    let every = state
        .config
        .reconcile_every
        .unwrap_or(DEFAULT_RECONCILE_EVERY);
    for customer_id in next_slice(db, livemode, slice_size(total, every)).await? {
        let before = Snapshot::read(db, &customer_id, &[]).await?;
        match sync::sync_customer(db, &state.stripe, &customer_id).await {
            Ok(_) => {
                let after = Snapshot::read(db, &customer_id, &before.payment_methods()).await?;
                let mut drift = before.drift(&after);
                drift.extend(seat_drift(state, &customer_id).await?);
                report.drift += drift.len();
                record(db, &customer_id, drift).await?;
            }
            Err(e) => {
                tracing::warn!(customer = %customer_id, error = %e, "reconcile: could not compare a customer");
                report
                    .failed_customers
                    .push((customer_id.clone(), e.to_string()));
            }
        }
        report.customers_compared += 1;
        mark_checked(db, &customer_id).await?;
    }
    Ok(())
}

/// A per-seat subscription whose quantity (Stripe's, just re-read) is below its
/// organisation's seat count: someone lowered it in the portal or the Dashboard. Recorded as
/// drift (the organisation page tells its owners); nothing is taken from anyone, and the next
/// member change sets the quantity again.
async fn seat_drift(state: &AppState, customer_id: &str) -> Result<Option<Drift>, DbErr> {
    use crate::billing::seats;
    let catalog = &state.config.catalog;
    let Some((sub, _)) = seats::per_seat_subscription(&state.db, catalog, customer_id).await?
    else {
        return Ok(None);
    };
    let Some(org) = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::CustomerId.eq(customer_id))
        .one(&state.db)
        .await?
        .and_then(|c| c.organization_id)
    else {
        return Ok(None);
    };
    let count = seats::seat_count(&state.db, org, &catalog.seat_policy).await?;
    let paid = sub.quantity.and_then(|q| u64::try_from(q).ok());
    Ok(paid.filter(|&paid| paid < count).map(|paid| Drift {
        object_type: "seats",
        object_id: sub.id.clone(),
        field: "quantity".to_owned(),
        database_value: Some(count.to_string()),
        stripe_value: Some(paid.to_string()),
    }))
}

/// The customers of this mode compared longest ago (never compared first).
async fn next_slice(
    db: &DatabaseConnection,
    livemode: bool,
    size: u64,
) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let (mode, limit) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?1", "?2"),
    };
    let sql = format!(
        "SELECT c.customer_id FROM stripe_customers c \
         LEFT JOIN customer_checks k ON k.customer_id = c.customer_id \
         WHERE c.livemode = {mode} AND c.deleted = FALSE \
         ORDER BY COALESCE(k.checked_at, -1), c.id LIMIT {limit}"
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [livemode.into(), (size as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String>("", "customer_id"))
        .collect()
}

async fn mark_checked(db: &DatabaseConnection, customer_id: &str) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    customer_check::Entity::insert(customer_check::ActiveModel {
        customer_id: Set(customer_id.to_owned()),
        checked_at: Set(now()),
    })
    .on_conflict(
        OnConflict::column(customer_check::Column::CustomerId)
            .update_column(customer_check::Column::CheckedAt)
            .to_owned(),
    )
    .exec_without_returning(&*txn)
    .await?;
    txn.commit().await
}

/// One field that differed: (object type, object id, field, database value, Stripe value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub object_type: &'static str,
    pub object_id: String,
    pub field: String,
    pub database_value: Option<String>,
    pub stripe_value: Option<String>,
}

impl Drift {
    /// The event that would have carried this change, had it been delivered.
    pub fn carrier(&self) -> String {
        let stripe = self.stripe_value.as_deref();
        match (self.object_type, self.field.as_str()) {
            ("subscription", "deleted") => "customer.subscription.deleted".to_owned(),
            ("subscription", "(row)") => "customer.subscription.created".to_owned(),
            ("subscription", _) => "customer.subscription.updated".to_owned(),
            ("payment_method", "customer_id") if stripe.is_none() => {
                "payment_method.detached".to_owned()
            }
            ("payment_method", "(row)" | "customer_id") => "payment_method.attached".to_owned(),
            ("payment_method", "is_default") => "customer.updated".to_owned(),
            ("payment_method", _) => "payment_method.updated".to_owned(),
            ("invoice", "status") => match stripe {
                Some("void") => "invoice.voided".to_owned(),
                Some("uncollectible") => "invoice.marked_uncollectible".to_owned(),
                Some("paid") => "invoice.paid".to_owned(),
                Some("open") => "invoice.finalized".to_owned(),
                Some("deleted") => "invoice.deleted".to_owned(),
                _ => "invoice.updated".to_owned(),
            },
            ("invoice", "(row)") => "invoice.created".to_owned(),
            ("invoice", _) => "invoice.updated".to_owned(),
            ("customer", "deleted") => "customer.deleted".to_owned(),
            ("entitlement", _) => "entitlements.active_entitlement_summary.updated".to_owned(),
            // Stripe's quantity below the seat count: lowered in the portal or the Dashboard.
            ("seats", _) => "customer.subscription.updated".to_owned(),
            ("subscription_schedule", "(row)") => "subscription_schedule.created".to_owned(),
            (kind, _) => format!("{kind}.updated"),
        }
    }
}

/// Every stored field of one customer's billing rows, by (object type, id) then column;
/// bookkeeping columns (watermarks, update times) left out.
#[derive(Debug, Default)]
struct Snapshot(BTreeMap<(&'static str, String), BTreeMap<String, Option<String>>>);

/// A feature's value in an entitlement snapshot: Stripe lists it.
const INCLUDED: &str = "included";

const BOOKKEEPING: [&str; 4] = ["stripe_event_at", "updated_at", "created_at", "id"];

impl Snapshot {
    /// `known`: payment methods to read even if no longer the customer's (those of an
    /// earlier snapshot).
    async fn read(
        db: &impl ConnectionTrait,
        customer_id: &str,
        known: &[String],
    ) -> Result<Snapshot, DbErr> {
        let mut s = Snapshot::default();
        for m in stripe_customer::Entity::find()
            .filter(stripe_customer::Column::CustomerId.eq(customer_id))
            .all(db)
            .await?
        {
            s.add("customer", customer_id, &m);
        }
        let mut subscriptions = Vec::new();
        for m in subscription::Entity::find()
            .filter(subscription::Column::CustomerId.eq(customer_id))
            .all(db)
            .await?
        {
            subscriptions.push(m.id.clone());
            s.add("subscription", &m.id.clone(), &m);
        }
        for m in subscription_schedule::Entity::find()
            .filter(subscription_schedule::Column::SubscriptionId.is_in(subscriptions))
            .all(db)
            .await?
        {
            s.add("subscription_schedule", &m.id.clone(), &m);
        }
        // A card detached meanwhile loses its customer: `known` finds it again.
        for m in payment_method::Entity::find()
            .filter(
                Condition::any()
                    .add(payment_method::Column::CustomerId.eq(customer_id))
                    .add(payment_method::Column::Id.is_in(known.iter().cloned())),
            )
            .all(db)
            .await?
        {
            s.add("payment_method", &m.id.clone(), &m);
        }
        for m in invoice::Entity::find()
            .filter(invoice::Column::CustomerId.eq(customer_id))
            .all(db)
            .await?
        {
            s.add("invoice", &m.id.clone(), &m);
        }
        // One field per feature (none without a row), so a drift names the feature that
        // differed.
        let features = customer_entitlement::Entity::find_by_id(customer_id)
            .one(db)
            .await?
            .map(|m| {
                m.keys()
                    .map(|k| (k.to_owned(), Some(INCLUDED.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        s.0.insert(("entitlement", customer_id.to_owned()), features);
        Ok(s)
    }

    fn payment_methods(&self) -> Vec<String> {
        self.0
            .keys()
            .filter(|(kind, _)| *kind == "payment_method")
            .map(|(_, id)| id.clone())
            .collect()
    }

    fn add<M: ModelTrait>(&mut self, kind: &'static str, id: &str, model: &M) {
        let fields = <M::Entity as EntityTrait>::Column::iter()
            .map(|c| (c.as_str().to_owned(), c))
            .filter(|(name, _)| !BOOKKEEPING.contains(&name.as_str()))
            .map(|(name, c)| (name, show(model.get(c))))
            .collect();
        self.0.insert((kind, id.to_owned()), fields);
    }

    /// What changed from `self` (the database before) to `after` (healed to Stripe's).
    fn drift(&self, after: &Snapshot) -> Vec<Drift> {
        let mut found = Vec::new();
        for ((kind, id), healed) in &after.0 {
            let Some(held) = self.0.get(&(*kind, id.clone())) else {
                found.push(Drift {
                    object_type: kind,
                    object_id: id.clone(),
                    field: "(row)".to_owned(),
                    database_value: None,
                    stripe_value: Some("present".to_owned()),
                });
                continue;
            };
            // A field only one side has (a feature granted or taken away) differs too.
            let fields: std::collections::BTreeSet<&String> =
                healed.keys().chain(held.keys()).collect();
            for field in fields {
                let before = held.get(field).cloned().flatten();
                let value = &healed.get(field).cloned().flatten();
                if &before != value {
                    found.push(Drift {
                        object_type: kind,
                        object_id: id.clone(),
                        field: field.clone(),
                        database_value: before,
                        stripe_value: value.clone(),
                    });
                }
            }
        }
        found
    }
}

/// A column's value as text, `None` for NULL.
fn show(v: Value) -> Option<String> {
    match v {
        Value::Bool(b) => b.map(|b| b.to_string()),
        Value::TinyInt(n) => n.map(|n| n.to_string()),
        Value::SmallInt(n) => n.map(|n| n.to_string()),
        Value::Int(n) => n.map(|n| n.to_string()),
        Value::BigInt(n) => n.map(|n| n.to_string()),
        Value::String(s) => s,
        other => Some(format!("{other:?}")),
    }
}

async fn record(
    db: &DatabaseConnection,
    customer_id: &str,
    drift: Vec<Drift>,
) -> Result<(), DbErr> {
    if drift.is_empty() {
        return Ok(());
    }
    let at = now();
    let rows = drift.into_iter().map(|d| drift_record::ActiveModel {
        id: NotSet,
        detected_at: Set(at),
        customer_id: Set(customer_id.to_owned()),
        object_type: Set(d.object_type.to_owned()),
        object_id: Set(d.object_id.clone()),
        event_type: Set(d.carrier()),
        field: Set(d.field),
        database_value: Set(d.database_value),
        stripe_value: Set(d.stripe_value),
    });
    let txn = begin_write(db).await?;
    drift_record::Entity::insert_many(rows)
        .exec_without_returning(&*txn)
        .await?;
    txn.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_customer_is_compared_within_a_day() {
        let five_minutes = Duration::from_secs(300);
        // 288 cycles a day.
        assert_eq!(slice_size(0, five_minutes), MIN_SLICE);
        assert_eq!(slice_size(10_000, five_minutes), MIN_SLICE);
        assert_eq!(slice_size(100_000, five_minutes), 348);
        assert!(slice_size(100_000, five_minutes) * 288 >= 100_000);
        assert_eq!(slice_size(1_000, Duration::from_secs(86_400)), 1_000);
        assert_eq!(slice_size(1_000, Duration::from_secs(7 * 86_400)), 1_000);
    }

    #[test]
    fn a_drift_names_the_event_that_would_have_carried_it() {
        let d = |kind, field: &str, stripe: Option<&str>| Drift {
            object_type: kind,
            object_id: "x".to_owned(),
            field: field.to_owned(),
            database_value: None,
            stripe_value: stripe.map(str::to_owned),
        };
        assert_eq!(
            d("subscription", "status", Some("canceled")).carrier(),
            "customer.subscription.updated"
        );
        assert_eq!(
            d("subscription", "deleted", Some("true")).carrier(),
            "customer.subscription.deleted"
        );
        assert_eq!(
            d("invoice", "status", Some("void")).carrier(),
            "invoice.voided"
        );
        assert_eq!(
            d("entitlement", "export", None).carrier(),
            "entitlements.active_entitlement_summary.updated"
        );
        assert_eq!(
            d("payment_method", "customer_id", None).carrier(),
            "payment_method.detached"
        );
        assert_eq!(
            d("payment_method", "is_default", Some("true")).carrier(),
            "customer.updated"
        );
        assert_eq!(
            d("customer", "email", Some("a@b.c")).carrier(),
            "customer.updated"
        );
    }
}
