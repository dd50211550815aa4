//! Re-syncs from the API: one customer (after Checkout or the Portal, or `billfold sync`),
//! every customer (`billfold sync --all`), and the price catalogue at start.

use futures_util::TryStreamExt;
use sea_orm::{
    sea_query::Expr, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use stripe_shared::Price;

use super::{
    apply_customer, apply_customer_deleted, apply_entitlements, apply_invoice,
    apply_payment_method, apply_price, apply_schedule, apply_subscription, begin_write,
    customer::{default_payment_method, set_default_payment_method},
    read_clock,
    write::newer_than,
    Applied, EntitlementFacts, FetchLoop, Fetched, ScheduleFacts, Source, SyncError,
};
use crate::db::entities::{payment_method, stripe_customer};

/// What a re-sync wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub customers: usize,
    pub subscriptions: usize,
    pub payment_methods: usize,
    pub invoices: usize,
    pub prices: usize,
    pub schedules: usize,
    /// Customers that could not be synced, with the reason (for `--all`).
    pub failed: Vec<(String, String)>,
}

impl SyncReport {
    fn add(&mut self, other: SyncReport) {
        self.customers += other.customers;
        self.subscriptions += other.subscriptions;
        self.payment_methods += other.payment_methods;
        self.invoices += other.invoices;
        self.prices += other.prices;
        self.schedules += other.schedules;
        self.failed.extend(other.failed);
    }
}

/// How many of a customer's latest invoices a re-sync reads.
const SYNC_INVOICES: i64 = 24;

/// The page size of the lists a re-sync reads in full.
const PAGE: i64 = 100;

fn count(report: &mut usize, applied: Applied) {
    if applied == Applied::Applied {
        *report += 1;
    }
}

/// Re-reads one customer from the Stripe API — the customer, every subscription (all
/// statuses), its payment methods (and which is the default), its latest invoices, the
/// prices they use and its subscription schedules — and applies it all in one transaction. Everything is fetched before
/// the transaction starts, so no lock is held while Stripe answers.
pub async fn sync_customer(
    db: &DatabaseConnection,
    stripe: &::stripe::Client,
    customer_id: &str,
) -> Result<SyncReport, SyncError> {
    // Taken before reading, by the database's clock (see `read_clock`): an event created
    // after this moment may carry a newer state than what the API returns, so it must
    // still apply.
    let read_at = read_clock(db).await?;

    let customer = stripe_core::customer::RetrieveCustomer::new(customer_id)
        .send(stripe)
        .await?;
    let customer = match customer {
        stripe_core::customer::RetrieveCustomerReturned::Customer(c) => c,
        stripe_core::customer::RetrieveCustomerReturned::DeletedCustomer(_) => {
            let txn = begin_write(db).await?;
            let applied = apply_customer_deleted(&*txn, customer_id).await?;
            txn.commit().await?;
            let mut report = SyncReport::default();
            count(&mut report.customers, applied);
            return Ok(report);
        }
    };

    // Not expanded down to the product: Stripe expands at most four levels deep. Product
    // names come from the prices (with their products) read below.
    let subscriptions: Vec<_> = stripe_billing::subscription::ListSubscription::new()
        .customer(customer_id)
        .status(stripe_billing::subscription::ListSubscriptionStatus::All)
        .limit(PAGE)
        .paginate()
        .stream(stripe)
        .try_collect()
        .await?;
    let payment_methods: Vec<_> = stripe_payment::payment_method::ListPaymentMethod::new()
        .customer(customer_id)
        .limit(PAGE)
        .paginate()
        .stream(stripe)
        .try_collect()
        .await?;
    let invoices = stripe_billing::invoice::ListInvoice::new()
        .customer(customer_id)
        .limit(SYNC_INVOICES)
        .send(stripe)
        .await?
        .data;
    let schedules = ScheduleFacts::list(stripe, customer_id).await?;
    let entitlements = EntitlementFacts::retrieve(stripe, customer_id).await?;

    // Prices the subscriptions use, with their products: read even when `prices` knows
    // them, so a rename or an archive whose event was lost is repaired.
    let mut prices: Vec<Price> = Vec::new();
    for sub in &subscriptions {
        for item in &sub.items.data {
            let id = item.price.id.as_str();
            if prices.iter().any(|p| p.id.as_str() == id) {
                continue;
            }
            let p = if item.price.product.is_object() {
                item.price.clone()
            } else {
                stripe_product::price::RetrievePrice::new(id)
                    .expand(vec!["product".to_owned()])
                    .send(stripe)
                    .await?
            };
            prices.push(p);
        }
    }

    let read = CustomerRead {
        customer_id,
        customer,
        subscriptions,
        payment_methods,
        invoices,
        prices,
        schedules,
        entitlements,
        read_at,
    };
    let mut writes = FetchLoop::default();
    loop {
        let txn = begin_write(db).await?;
        let result = apply_read(&*txn, writes.fetched(), &read).await;
        if let Some(report) = writes.settle(txn, result, stripe).await? {
            return Ok(report);
        }
    }
}

/// Everything [`sync_customer`] read of one customer, before writing any of it.
struct CustomerRead<'a> {
    customer_id: &'a str,
    customer: stripe_shared::Customer,
    subscriptions: Vec<stripe_shared::Subscription>,
    payment_methods: Vec<stripe_shared::PaymentMethod>,
    invoices: Vec<stripe_shared::Invoice>,
    prices: Vec<Price>,
    schedules: Vec<ScheduleFacts>,
    entitlements: EntitlementFacts,
    /// Taken before the first request.
    read_at: i64,
}

/// Applies a [`CustomerRead`] inside the caller's transaction.
async fn apply_read(
    txn: &impl ConnectionTrait,
    fetched: &Fetched,
    read: &CustomerRead<'_>,
) -> Result<SyncReport, SyncError> {
    let CustomerRead {
        customer_id,
        customer,
        subscriptions,
        payment_methods,
        invoices,
        prices,
        schedules,
        entitlements,
        read_at,
    } = read;
    let (customer_id, read_at) = (*customer_id, *read_at);
    let listed: Vec<&str> = payment_methods.iter().map(|p| p.id.as_str()).collect();
    let source = Source::Api(read_at);
    let mut report = SyncReport::default();
    for p in prices {
        count(
            &mut report.prices,
            apply_price(txn, fetched, p, source, false).await?,
        );
    }
    count(
        &mut report.customers,
        apply_customer(txn, fetched, customer, source).await?,
    );
    for sub in subscriptions {
        count(
            &mut report.subscriptions,
            apply_subscription(txn, fetched, sub, source, false).await?,
        );
    }
    for pm in payment_methods {
        count(
            &mut report.payment_methods,
            apply_payment_method(txn, fetched, pm, source, false).await?,
        );
    }
    // Methods we hold for this customer that the list lacks are detached below, unless
    // their row is stamped at or after the read (an attach of that second, or a clock
    // ahead of ours): the list cannot order against those, so each is read on its own.
    let unsure: Vec<(String, Option<i64>)> = payment_method::Entity::find()
        .select_only()
        .columns([
            payment_method::Column::Id,
            payment_method::Column::StripeEventAt,
        ])
        .filter(payment_method::Column::CustomerId.eq(customer_id))
        .filter(payment_method::Column::Id.is_not_in(listed.iter().copied()))
        .filter(payment_method::Column::StripeEventAt.gte(read_at))
        .into_tuple()
        .all(txn)
        .await?;
    for (id, watermark) in unsure {
        if let Some(pm) = fetched.payment_method(&id, watermark)? {
            let at = source.refetched(watermark);
            count(
                &mut report.payment_methods,
                apply_payment_method(txn, fetched, &pm, at, false).await?,
            );
        }
    }
    // Methods we still hold for this customer that Stripe no longer lists are gone.
    payment_method::Entity::update_many()
        .col_expr(
            payment_method::Column::CustomerId,
            Expr::value(Option::<String>::None),
        )
        .col_expr(payment_method::Column::IsDefault, Expr::value(false))
        .col_expr(payment_method::Column::StripeEventAt, Expr::value(read_at))
        .filter(payment_method::Column::CustomerId.eq(customer_id))
        .filter(payment_method::Column::Id.is_not_in(listed.iter().copied()))
        .filter(newer_than(
            Expr::col(payment_method::Column::StripeEventAt),
            source,
        ))
        .exec(txn)
        .await?;
    let default_pm = default_payment_method(customer);
    set_default_payment_method(txn, customer_id, default_pm.as_deref()).await?;
    for inv in invoices {
        count(
            &mut report.invoices,
            apply_invoice(txn, fetched, inv, source, false).await?,
        );
    }
    for schedule in schedules {
        count(
            &mut report.schedules,
            apply_schedule(txn, fetched, schedule, source).await?,
        );
    }
    apply_entitlements(txn, fetched, entitlements, source).await?;
    Ok(report)
}

/// Re-syncs every customer Billfold knows in one mode (`billfold sync --all`). A customer
/// that fails is reported and the rest carry on.
pub async fn sync_all(
    db: &DatabaseConnection,
    stripe: &::stripe::Client,
    livemode: bool,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let mut after = 0i64;
    loop {
        // Paged by primary key so a large table never sits in memory at once.
        let page: Vec<(i64, String)> = stripe_customer::Entity::find()
            .select_only()
            .columns([
                stripe_customer::Column::Id,
                stripe_customer::Column::CustomerId,
            ])
            .filter(stripe_customer::Column::Livemode.eq(livemode))
            .filter(stripe_customer::Column::Deleted.eq(false))
            .filter(stripe_customer::Column::Id.gt(after))
            .order_by_asc(stripe_customer::Column::Id)
            .limit(200)
            .into_tuple()
            .all(db)
            .await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        for (_, customer_id) in page {
            match sync_customer(db, stripe, &customer_id).await {
                Ok(r) => report.add(r),
                Err(e) => {
                    tracing::warn!(customer = %customer_id, error = %e, "customer re-sync failed");
                    report.failed.push((customer_id, e.to_string()));
                }
            }
        }
    }
    Ok(report)
}

/// Loads Stripe's active prices (and their products) into `prices` and `products`, in one
/// transaction. Returns how many prices were read.
pub async fn sync_catalogue(
    db: &DatabaseConnection,
    stripe: &::stripe::Client,
) -> Result<usize, SyncError> {
    // Taken before listing, like every API read (see `Source::Api` and `read_clock`).
    let read_at = read_clock(db).await?;
    let prices: Vec<Price> = stripe_product::price::ListPrice::new()
        .active(true)
        .expand(vec!["data.product".to_owned()])
        .limit(PAGE)
        .paginate()
        .stream(stripe)
        .try_collect()
        .await?;
    let source = Source::Api(read_at);
    let mut writes = FetchLoop::default();
    loop {
        let txn = begin_write(db).await?;
        let mut result = Ok(());
        for price in &prices {
            result = apply_price(&*txn, writes.fetched(), price, source, false)
                .await
                .map(|_| ());
            if result.is_err() {
                break;
            }
        }
        if writes.settle(txn, result, stripe).await?.is_some() {
            return Ok(prices.len());
        }
    }
}
