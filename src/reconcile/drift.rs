//! The drift records the reconciler left: `billfold drift [--since 1d]`.

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::db::{clock::rfc3339, entities::drift_record};

/// Drift records found since `since` (unix seconds), newest first, at most `limit`.
pub async fn list(
    db: &DatabaseConnection,
    since: Option<i64>,
    limit: u64,
) -> Result<Vec<drift_record::Model>, DbErr> {
    let mut q = drift_record::Entity::find();
    if let Some(since) = since {
        q = q.filter(drift_record::Column::DetectedAt.gte(since));
    }
    q.order_by_desc(drift_record::Column::DetectedAt)
        .order_by_desc(drift_record::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// A plain table for the terminal.
pub fn format_table(records: &[drift_record::Model]) -> String {
    let mut out = format!(
        "{:<20} {:<20} {:<14} {:<30} {:<22} {:<20} {:<20} {}\n",
        "DETECTED", "CUSTOMER", "OBJECT", "ID", "FIELD", "DATABASE", "STRIPE", "EVENT"
    );
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
    for r in records {
        out.push_str(&format!(
            "{:<20} {:<20} {:<14} {:<30} {:<22} {:<20} {:<20} {}\n",
            rfc3339(r.detected_at),
            r.customer_id,
            r.object_type,
            r.object_id,
            r.field,
            shown(&r.database_value),
            shown(&r.stripe_value),
            r.event_type,
        ));
    }
    if records.is_empty() {
        out.push_str("no drift found\n");
    }
    out
}
