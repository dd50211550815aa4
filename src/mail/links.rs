//! The single-use links a mail carries: 256 random bits in the link, only their SHA-256 in
//! `email_tokens`, bound to one user, one address and one purpose, expiring. Made by the
//! sender when the mail leaves (so the outbox never holds one), used at most once.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::RngCore;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::db::{clock, entities::email_token};

/// What a link is for, and how long it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Proves the address it was sent to: a day.
    VerifyEmail,
    /// Sets a new password: an hour.
    PasswordReset,
    /// Signs the user in and opens the portal's card update, from a payment-failed mail:
    /// three days.
    FixPayment,
    /// Makes the address it was sent to the account's new one: a day.
    ChangeEmail,
    /// Joins the organisation that invited the address it was sent to: a week.
    Invitation,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::PasswordReset => "password_reset",
            Purpose::FixPayment => "fix_payment",
            Purpose::ChangeEmail => "change_email",
            Purpose::Invitation => "invitation",
        }
    }

    pub fn lifetime_secs(self) -> i64 {
        match self {
            Purpose::VerifyEmail | Purpose::ChangeEmail => 24 * 3600,
            Purpose::PasswordReset => 3600,
            Purpose::FixPayment => 3 * 24 * 3600,
            Purpose::Invitation => 7 * 24 * 3600,
        }
    }

    /// The page the link opens.
    pub fn path(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "/verify-email",
            Purpose::PasswordReset => "/reset-password",
            Purpose::FixPayment => "/fix-payment",
            Purpose::ChangeEmail => "/confirm-email-change",
            Purpose::Invitation => "/accept-invitation",
        }
    }
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a link this app made (or for another purpose).
    Unknown,
    Used,
    Expired,
}

impl Refused {
    /// What the person who followed it reads.
    pub fn message(self) -> &'static str {
        match self {
            Refused::Unknown => "This link is not valid. Copy the whole address from the mail, or ask for a new one.",
            Refused::Used => "This link has been used already. Ask for a new one if you still need it.",
            Refused::Expired => "This link has expired. Ask for a new one.",
        }
    }
}

fn hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// Makes a link's token for `user_id` at `email` (about `subject`, for an invitation);
/// returns the token (for the link only).
pub async fn mint(
    db: &impl ConnectionTrait,
    purpose: Purpose,
    user_id: i64,
    email: &str,
    subject: Option<&str>,
) -> Result<String, DbErr> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let raw = URL_SAFE_NO_PAD.encode(bytes);
    let now = clock::now();
    email_token::Entity::insert(email_token::ActiveModel {
        token_hash: Set(hash(&raw)),
        purpose: Set(purpose.as_str().to_owned()),
        user_id: Set(user_id),
        email: Set(email.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + purpose.lifetime_secs()),
        used_at: Set(None),
        subject: Set(subject.map(str::to_owned)),
    })
    .exec_without_returning(db)
    .await?;
    Ok(raw)
}

/// The token's row if it is a live link for `purpose`, without using it.
pub async fn check(
    db: &impl ConnectionTrait,
    purpose: Purpose,
    raw: &str,
) -> Result<Result<email_token::Model, Refused>, DbErr> {
    // Only what `mint` could have made is looked up.
    let well_formed = raw.len() == 43
        && URL_SAFE_NO_PAD
            .decode(raw)
            .is_ok_and(|bytes| bytes.len() == 32);
    if !well_formed {
        return Ok(Err(Refused::Unknown));
    }
    let Some(row) = email_token::Entity::find_by_id(hash(raw))
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .one(db)
        .await?
    else {
        return Ok(Err(Refused::Unknown));
    };
    Ok(if row.used_at.is_some() {
        Err(Refused::Used)
    } else if clock::now() >= row.expires_at {
        Err(Refused::Expired)
    } else {
        Ok(row)
    })
}

/// Uses the link: its row if it was live, once; a second use (even at the same moment, on
/// another replica) is refused.
pub async fn redeem(
    db: &impl ConnectionTrait,
    purpose: Purpose,
    raw: &str,
) -> Result<Result<email_token::Model, Refused>, DbErr> {
    let row = match check(db, purpose, raw).await? {
        Ok(row) => row,
        Err(refused) => return Ok(Err(refused)),
    };
    let taken = email_token::Entity::update_many()
        .col_expr(
            email_token::Column::UsedAt,
            sea_orm::sea_query::Expr::value(clock::now()),
        )
        .filter(email_token::Column::TokenHash.eq(row.token_hash.as_str()))
        .filter(email_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(if taken.rows_affected == 1 {
        Ok(row)
    } else {
        Err(Refused::Used)
    })
}
