//! Billing state mirrored from Stripe, and the log of every webhook event received.
//!
//! Times are unix seconds. Each synced row keeps `stripe_event_at`, the `created` time of the
//! Stripe event (or API read) that last wrote it: the ordering watermark.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StripeCustomers::Table)
                    .if_not_exists()
                    .col(big_pk_auto(StripeCustomers::Id))
                    .col(big_integer(StripeCustomers::UserId))
                    .col(boolean(StripeCustomers::Livemode))
                    .col(string_uniq(StripeCustomers::CustomerId))
                    .col(string_null(StripeCustomers::Email))
                    .col(string_null(StripeCustomers::Name))
                    .col(boolean(StripeCustomers::Deleted).default(false))
                    .col(big_integer(StripeCustomers::CreatedAt))
                    .col(big_integer_null(StripeCustomers::StripeEventAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stripe_customers_user")
                            .from(StripeCustomers::Table, StripeCustomers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One customer per user per mode: test and live money never mix.
        manager
            .create_index(
                Index::create()
                    .name("idx_stripe_customers_user_mode")
                    .table(StripeCustomers::Table)
                    .col(StripeCustomers::UserId)
                    .col(StripeCustomers::Livemode)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Prices::Table)
                    .if_not_exists()
                    .col(string(Prices::Id).primary_key())
                    .col(string(Prices::ProductId))
                    .col(string(Prices::ProductName))
                    .col(boolean(Prices::ProductActive))
                    .col(string_null(Prices::Nickname))
                    .col(big_integer_null(Prices::UnitAmount))
                    .col(string(Prices::Currency))
                    .col(string_null(Prices::Interval))
                    .col(integer_null(Prices::IntervalCount))
                    .col(integer_null(Prices::TrialPeriodDays))
                    .col(boolean(Prices::Active))
                    .col(boolean(Prices::Livemode))
                    .col(big_integer_null(Prices::StripeEventAt))
                    .col(big_integer(Prices::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_prices_product_id")
                    .table(Prices::Table)
                    .col(Prices::ProductId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .if_not_exists()
                    .col(string(Subscriptions::Id).primary_key())
                    .col(string(Subscriptions::CustomerId))
                    .col(string(Subscriptions::Status))
                    .col(string_null(Subscriptions::PriceId))
                    .col(string_null(Subscriptions::PlanName))
                    .col(big_integer_null(Subscriptions::UnitAmount))
                    .col(string_null(Subscriptions::Currency))
                    .col(string_null(Subscriptions::Interval))
                    .col(big_integer_null(Subscriptions::CurrentPeriodStart))
                    .col(big_integer_null(Subscriptions::CurrentPeriodEnd))
                    .col(boolean(Subscriptions::CancelAtPeriodEnd))
                    .col(big_integer_null(Subscriptions::CancelAt))
                    .col(big_integer_null(Subscriptions::CanceledAt))
                    .col(big_integer_null(Subscriptions::EndedAt))
                    .col(big_integer_null(Subscriptions::TrialStart))
                    .col(big_integer_null(Subscriptions::TrialEnd))
                    .col(string_null(Subscriptions::DefaultPaymentMethod))
                    .col(string_null(Subscriptions::LatestInvoiceId))
                    .col(boolean(Subscriptions::Livemode))
                    .col(boolean(Subscriptions::Deleted).default(false))
                    .col(big_integer(Subscriptions::StripeEventAt))
                    .col(big_integer(Subscriptions::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_subscriptions_customer_id")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::CustomerId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PaymentMethods::Table)
                    .if_not_exists()
                    .col(string(PaymentMethods::Id).primary_key())
                    .col(string_null(PaymentMethods::CustomerId))
                    .col(string_null(PaymentMethods::Brand))
                    .col(string_null(PaymentMethods::Last4))
                    .col(integer_null(PaymentMethods::ExpMonth))
                    .col(integer_null(PaymentMethods::ExpYear))
                    .col(boolean(PaymentMethods::IsDefault))
                    .col(boolean(PaymentMethods::Livemode))
                    .col(big_integer_null(PaymentMethods::StripeEventAt))
                    .col(big_integer(PaymentMethods::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_payment_methods_customer_id")
                    .table(PaymentMethods::Table)
                    .col(PaymentMethods::CustomerId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Invoices::Table)
                    .if_not_exists()
                    .col(string(Invoices::Id).primary_key())
                    .col(string(Invoices::CustomerId))
                    .col(string_null(Invoices::SubscriptionId))
                    .col(string(Invoices::Status))
                    .col(big_integer(Invoices::AmountDue))
                    .col(big_integer(Invoices::AmountPaid))
                    .col(string(Invoices::Currency))
                    .col(string_null(Invoices::HostedInvoiceUrl))
                    .col(big_integer_null(Invoices::PeriodStart))
                    .col(big_integer_null(Invoices::PeriodEnd))
                    .col(big_integer(Invoices::Created))
                    .col(boolean(Invoices::Livemode))
                    .col(big_integer_null(Invoices::StripeEventAt))
                    .col(big_integer(Invoices::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The billing page lists a customer's latest invoices.
        manager
            .create_index(
                Index::create()
                    .name("idx_invoices_customer_created")
                    .table(Invoices::Table)
                    .col(Invoices::CustomerId)
                    .col(Invoices::Created)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .if_not_exists()
                    .col(string(WebhookEvents::Id).primary_key())
                    .col(string(WebhookEvents::EventType))
                    .col(boolean(WebhookEvents::Livemode))
                    .col(big_integer(WebhookEvents::Created))
                    .col(string_null(WebhookEvents::ApiVersion))
                    .col(big_integer(WebhookEvents::ReceivedAt))
                    .col(big_integer_null(WebhookEvents::ProcessedAt))
                    .col(string(WebhookEvents::Outcome))
                    .col(text_null(WebhookEvents::Error))
                    .col(integer(WebhookEvents::Attempts))
                    .col(text(WebhookEvents::Payload))
                    .to_owned(),
            )
            .await?;
        // `billfold webhooks list --outcome failed --since …` and replays of failures.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_events_outcome_received")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::Outcome)
                    .col(WebhookEvents::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Invoices::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PaymentMethods::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Subscriptions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Prices::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(StripeCustomers::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum StripeCustomers {
    Table,
    Id,
    UserId,
    Livemode,
    CustomerId,
    Email,
    Name,
    Deleted,
    CreatedAt,
    StripeEventAt,
}

#[derive(DeriveIden)]
enum Prices {
    Table,
    Id,
    ProductId,
    ProductName,
    ProductActive,
    Nickname,
    UnitAmount,
    Currency,
    Interval,
    IntervalCount,
    TrialPeriodDays,
    Active,
    Livemode,
    StripeEventAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    Id,
    CustomerId,
    Status,
    PriceId,
    PlanName,
    UnitAmount,
    Currency,
    Interval,
    CurrentPeriodStart,
    CurrentPeriodEnd,
    CancelAtPeriodEnd,
    CancelAt,
    CanceledAt,
    EndedAt,
    TrialStart,
    TrialEnd,
    DefaultPaymentMethod,
    LatestInvoiceId,
    Livemode,
    Deleted,
    StripeEventAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PaymentMethods {
    Table,
    Id,
    CustomerId,
    Brand,
    Last4,
    ExpMonth,
    ExpYear,
    IsDefault,
    Livemode,
    StripeEventAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Invoices {
    Table,
    Id,
    CustomerId,
    SubscriptionId,
    Status,
    AmountDue,
    AmountPaid,
    Currency,
    HostedInvoiceUrl,
    PeriodStart,
    PeriodEnd,
    Created,
    Livemode,
    StripeEventAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    Id,
    EventType,
    Livemode,
    Created,
    ApiVersion,
    ReceivedAt,
    ProcessedAt,
    Outcome,
    Error,
    Attempts,
    Payload,
}
