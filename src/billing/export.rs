//! The demo app's export, a feature gated by Stripe's Entitlements (`export` in the
//! catalogue): the user's paid invoices as CSV, at `GET /app/export.csv`. It shows the one-line
//! guard a host app's handler uses for a feature: the [`Entitled`] argument.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{
    customer::find_customer,
    guard::{Entitled, FeatureKey},
};
use crate::{db::entities::invoice, error::AppError, state::AppState};

/// The catalogue's `export` feature.
pub struct Export;

impl FeatureKey for Export {
    const KEY: &'static str = super::summary::EXPORT_FEATURE;
}

/// `GET /app/export.csv`: 401 signed out; 403 without access, or with a plan that does not
/// include export (naming the plans that do); else the paid invoices as CSV.
pub async fn export_csv(
    State(state): State<AppState>,
    Entitled(paid, _): Entitled<Export>,
) -> Result<Response, AppError> {
    let mut csv = String::from("invoice,paid_at,amount,currency\n");
    if let Some(customer) = find_customer(&state, paid.user.org.id).await? {
        let paid_invoices = invoice::Entity::find()
            .filter(invoice::Column::CustomerId.eq(customer))
            .filter(invoice::Column::Status.eq("paid"))
            .order_by_asc(invoice::Column::Created)
            .all(&state.db)
            .await?;
        for i in paid_invoices {
            csv.push_str(&format!(
                "{},{},{}.{:02},{}\n",
                i.id,
                i.created,
                i.amount_paid / 100,
                i.amount_paid % 100,
                i.currency
            ));
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"invoices.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}
