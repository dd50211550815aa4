use sea_orm::entity::prelude::*;

/// A single-use link a mail carries (proving an address, resetting a password): only the
/// SHA-256 of its token is stored, so a leaked table opens nothing.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    /// What it is for ([`crate::mail::links::Purpose`]).
    pub purpose: String,
    /// The account it is for (an invitation's: the member who sent it).
    pub user_id: i64,
    /// The address the link was sent to (a link proves that address, no other).
    pub email: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// When it was used; a used link is refused.
    pub used_at: Option<i64>,
    /// What the link is about besides its account: an invitation's id.
    pub subject: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
