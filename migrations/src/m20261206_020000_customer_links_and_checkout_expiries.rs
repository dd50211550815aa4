//! The customer a user had before Stripe deleted it (kept on the row of its replacement), the
//! replaced Checkout sessions still to be expired at Stripe, and the alerts Billfold raises for
//! its operators.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(StripeCustomers::Table)
                    .add_column(string_null(StripeCustomers::PreviousCustomerId))
                    .to_owned(),
            )
            .await?;
        // Written in the same transaction that replaces a customer's open Checkout session;
        // removed once Stripe has expired it (or it was paid, or Stripe no longer has it).
        manager
            .create_table(
                Table::create()
                    .table(CheckoutExpiries::Table)
                    .if_not_exists()
                    .col(string(CheckoutExpiries::SessionId).primary_key())
                    .col(string(CheckoutExpiries::CustomerId))
                    .col(integer(CheckoutExpiries::Attempts).default(0))
                    .col(text_null(CheckoutExpiries::LastError))
                    .col(big_integer(CheckoutExpiries::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BillingAlerts::Table)
                    .if_not_exists()
                    .col(big_pk_auto(BillingAlerts::Id))
                    .col(big_integer(BillingAlerts::RaisedAt))
                    .col(string(BillingAlerts::Kind))
                    .col(string(BillingAlerts::CustomerId))
                    .col(string(BillingAlerts::ObjectId))
                    .col(text(BillingAlerts::Detail))
                    .to_owned(),
            )
            .await?;
        // One alert per cause: a user clicking again raises nothing new.
        manager
            .create_index(
                Index::create()
                    .name("idx_billing_alerts_kind_object")
                    .table(BillingAlerts::Table)
                    .col(BillingAlerts::Kind)
                    .col(BillingAlerts::ObjectId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BillingAlerts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(CheckoutExpiries::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StripeCustomers::Table)
                    .drop_column(StripeCustomers::PreviousCustomerId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum StripeCustomers {
    Table,
    PreviousCustomerId,
}

#[derive(DeriveIden)]
enum CheckoutExpiries {
    Table,
    SessionId,
    CustomerId,
    Attempts,
    LastError,
    CreatedAt,
}

#[derive(DeriveIden)]
enum BillingAlerts {
    Table,
    Id,
    RaisedAt,
    Kind,
    CustomerId,
    ObjectId,
    Detail,
}
