use sea_orm::entity::prelude::*;

/// One mail, written in the same transaction as the change that causes it, then delivered by
/// the sender task ([`crate::mail::sender`]). `key` makes it unique: the same cause never
/// queues a second mail.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// What makes the mail unique, e.g. `verify_email:7:1765000000` or
    /// `payment_failed:in_123`.
    #[sea_orm(unique)]
    pub key: String,
    /// Which message ([`crate::mail::Kind`]).
    pub kind: String,
    pub user_id: Option<i64>,
    pub to_address: String,
    /// What the template needs besides the recipient, as JSON (never a secret: a link's token
    /// is made when the mail is sent).
    pub params: String,
    /// `queued`, `sent` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// Unix seconds: not sent before then (the back-off after a temporary refusal).
    pub next_attempt_at: i64,
    /// The replica sending it now, and until when its claim holds.
    pub claimed_by: Option<String>,
    pub claimed_until: Option<i64>,
    /// The last refusal: the SMTP server's words.
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
