//! Products get their own watermark (a `products` table), so a late older `product.updated`
//! can neither rename a plan back nor bring an archived one into the picker; and the
//! customer remembers its default payment method, so the default card does not depend on
//! whether `customer.updated` or `payment_method.attached` arrives first. A subscription
//! keeps its product's id, so a rename reaches its plan name even when no price row links
//! the two.
//!
//! No backfill: a product without a row takes its name from `prices` (as before) until its
//! next event or re-sync writes the row.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .if_not_exists()
                    .col(string(Products::Id).primary_key())
                    .col(string(Products::Name))
                    .col(boolean(Products::Active))
                    .col(boolean(Products::Deleted).default(false))
                    .col(boolean(Products::Livemode))
                    .col(big_integer_null(Products::StripeEventAt))
                    .col(big_integer(Products::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StripeCustomers::Table)
                    .add_column(string_null(StripeCustomers::DefaultPaymentMethod))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .add_column(string_null(Subscriptions::ProductId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .drop_column(Subscriptions::ProductId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StripeCustomers::Table)
                    .drop_column(StripeCustomers::DefaultPaymentMethod)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Products::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    Name,
    Active,
    Deleted,
    Livemode,
    StripeEventAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    ProductId,
}

#[derive(DeriveIden)]
enum StripeCustomers {
    Table,
    DefaultPaymentMethod,
}
