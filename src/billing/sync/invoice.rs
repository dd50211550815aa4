//! Invoices: what the billing page lists, and the unpaid one it links to.

use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveValue::Set,
    ConnectionTrait,
};
use stripe_shared::Invoice;

use super::{
    again_on_tie, decide_or_refetch,
    write::{newer_than, upsert_guarded, watermark_of},
    Applied, Fetched, Plan, Source, SyncError,
};
use crate::db::{clock::now, entities::invoice};

/// The subscription an invoice bills, wherever this API version puts it.
fn invoice_subscription(inv: &Invoice) -> Option<String> {
    inv.parent
        .as_ref()
        .and_then(|p| p.subscription_details.as_ref())
        .map(|d| d.subscription.id().as_str().to_owned())
        .or_else(|| {
            inv.subscription
                .as_ref()
                .map(|s| s.id().as_str().to_owned())
        })
}

/// What `status` says of an invoice Stripe deleted (only drafts can be): not one of
/// Stripe's statuses, a tombstone that nothing older or newer brings back.
pub const DELETED: &str = "deleted";

/// Applies an invoice (`invoice.created|updated|finalized|paid|payment_succeeded|
/// payment_failed|payment_action_required|marked_uncollectible|voided`, or one read from the
/// API), or with `deletion` an `invoice.deleted`, which is final.
pub async fn apply_invoice(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    inv: &Invoice,
    source: Source,
    deletion: bool,
) -> Result<Applied, SyncError> {
    let id = inv.id.as_ref().map(|i| i.as_str()).unwrap_or_default();
    again_on_tie(
        source,
        || apply_once(conn, fetched, inv, source, deletion),
        || watermark_of::<invoice::Entity>(conn, id, invoice::Column::StripeEventAt),
    )
    .await
}

async fn apply_once(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    inv: &Invoice,
    source: Source,
    deletion: bool,
) -> Result<Applied, SyncError> {
    use invoice::Column as C;
    let (Some(id), Some(_)) = (inv.id.as_ref(), inv.customer.as_ref()) else {
        // A preview invoice has no id; one without a customer is nobody's bill here.
        return Ok(Applied::Ignored);
    };
    let not_deleted = ExprTrait::ne(Expr::col((invoice::Entity, C::Status)), DELETED);
    if deletion {
        // Deletion is final: it applies whatever its order, once.
        let row = invoice_row(id.as_str(), inv, DELETED.to_owned(), source);
        return Ok(upsert_guarded(conn, row, UPDATES, not_deleted).await?);
    }
    let watermark = watermark_of::<invoice::Entity>(conn, id.as_str(), C::StripeEventAt).await?;
    let refetch = |after| fetched.invoice(id.as_str(), after);
    let (source, fetched) = match decide_or_refetch(watermark, source, refetch)? {
        Plan::Stale => return Ok(Applied::Stale),
        Plan::Write { source, fetched } => (source, fetched),
    };
    let inv = fetched.as_ref().unwrap_or(inv);
    if inv.customer.is_none() {
        return Ok(Applied::Ignored);
    }
    let status = inv
        .status
        .as_ref()
        .map_or_else(|| "draft".to_owned(), |s| s.as_str().to_owned());
    let row = invoice_row(id.as_str(), inv, status, source);
    let guard = newer_than(Expr::col((invoice::Entity, C::StripeEventAt)), source).and(not_deleted);
    Ok(upsert_guarded(conn, row, UPDATES, guard).await?)
}

const UPDATES: [invoice::Column; 16] = [
    invoice::Column::CustomerId,
    invoice::Column::SubscriptionId,
    invoice::Column::Status,
    invoice::Column::AmountDue,
    invoice::Column::AmountPaid,
    invoice::Column::Currency,
    invoice::Column::HostedInvoiceUrl,
    invoice::Column::PeriodStart,
    invoice::Column::PeriodEnd,
    invoice::Column::Created,
    invoice::Column::Livemode,
    invoice::Column::StripeEventAt,
    invoice::Column::UpdatedAt,
    invoice::Column::AttemptCount,
    invoice::Column::NextPaymentAttempt,
    invoice::Column::FinalizedAt,
];

/// The row an invoice is stored as, with `status` (Stripe's, or [`DELETED`]).
fn invoice_row(id: &str, inv: &Invoice, status: String, source: Source) -> invoice::ActiveModel {
    invoice::ActiveModel {
        id: Set(id.to_owned()),
        customer_id: Set(inv
            .customer
            .as_ref()
            .map(|c| c.id().as_str().to_owned())
            .unwrap_or_default()),
        subscription_id: Set(invoice_subscription(inv)),
        status: Set(status),
        amount_due: Set(inv.amount_due),
        amount_paid: Set(inv.amount_paid),
        currency: Set(inv.currency.to_string()),
        hosted_invoice_url: Set(inv.hosted_invoice_url.clone()),
        period_start: Set(Some(inv.period_start)),
        period_end: Set(Some(inv.period_end)),
        created: Set(inv.created),
        livemode: Set(inv.livemode),
        stripe_event_at: Set(Some(source.at())),
        updated_at: Set(now()),
        attempt_count: Set(i32::try_from(inv.attempt_count).unwrap_or(i32::MAX)),
        next_payment_attempt: Set(inv.next_payment_attempt),
        finalized_at: Set(inv.status_transitions.finalized_at),
    }
}
