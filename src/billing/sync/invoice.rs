//! Invoices: what the billing page lists, and the unpaid one it links to.

use sea_orm::{sea_query::Expr, ActiveValue::Set, ConnectionTrait};
use stripe_shared::Invoice;

use super::{
    decide_or_refetch,
    write::{newer_than, upsert_guarded, watermark_of},
    Applied, Plan, Source, SyncError,
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

/// Applies an invoice (`invoice.paid|payment_succeeded|payment_failed|
/// payment_action_required|finalized`, or one read from the API).
pub async fn apply_invoice(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    inv: &Invoice,
    source: Source,
) -> Result<Applied, SyncError> {
    use invoice::Column as C;
    let (Some(id), Some(_)) = (inv.id.as_ref(), inv.customer.as_ref()) else {
        // A preview invoice has no id; one without a customer is nobody's bill here.
        return Ok(Applied::Ignored);
    };
    let watermark = watermark_of::<invoice::Entity>(conn, id.as_str(), C::StripeEventAt).await?;
    let refetch = || async move {
        stripe_billing::invoice::RetrieveInvoice::new(id.as_str())
            .send(stripe)
            .await
    };
    let (source, fetched) = match decide_or_refetch(watermark, source, refetch).await? {
        Plan::Stale => return Ok(Applied::Stale),
        Plan::Write { source, fetched } => (source, fetched),
    };
    let inv = fetched.as_ref().unwrap_or(inv);
    let Some(customer) = inv.customer.as_ref() else {
        return Ok(Applied::Ignored);
    };
    let row = invoice::ActiveModel {
        id: Set(id.as_str().to_owned()),
        customer_id: Set(customer.id().as_str().to_owned()),
        subscription_id: Set(invoice_subscription(inv)),
        status: Set(inv
            .status
            .as_ref()
            .map_or_else(|| "draft".to_owned(), |s| s.as_str().to_owned())),
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
    };
    let updates = [
        C::CustomerId,
        C::SubscriptionId,
        C::Status,
        C::AmountDue,
        C::AmountPaid,
        C::Currency,
        C::HostedInvoiceUrl,
        C::PeriodStart,
        C::PeriodEnd,
        C::Created,
        C::Livemode,
        C::StripeEventAt,
        C::UpdatedAt,
    ];
    let guard = newer_than(Expr::col((invoice::Entity, C::StripeEventAt)), source);
    Ok(upsert_guarded(conn, row, updates, guard).await?)
}
