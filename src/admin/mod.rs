//! Operations: `/admin/billing`, the operators' inbox of Stripe events (each one replayable),
//! the drift the reconciler found and healed, and its last cycle.
//!
//! Open only to the operators granted on the server (`billfold admin add EMAIL`, see
//! [`operators`]). Anyone else, signed in or not, gets the
//! not-found page any unknown address gets, so the page's existence is not revealed. It is
//! rendered on the server alone and works without JavaScript: the filters are a GET form and
//! each replay a plain form post (to [`REPLAY_PATH`], an Axum route under the cross-origin
//! guard). Nothing but a replay changes anything.
//!
//! Shared (both sides): the page's DTOs and components. Server only: who is an operator, the
//! queries behind the page, the replay route and the guard ([`ssr`]).

pub mod page;

#[cfg(feature = "ssr")]
pub mod operators;
#[cfg(feature = "ssr")]
pub mod ssr;

use serde::{Deserialize, Serialize};

/// The operators' page.
pub const ADMIN_BILLING: &str = "/admin/billing";
/// Where each event's replay form posts: `event_id`, and the page's filters to come back to.
pub const REPLAY_PATH: &str = "/admin/billing/replay";
/// Every outcome a received event can have (`webhook_events.outcome`), for the filter.
pub const OUTCOMES: &[&str] = &[
    "applied",
    "duplicate",
    "stale",
    "ignored",
    "failed",
    "mode_mismatch",
    "set_aside",
];
/// The most events the page lists (the newest first).
pub const EVENT_LIMIT: u64 = 50;
/// The most drift records the page lists (the newest first).
pub const DRIFT_LIMIT: u64 = 50;
/// The most billing alerts the page lists (the newest first).
pub const ALERT_LIMIT: u64 = 50;

/// The page's filters, as its query string (and each replay form) carries them: `outcome`,
/// `type` and `since` (unix seconds, RFC 3339, or an age like `2h` or `1d`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxFilter {
    pub outcome: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<String>,
}

impl InboxFilter {
    /// The filters from a query string's (or a form's) fields: trimmed, empty ones left out.
    pub fn from_fields(get: impl Fn(&str) -> Option<String>) -> Self {
        let field = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        InboxFilter {
            outcome: field("outcome"),
            event_type: field("type"),
            since: field("since"),
        }
    }

    /// The filters that are set, as query-string fields (name, value).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        [
            ("outcome", &self.outcome),
            ("type", &self.event_type),
            ("since", &self.since),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
        .collect()
    }
}

/// Everything `/admin/billing` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInbox {
    /// The operator looking at it.
    pub email: String,
    /// Received events matching the filters, newest first (at most [`EVENT_LIMIT`]).
    pub events: Vec<EventRow>,
    /// Why the filters could not be applied (then no events are listed).
    pub filter_error: Option<String>,
    /// Every event type received so far, to pick from.
    pub event_types: Vec<String>,
    /// The newest drift records (at most [`DRIFT_LIMIT`]).
    pub drift: Vec<DriftRow>,
    /// What only an operator can put right, newest first (at most [`ALERT_LIMIT`]).
    pub alerts: Vec<AlertRow>,
    /// The newest mails of the outbox: queued, sent or failed, with the reason.
    #[serde(default)]
    pub mail: Vec<MailRow>,
    /// The changes owed to Stripe (a customer's email), newest first: done, waiting or
    /// refused, with what Stripe said.
    #[serde(default)]
    pub stripe_updates: Vec<StripeUpdateRow>,
    /// The reconciler's latest cycle, on any replica.
    pub last_run: Option<RunRow>,
    /// When the last cycle that got through everything ended (RFC 3339).
    pub last_success: Option<String>,
    /// Events the reconciler set aside after failing again and again.
    pub set_aside: u64,
    /// Events that failed because Stripe refused a request no retry changes (the key).
    pub refused_by_stripe: u64,
    /// How many days a payload is kept (`WEBHOOK_PAYLOAD_RETENTION`).
    pub payload_retention_days: u64,
}

/// One received event, times in RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub livemode: bool,
    /// Stripe's `created`.
    pub created: String,
    pub received_at: String,
    pub processed_at: Option<String>,
    pub outcome: String,
    pub attempts: i32,
    pub api_version: Option<String>,
    /// The payload was in another API version's shape: the API's copy was applied.
    pub refetched: bool,
    pub error: Option<String>,
    /// The last attempt failed because Stripe refused a request no retry changes.
    pub stripe_refused: bool,
    /// The payload was removed for its age (the row stays).
    pub payload_removed: bool,
    /// The body as delivered, pretty-printed when it is JSON.
    pub payload: String,
}

/// One field the reconciler found different from Stripe (and healed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRow {
    pub detected_at: String,
    pub customer_id: String,
    pub object_type: String,
    pub object_id: String,
    pub field: String,
    /// The event that would have carried the change.
    pub event_type: String,
    pub database_value: Option<String>,
    pub stripe_value: Option<String>,
}

/// Something about a customer's billing only an operator can put right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRow {
    pub raised_at: String,
    /// What is wrong, in a few words.
    pub title: String,
    pub customer_id: String,
    /// The object that showed it (`cs_…`, `cus_…`).
    pub object_id: String,
    /// What happened and what to do.
    pub detail: String,
}

/// One mail of the outbox, times in RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailRow {
    pub created_at: String,
    pub kind: String,
    pub to: String,
    /// `queued`, `sent` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub sent_at: Option<String>,
    /// The next try of a queued mail that was refused for now.
    pub next_attempt_at: Option<String>,
    /// The SMTP server's last refusal.
    pub last_error: Option<String>,
}

/// One change owed to Stripe, times in RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeUpdateRow {
    pub updated_at: String,
    /// What it changes (`customer_email`).
    pub kind: String,
    pub customer_id: String,
    /// `queued`, `done` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// How many changes the row carried (each newer one replaced the last).
    pub generation: i32,
    /// The next try of a queued change that failed for now.
    pub next_attempt_at: Option<String>,
    /// What Stripe (or the network) said last.
    pub last_error: Option<String>,
}

/// One reconciler cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRow {
    /// `host:pid` of the process that ran it.
    pub runner: String,
    pub started_at: String,
    pub finished_at: String,
    pub took_ms: i64,
    pub succeeded: bool,
    pub events_processed: i32,
    pub customers_compared: i32,
    pub drift: i32,
    pub error: Option<String>,
}

/// What a replay came to, carried back to the page in its query string:
/// `replayed=evt_…&result=applied`. (`result`, not `outcome`, which is the page's filter.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayFlash {
    pub event_id: String,
    pub result: ReplayResult,
}

/// How a replay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayResult {
    /// It went through the pipeline, with this outcome (`applied`, `stale`, `ignored`, …).
    Processed(String),
    /// Applying failed again; the error is recorded on the event.
    Failed,
    /// No event with this id has been received.
    NotFound,
    /// It could not be replayed (its payload, the database); the cause is in the server's log.
    Error,
}

impl ReplayResult {
    /// The name carried in the query string.
    pub fn as_str(&self) -> &str {
        match self {
            ReplayResult::Processed(outcome) => outcome,
            ReplayResult::Failed => "failed",
            ReplayResult::NotFound => "not_found",
            ReplayResult::Error => "error",
        }
    }

    /// Reads the name back; anything unknown is an error.
    pub fn parse(raw: &str) -> ReplayResult {
        match raw {
            "failed" => ReplayResult::Failed,
            "not_found" => ReplayResult::NotFound,
            outcome if OUTCOMES.contains(&outcome) => ReplayResult::Processed(outcome.to_owned()),
            _ => ReplayResult::Error,
        }
    }
}

impl ReplayFlash {
    /// The flash in a query string's `replayed` and `result`, if there is one.
    pub fn from_fields(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let event_id = get("replayed").filter(|id| !id.trim().is_empty())?;
        Some(ReplayFlash {
            event_id,
            result: ReplayResult::parse(&get("result").unwrap_or_default()),
        })
    }

    /// What the operator reads.
    pub fn message(&self) -> String {
        let id = &self.event_id;
        match &self.result {
            ReplayResult::Processed(outcome) => format!("Replayed {id}: {outcome}."),
            ReplayResult::Failed => {
                format!("Replayed {id}: failed again. The error is recorded on the event.")
            }
            ReplayResult::NotFound => format!("No event {id} has been received."),
            ReplayResult::Error => {
                format!("Could not replay {id}. The cause is in the server's log.")
            }
        }
    }

    /// Whether the replay went through (whatever the ordering rules made of it).
    pub fn went_through(&self) -> bool {
        matches!(self.result, ReplayResult::Processed(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn query(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn filters_keep_only_what_is_filled_in() {
        let f = InboxFilter::from_fields(query(&[
            ("outcome", " failed "),
            ("type", ""),
            ("since", "2h"),
        ]));
        assert_eq!(f.outcome.as_deref(), Some("failed"));
        assert_eq!(f.event_type, None);
        assert_eq!(
            f.fields(),
            vec![("outcome", "failed".to_owned()), ("since", "2h".to_owned())]
        );
        assert!(InboxFilter::from_fields(query(&[])).fields().is_empty());
    }

    #[test]
    fn the_flash_reads_back_what_the_replay_wrote() {
        for result in [
            ReplayResult::Processed("applied".into()),
            ReplayResult::Processed("stale".into()),
            ReplayResult::Failed,
            ReplayResult::NotFound,
            ReplayResult::Error,
        ] {
            assert_eq!(ReplayResult::parse(result.as_str()), result);
        }
        assert_eq!(ReplayResult::parse("<script>"), ReplayResult::Error);
        let flash =
            ReplayFlash::from_fields(query(&[("replayed", "evt_1"), ("result", "applied")]))
                .expect("a flash");
        assert!(flash.went_through());
        assert_eq!(flash.message(), "Replayed evt_1: applied.");
        assert!(ReplayFlash::from_fields(query(&[("result", "applied")])).is_none());
        assert!(ReplayFlash::from_fields(query(&[("replayed", " ")])).is_none());
    }
}
