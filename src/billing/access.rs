//! Who gets the paid features, and why: pure rules over the user's subscriptions.
//!
//! **Primary subscription.** A customer may hold several subscriptions. The one that decides
//! access (and that the billing page shows) is picked by status — active, then trialing, then
//! past_due, then anything else — and among equals the one whose period (or trial) ends
//! latest; an exact tie goes to the larger id, so the pick is stable.
//!
//! **Access.** active and trialing grant; a scheduled cancellation (`cancel_at_period_end` or
//! `cancel_at`) grants until it takes effect; past_due grants for as long as Stripe is still
//! retrying the payment (while the status stays past_due); unpaid, canceled, incomplete, incomplete_expired and paused deny.
//!
//! **The grace clock.** Under `PAST_DUE_GRACE`, a past_due subscription keeps access for the
//! grace period from the first attempt of its **oldest** unpaid invoice
//! ([`grace_started_at`]): a plan that fails again next week does not restart the clock.
//!
//! The rules read [`Subscription`] and [`Invoice`], billing's own model, so any list of
//! things that hold one (the page's DTO, a row mapped to it) can be asked.

use serde::{Deserialize, Serialize};

use super::model::{Invoice, PastDuePolicy, Subscription, SubscriptionStatus as Status};

/// How a status ranks when picking the primary subscription (lower first).
fn rank(status: Status) -> u8 {
    match status {
        Status::Active => 0,
        Status::Trialing => 1,
        Status::PastDue => 2,
        _ => 3,
    }
}

/// Why access is granted or denied, for the user to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Active,
    Trial,
    CancellationScheduled,
    PaymentRetrying,
    Unpaid,
    /// past_due beyond the grace period the app allows.
    GraceOver,
    Ended,
    Incomplete,
    Paused,
    NoSubscription,
    /// The plan is priced per seat, Stripe's quantity is below the members, and this member's
    /// seat is not among the paid ones (by the seat policy's `beyond_paid`).
    NoSeat,
}

impl Reason {
    pub fn describe(&self) -> &'static str {
        match self {
            Reason::Active => "Your subscription is active.",
            Reason::Trial => "You are on a free trial.",
            Reason::CancellationScheduled => {
                "Your subscription is cancelled and runs until the end of the paid period."
            }
            Reason::PaymentRetrying => {
                "Your last payment failed; access continues while the payment is retried."
            }
            Reason::Unpaid => {
                "Your subscription is unpaid: the payment was retried and never went through."
            }
            Reason::GraceOver => {
                "Your last payment failed and the grace period is over; access returns when the payment goes through."
            }
            Reason::Ended => "Your subscription has ended.",
            Reason::Incomplete => {
                "Your subscription was never completed: the first payment did not go through."
            }
            Reason::Paused => "Your subscription is paused.",
            Reason::NoSubscription => "You have no subscription.",
            Reason::NoSeat => {
                "Your organisation pays for fewer seats than it has members, and yours is not among them: ask a billing admin to add seats."
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub granted: bool,
    pub reason: Reason,
    /// When a granted access ends unless something changes (renewal, trial end, cancellation).
    pub until: Option<i64>,
}

/// The end of the current period or trial: what "latest" means when picking the primary one.
fn horizon(sub: &Subscription) -> i64 {
    sub.current_period_end
        .or(sub.trial_end)
        .or(sub.ended_at)
        .or(sub.canceled_at)
        .unwrap_or(i64::MIN)
}

/// The subscription that decides access and that the billing page shows.
pub fn primary<S: AsRef<Subscription>>(subs: &[S]) -> Option<&S> {
    subs.iter().min_by(|a, b| {
        let (a_sub, b_sub) = (a.as_ref(), b.as_ref());
        rank(a_sub.status)
            .cmp(&rank(b_sub.status))
            .then_with(|| horizon(b_sub).cmp(&horizon(a_sub)))
            .then_with(|| b_sub.id.cmp(&a_sub.id))
    })
}

/// Whether the user has access now, why, and until when, with past_due granting while Stripe
/// retries.
pub fn access<S: AsRef<Subscription>>(subs: &[S], now: i64) -> Access {
    access_under(subs, now, PastDuePolicy::WhileRetrying, None)
}

/// When the grace clock of `subscription_id` started: the first attempt of the oldest of its
/// invoices still owed. `None` when none is owed.
pub fn grace_started_at(invoices: &[Invoice], subscription_id: &str) -> Option<i64> {
    invoices
        .iter()
        .filter(|i| i.subscription_id.as_deref() == Some(subscription_id) && i.is_unpaid())
        .map(Invoice::first_attempt)
        .min()
}

/// [`access`] under a past-due policy: a payment that first failed at `failed_at` keeps access
/// for as long as the policy says (and never beyond Stripe's own retries).
pub fn access_under<S: AsRef<Subscription>>(
    subs: &[S],
    now: i64,
    past_due: PastDuePolicy,
    failed_at: Option<i64>,
) -> Access {
    let deny = |reason| Access {
        granted: false,
        reason,
        until: None,
    };
    let Some(sub) = primary(subs).map(AsRef::as_ref) else {
        return deny(Reason::NoSubscription);
    };
    match sub.status {
        Status::Active | Status::Trialing => {
            if let Some(end) = sub.cancels_at() {
                return if now < end {
                    Access {
                        granted: true,
                        reason: Reason::CancellationScheduled,
                        until: Some(end),
                    }
                } else {
                    deny(Reason::Ended)
                };
            }
            if sub.status == Status::Trialing {
                Access {
                    granted: true,
                    reason: Reason::Trial,
                    until: sub.trial_end.or(sub.current_period_end),
                }
            } else {
                Access {
                    granted: true,
                    reason: Reason::Active,
                    until: sub.current_period_end,
                }
            }
        }
        // Stripe is still retrying the payment: access continues meanwhile, as long as the
        // grace period (if any) has not run out.
        Status::PastDue => match past_due.access_ends(failed_at) {
            Some(end) if now >= end => deny(Reason::GraceOver),
            until => Access {
                granted: true,
                reason: Reason::PaymentRetrying,
                until,
            },
        },
        Status::Unpaid => deny(Reason::Unpaid),
        Status::Canceled => deny(Reason::Ended),
        Status::Incomplete | Status::IncompleteExpired => deny(Reason::Incomplete),
        Status::Paused => deny(Reason::Paused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn invoice(sub: &str, status: &str, finalized: i64) -> Invoice {
        Invoice {
            subscription_id: Some(sub.into()),
            status: status.into(),
            created: finalized - 3_600,
            finalized_at: Some(finalized),
        }
    }

    #[test]
    fn the_grace_clock_starts_at_the_oldest_unpaid_invoice_of_the_subscription() {
        let weekly = [
            invoice("sub_1", "paid", NOW - 21 * DAY),
            invoice("sub_1", "open", NOW - 14 * DAY),
            invoice("sub_1", "uncollectible", NOW - 7 * DAY),
            invoice("sub_1", "open", NOW),
            invoice("sub_other", "open", NOW - 30 * DAY),
            invoice("sub_1", "void", NOW - 40 * DAY),
            invoice("sub_1", "draft", NOW - 50 * DAY),
        ];
        assert_eq!(grace_started_at(&weekly, "sub_1"), Some(NOW - 14 * DAY));
        assert_eq!(grace_started_at(&weekly, "sub_other"), Some(NOW - 30 * DAY));
        assert_eq!(grace_started_at(&weekly, "sub_none"), None);
        let mut unfinalized = invoice("sub_2", "open", NOW);
        unfinalized.finalized_at = None;
        assert_eq!(grace_started_at(&[unfinalized], "sub_2"), Some(NOW - 3_600));

        // A weekly plan failing every week: the grace counts from the first failure.
        let grace = PastDuePolicy::Grace { secs: 10 * DAY };
        let subs = [sub("sub_1", "past_due", NOW + 7 * DAY)];
        let access = access_under(&subs, NOW, grace, grace_started_at(&weekly, "sub_1"));
        assert!(!access.granted, "{access:?}");
        let access = access_under(&subs, NOW, grace, Some(NOW));
        assert!(
            access.granted,
            "the newest failure alone would have granted"
        );
    }

    fn sub(id: &str, status: &str, period_end: i64) -> Subscription {
        let mut s = Subscription::new(id, Status::parse(status));
        s.current_period_start = Some(period_end - 30 * DAY);
        s.current_period_end = Some(period_end);
        s
    }

    #[test]
    fn every_status_grants_or_denies() {
        let cases = [
            ("active", true, Reason::Active),
            ("trialing", true, Reason::Trial),
            ("past_due", true, Reason::PaymentRetrying),
            ("unpaid", false, Reason::Unpaid),
            ("canceled", false, Reason::Ended),
            ("incomplete", false, Reason::Incomplete),
            ("incomplete_expired", false, Reason::Incomplete),
            ("paused", false, Reason::Paused),
            ("something_new", false, Reason::Incomplete),
        ];
        for (status, granted, reason) in cases {
            let a = access(&[sub("sub_1", status, NOW + 10 * DAY)], NOW);
            assert_eq!((a.granted, a.reason), (granted, reason), "{status}");
        }
        let none = access::<Subscription>(&[], NOW);
        assert_eq!((none.granted, none.reason), (false, Reason::NoSubscription));
    }

    #[test]
    fn active_runs_until_the_period_end_and_trials_until_the_trial_end() {
        let a = access(&[sub("sub_1", "active", NOW + DAY)], NOW);
        assert_eq!(a.until, Some(NOW + DAY));
        let mut t = sub("sub_1", "trialing", NOW + 14 * DAY);
        t.trial_end = Some(NOW + 14 * DAY);
        assert_eq!(access(&[t], NOW).until, Some(NOW + 14 * DAY));
    }

    #[test]
    fn scheduled_cancellation_grants_until_exactly_the_end() {
        let end = NOW + 5 * DAY;
        let mut at_period_end = sub("sub_1", "active", end);
        at_period_end.cancel_at_period_end = true;
        let mut at_date = sub("sub_2", "active", NOW + 30 * DAY);
        at_date.cancel_at = Some(end);
        for s in [at_period_end, at_date] {
            let before = access(std::slice::from_ref(&s), end - 1);
            assert_eq!(
                (before.granted, before.reason.clone(), before.until),
                (true, Reason::CancellationScheduled, Some(end))
            );
            let at = access(std::slice::from_ref(&s), end);
            assert_eq!((at.granted, at.reason), (false, Reason::Ended));
        }
        // A trial that is set to cancel also ends when the cancellation does.
        let mut trial = sub("sub_3", "trialing", end);
        trial.cancel_at_period_end = true;
        assert!(access(std::slice::from_ref(&trial), end - 1).granted);
        assert!(!access(&[trial], end + 1).granted);
    }

    #[test]
    fn the_primary_subscription_is_picked_by_status_then_latest_end() {
        let canceled = sub("sub_c", "canceled", NOW + 90 * DAY);
        let past_due = sub("sub_p", "past_due", NOW + 60 * DAY);
        let trial = sub("sub_t", "trialing", NOW + 30 * DAY);
        let active_soon = sub("sub_a1", "active", NOW + DAY);
        let active_late = sub("sub_a2", "active", NOW + 20 * DAY);

        let all = vec![
            canceled.clone(),
            past_due.clone(),
            trial.clone(),
            active_soon.clone(),
            active_late.clone(),
        ];
        assert_eq!(primary(&all).map(|s| s.id.as_str()), Some("sub_a2"));
        assert_eq!(
            primary(&[canceled.clone(), past_due.clone(), trial.clone()]).map(|s| s.id.as_str()),
            Some("sub_t")
        );
        assert_eq!(
            primary(&[canceled.clone(), past_due]).map(|s| s.id.as_str()),
            Some("sub_p")
        );
        let older_canceled = sub("sub_c0", "canceled", NOW - 90 * DAY);
        assert_eq!(
            primary(&[older_canceled, canceled]).map(|s| s.id.as_str()),
            Some("sub_c")
        );
        // An active subscription wins access even when a canceled one is listed first.
        let a = access(&all, NOW);
        assert_eq!((a.granted, a.until), (true, Some(NOW + 20 * DAY)));
    }
}
