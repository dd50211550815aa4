//! E-mail, through an outbox. A feature never sends a mail: it writes one row to
//! `mail_outbox` ([`outbox::enqueue`]) in the same transaction as the change that causes it,
//! under a key that makes it unique, and the sender task ([`sender`]) delivers it: retried with
//! back-off on a temporary refusal, recorded on a permanent one, sent by one replica only.
//!
//! - [`transport`]: SMTP (`SMTP_URL`, rustls) or, chosen explicitly, the log.
//! - [`render`]: the messages, text and HTML parts from the templates in `templates/`, every
//!   value escaped in HTML.
//! - [`notice`]: what the billing messages say (the facts queued with them).
//! - [`links`]: the single-use links a mail carries (prove an address, reset a password),
//!   stored hashed and made when the mail is sent, so the outbox never holds one.
//!
//! A leaf below the features: it reads the settings and the database only.

pub mod links;
pub mod notice;
pub mod outbox;
pub mod render;
pub mod sender;
pub mod transport;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::MailConfig;

/// Which message a row of the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// "Confirm your email address", with a link that proves it (a day).
    VerifyEmail,
    /// "Reset your password", with a link that sets a new one (an hour).
    PasswordReset,
    /// "Your trial ends on …": the date, what the first invoice will be, whether a card is on
    /// file ([`notice::TrialEnding`]).
    TrialEnding,
    /// "Your payment failed": the amount, the next try, when access ends, and a link that
    /// signs the user in and opens the portal's card update ([`notice::PaymentFailed`]).
    PaymentFailed,
    /// "Your payment needs you": the bank asks the card holder to confirm
    /// ([`notice::ActionRequired`]).
    ActionRequired,
    /// "Your plan has ended": cancelled, or Stripe stopped retrying ([`notice::PlanEnded`]).
    PlanEnded,
    /// To a new address the user asked to change to: a link that makes it the account's
    /// (a day).
    ConfirmNewEmail,
    /// To the old address, once the change is made: the new address, and what to do if the
    /// change was not the owner's ([`notice::EmailChanged`]).
    EmailChanged,
    /// "Join {organisation} on Billfold": who invited, the role, and a link that works once,
    /// for a week, for the address it went to ([`notice::Invitation`]).
    Invitation,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::VerifyEmail,
        Kind::PasswordReset,
        Kind::TrialEnding,
        Kind::PaymentFailed,
        Kind::ActionRequired,
        Kind::PlanEnded,
        Kind::ConfirmNewEmail,
        Kind::EmailChanged,
        Kind::Invitation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VerifyEmail => "verify_email",
            Kind::PasswordReset => "password_reset",
            Kind::TrialEnding => "trial_ending",
            Kind::PaymentFailed => "payment_failed",
            Kind::ActionRequired => "action_required",
            Kind::PlanEnded => "plan_ended",
            Kind::ConfirmNewEmail => "confirm_new_email",
            Kind::EmailChanged => "email_changed",
            Kind::Invitation => "invitation",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The single-use link the message carries, made when it is sent, if it carries one.
    pub fn link_purpose(self) -> Option<links::Purpose> {
        match self {
            Kind::VerifyEmail => Some(links::Purpose::VerifyEmail),
            Kind::PasswordReset => Some(links::Purpose::PasswordReset),
            Kind::PaymentFailed => Some(links::Purpose::FixPayment),
            Kind::ConfirmNewEmail => Some(links::Purpose::ChangeEmail),
            Kind::Invitation => Some(links::Purpose::Invitation),
            Kind::TrialEnding | Kind::ActionRequired | Kind::PlanEnded | Kind::EmailChanged => None,
        }
    }
}

/// What the app holds for mail: how it is delivered, who it is from, and a bell that wakes
/// this process's sender when a mail is queued (other replicas find it on their next poll).
pub struct Mailer {
    pub transport: transport::Transport,
    pub config: MailConfig,
    pub queued: Notify,
}

impl Mailer {
    pub fn new(config: &MailConfig, app_host: &str) -> anyhow::Result<Arc<Mailer>> {
        Ok(Arc::new(Mailer {
            transport: transport::Transport::new(config, app_host)?,
            config: config.clone(),
            queued: Notify::new(),
        }))
    }

    /// Wakes the sender: call after committing a transaction that queued mail.
    pub fn wake(&self) {
        self.queued.notify_one();
    }
}
