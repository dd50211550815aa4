//! Billfold's schema, one migration per change, run at boot by the app (`Migrator::up`).
//! The same migrations run on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_users_and_sessions;
mod m20261125_000002_create_billing_tables;
mod m20261203_190000_order_products_and_default_cards;
mod m20261204_120000_create_reconciler_tables;
mod m20261204_150000_create_reconcile_runs;
mod m20261205_090000_limits_installation_open_checkout;
mod m20261205_130000_invoice_dunning;
mod m20261205_150000_subscription_schedules;
mod m20261206_010000_operators;
mod m20261206_020000_customer_links_and_checkout_expiries;
mod m20261206_030000_event_retention_and_set_aside;
mod m20261206_040000_price_lookup_keys;
mod m20261206_050000_customer_entitlements;
mod m20261206_060000_projects;
mod m20261206_070000_mail;
mod m20261206_080000_stripe_outbox;
mod m20261206_090000_organizations;
mod m20261206_120000_seat_shortfall;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_users_and_sessions::Migration),
            Box::new(m20261125_000002_create_billing_tables::Migration),
            Box::new(m20261203_190000_order_products_and_default_cards::Migration),
            Box::new(m20261204_120000_create_reconciler_tables::Migration),
            Box::new(m20261204_150000_create_reconcile_runs::Migration),
            Box::new(m20261205_090000_limits_installation_open_checkout::Migration),
            Box::new(m20261205_130000_invoice_dunning::Migration),
            Box::new(m20261205_150000_subscription_schedules::Migration),
            Box::new(m20261206_010000_operators::Migration),
            Box::new(m20261206_020000_customer_links_and_checkout_expiries::Migration),
            Box::new(m20261206_030000_event_retention_and_set_aside::Migration),
            Box::new(m20261206_040000_price_lookup_keys::Migration),
            Box::new(m20261206_050000_customer_entitlements::Migration),
            Box::new(m20261206_060000_projects::Migration),
            Box::new(m20261206_070000_mail::Migration),
            Box::new(m20261206_080000_stripe_outbox::Migration),
            Box::new(m20261206_090000_organizations::Migration),
            Box::new(m20261206_120000_seat_shortfall::Migration),
        ]
    }
}
