//! Billfold's schema, one migration per change, run at boot by the app (`Migrator::up`).
//! The same migrations run on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_users_and_sessions;
mod m20261125_000002_create_billing_tables;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_users_and_sessions::Migration),
            Box::new(m20261125_000002_create_billing_tables::Migration),
        ]
    }
}
