//! A subscription's scheduled switch (a downgrade waiting for the period's end): one row per
//! Stripe subscription schedule, with the price it switches to and when.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SubscriptionSchedules::Table)
                    .if_not_exists()
                    .col(string(SubscriptionSchedules::Id).primary_key())
                    .col(string_null(SubscriptionSchedules::SubscriptionId))
                    .col(string(SubscriptionSchedules::Status))
                    .col(string_null(SubscriptionSchedules::NextPriceId))
                    .col(big_integer_null(SubscriptionSchedules::SwitchAt))
                    .col(big_integer_null(SubscriptionSchedules::StripeEventAt))
                    .col(big_integer(SubscriptionSchedules::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_subscription_schedules_subscription")
                    .table(SubscriptionSchedules::Table)
                    .col(SubscriptionSchedules::SubscriptionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SubscriptionSchedules::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SubscriptionSchedules {
    Table,
    Id,
    SubscriptionId,
    Status,
    NextPriceId,
    SwitchAt,
    StripeEventAt,
    UpdatedAt,
}
