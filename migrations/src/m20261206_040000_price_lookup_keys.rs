//! A price's `lookup_key`: how the catalogue in `billing.toml` names the prices it sells. A
//! price without one (or with one the catalogue does not list) is never for sale. Rows synced
//! before this column existed read NULL until the catalogue is loaded again from Stripe, which
//! the app does at every start.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Prices::Table)
                    .add_column(string_null(Prices::LookupKey))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Prices::Table)
                    .drop_column(Prices::LookupKey)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Prices {
    Table,
    LookupKey,
}
