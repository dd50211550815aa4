use sea_orm::entity::prelude::*;

/// An invitation to join an organisation, for one address and role, mailed with a link
/// that works once, for a week. Accepted, revoked or expired, it stays as a record.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub organization_id: i64,
    /// The address invited (trimmed, lower-cased, checked).
    pub email: String,
    /// The role it gives ([`crate::domain::Role`]).
    pub role: String,
    /// The member who sent it.
    pub invited_by: i64,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
