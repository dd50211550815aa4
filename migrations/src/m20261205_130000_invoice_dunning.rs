//! What the dunning banner tells: how often Stripe has tried to collect an invoice, when it
//! tries next, and when the invoice was finalized (the first attempt, from which a past-due
//! grace period runs).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            integer(Invoices::AttemptCount).default(0).to_owned(),
            big_integer_null(Invoices::NextPaymentAttempt),
            big_integer_null(Invoices::FinalizedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Invoices::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Invoices::AttemptCount,
            Invoices::NextPaymentAttempt,
            Invoices::FinalizedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Invoices::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Invoices {
    Table,
    AttemptCount,
    NextPaymentAttempt,
    FinalizedAt,
}
