//! Rate limits shared by replicas (PostgreSQL uses the table; on SQLite the limits stay in the
//! process and it stays empty); the installation's own id, made once at first start; the
//! one Checkout session a customer may have open; and whether an event was applied from the
//! API's copy of its object (its payload was in another API version's shape).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per limited key: when its next attempt would be "on time" (GCRA), in
        // milliseconds of the database's clock.
        manager
            .create_table(
                Table::create()
                    .table(RateLimits::Table)
                    .if_not_exists()
                    .col(string(RateLimits::Key).primary_key())
                    .col(big_integer(RateLimits::TatMs))
                    .to_owned(),
            )
            .await?;
        // Exactly one row (id = 1), written by the first process that starts.
        manager
            .create_table(
                Table::create()
                    .table(Installations::Table)
                    .if_not_exists()
                    .col(integer(Installations::Id).primary_key())
                    .col(string(Installations::InstallationId))
                    .col(big_integer(Installations::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StripeCustomers::Table)
                    .add_column(string_null(StripeCustomers::OpenCheckoutSession))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEvents::Table)
                    .add_column(boolean(WebhookEvents::AppliedFromApi).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEvents::Table)
                    .drop_column(WebhookEvents::AppliedFromApi)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StripeCustomers::Table)
                    .drop_column(StripeCustomers::OpenCheckoutSession)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Installations::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RateLimits::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RateLimits {
    Table,
    Key,
    TatMs,
}

#[derive(DeriveIden)]
enum Installations {
    Table,
    Id,
    InstallationId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StripeCustomers {
    Table,
    OpenCheckoutSession,
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    AppliedFromApi,
}
