//! What Stripe's Entitlements say each customer has (the features' lookup keys), ordered by a
//! watermark like every other synced object.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CustomerEntitlements::Table)
                    .if_not_exists()
                    .col(string(CustomerEntitlements::CustomerId).primary_key())
                    .col(text(CustomerEntitlements::LookupKeys))
                    .col(boolean(CustomerEntitlements::Livemode))
                    .col(big_integer_null(CustomerEntitlements::StripeEventAt))
                    .col(big_integer(CustomerEntitlements::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CustomerEntitlements::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CustomerEntitlements {
    Table,
    CustomerId,
    LookupKeys,
    Livemode,
    StripeEventAt,
    UpdatedAt,
}
