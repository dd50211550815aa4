//! The Pro report, the paid-only page behind the guard: as a server function's helper and as
//! a plain Axum route.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::customer::find_customer;
use crate::{db::entities::invoice, error::AppError, state::AppState};

/// The Pro report for a user the guard let through: their paid invoices, totalled.
pub async fn pro_report(
    state: &AppState,
    paid: &super::guard::Paid,
) -> Result<super::summary::ProReport, AppError> {
    let paid_invoices = match find_customer(state, paid.user.org.id).await? {
        Some(customer) => {
            invoice::Entity::find()
                .filter(invoice::Column::CustomerId.eq(customer))
                .filter(invoice::Column::Status.eq("paid"))
                .all(&state.db)
                .await?
        }
        None => vec![],
    };
    Ok(super::summary::ProReport {
        invoices_paid: u32::try_from(paid_invoices.len()).unwrap_or(u32::MAX),
        amount_paid: paid_invoices.iter().map(|i| i.amount_paid).sum(),
        currency: paid_invoices.first().map(|i| i.currency.clone()),
        access_until: paid.access.until,
    })
}

/// The same report as a plain Axum route (`GET /app/pro-report`): the one-line guard a host
/// app's own handlers use is the [`Paid`](super::guard::Paid) argument.
pub async fn pro_report_route(
    axum::extract::State(state): axum::extract::State<AppState>,
    paid: super::guard::Paid,
) -> Result<axum::Json<super::summary::ProReport>, AppError> {
    Ok(axum::Json(pro_report(&state, &paid).await?))
}
