//! The operator's view of received events: `billfold webhooks list` and
//! `billfold webhooks replay`, and the `/admin/billing` page. Replays go through the same pipeline as deliveries, so the
//! ordering rules decide what a replayed event still changes.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{
    event::{Envelope, NotAnEvent},
    pipeline::{self, Delivery, Outcome, Pipeline, ProcessError, Processed},
};
use crate::db::entities::webhook_event;

/// Which recorded events to show or replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub outcome: Option<Outcome>,
    pub event_type: Option<String>,
    /// Received at or after this unix second.
    pub since: Option<i64>,
    pub limit: Option<u64>,
}

/// One recorded event, without its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    pub id: String,
    pub event_type: String,
    pub livemode: bool,
    pub created: i64,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub attempts: i32,
    pub api_version: Option<String>,
    /// The payload was in another API version's shape; the API's copy was applied.
    pub applied_from_api: bool,
    /// The last attempt failed because Stripe refused a request no retry changes.
    pub stripe_refused: bool,
    /// When the payload was removed for its age (unix seconds), if it was.
    pub payload_removed_at: Option<i64>,
}

/// Recorded events matching `filter`, newest first.
pub async fn list(db: &DatabaseConnection, filter: &Filter) -> Result<Vec<EventSummary>, DbErr> {
    use webhook_event::Column as C;
    #[derive(FromQueryResult)]
    struct SummaryRow {
        id: String,
        event_type: String,
        livemode: bool,
        created: i64,
        received_at: i64,
        processed_at: Option<i64>,
        outcome: Outcome,
        error: Option<String>,
        attempts: i32,
        api_version: Option<String>,
        applied_from_api: bool,
        stripe_refused: bool,
        payload_removed_at: Option<i64>,
    }
    let mut q = webhook_event::Entity::find().select_only().columns([
        C::Id,
        C::EventType,
        C::Livemode,
        C::Created,
        C::ReceivedAt,
        C::ProcessedAt,
        C::Outcome,
        C::Error,
        C::Attempts,
        C::ApiVersion,
        C::AppliedFromApi,
        C::StripeRefused,
        C::PayloadRemovedAt,
    ]);
    if let Some(outcome) = filter.outcome {
        q = q.filter(C::Outcome.eq(outcome));
    }
    if let Some(t) = &filter.event_type {
        q = q.filter(C::EventType.eq(t.as_str()));
    }
    if let Some(since) = filter.since {
        q = q.filter(C::ReceivedAt.gte(since));
    }
    let rows: Vec<SummaryRow> = q
        .order_by_desc(C::ReceivedAt)
        .order_by_desc(C::Created)
        .limit(filter.limit.unwrap_or(100))
        .into_model::<SummaryRow>()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| EventSummary {
            id: r.id,
            event_type: r.event_type,
            livemode: r.livemode,
            created: r.created,
            received_at: r.received_at,
            processed_at: r.processed_at,
            outcome: r.outcome,
            error: r.error,
            attempts: r.attempts,
            api_version: r.api_version,
            applied_from_api: r.applied_from_api,
            stripe_refused: r.stripe_refused,
            payload_removed_at: r.payload_removed_at,
        })
        .collect())
}

/// The stored payloads (the raw bodies as delivered) of the events among `ids` that have
/// been received, by event id.
pub async fn payloads(
    db: &DatabaseConnection,
    ids: &[String],
) -> Result<HashMap<String, String>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String)> = webhook_event::Entity::find()
        .select_only()
        .columns([webhook_event::Column::Id, webhook_event::Column::Payload])
        .filter(webhook_event::Column::Id.is_in(ids.iter().map(String::as_str)))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, stored)| (id, super::payload::text(&stored).into_owned()))
        .collect())
}

/// What needs an operator: events set aside by the reconciler, and events that failed
/// because Stripe refused a request no retry changes (failed or set aside).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attention {
    pub set_aside: u64,
    pub refused_by_stripe: u64,
}

/// Counts what needs an operator (see [`Attention`]).
pub async fn attention(db: &DatabaseConnection) -> Result<Attention, DbErr> {
    use sea_orm::PaginatorTrait;
    use webhook_event::Column as C;
    let set_aside = webhook_event::Entity::find()
        .filter(C::Outcome.eq(Outcome::SetAside))
        .count(db)
        .await?;
    let refused_by_stripe = webhook_event::Entity::find()
        .filter(C::Outcome.is_in([Outcome::Failed, Outcome::SetAside]))
        .filter(C::StripeRefused.eq(true))
        .count(db)
        .await?;
    Ok(Attention {
        set_aside,
        refused_by_stripe,
    })
}

/// Every event type received so far, alphabetically (what an operator may filter by).
pub async fn event_types(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    webhook_event::Entity::find()
        .select_only()
        .column(webhook_event::Column::EventType)
        .distinct()
        .order_by_asc(webhook_event::Column::EventType)
        .into_tuple()
        .all(db)
        .await
}

/// Why a replay did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no event {0} has been received")]
    NotFound(String),
    #[error("the payload of event {0} was removed for its age (WEBHOOK_PAYLOAD_RETENTION); there is nothing to replay")]
    PayloadRemoved(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("the stored payload of this event does not parse: {0}")]
    NotAnEvent(#[from] NotAnEvent),
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// Re-applies one recorded event from its stored payload.
pub async fn replay(p: Pipeline<'_>, event_id: &str) -> Result<Processed, ReplayError> {
    let found: Option<(String, Option<i64>)> = webhook_event::Entity::find_by_id(event_id)
        .select_only()
        .columns([
            webhook_event::Column::Payload,
            webhook_event::Column::PayloadRemovedAt,
        ])
        .into_tuple()
        .one(p.db)
        .await?;
    let payload = match found {
        None => return Err(ReplayError::NotFound(event_id.to_owned())),
        Some((_, Some(_))) => return Err(ReplayError::PayloadRemoved(event_id.to_owned())),
        Some((payload, None)) => payload,
    };
    let envelope = Envelope::parse(super::payload::text(&payload).into_owned().into())?;
    Ok(pipeline::process(p, &envelope, Delivery::Replay).await?)
}

/// Re-applies every recorded event matching `filter` (typically `outcome = failed`),
/// oldest event first so that the replays themselves arrive in order. Each result is
/// reported; one failure does not stop the rest.
pub async fn replay_matching(
    p: Pipeline<'_>,
    filter: &Filter,
) -> Result<Vec<(String, Result<Outcome, String>)>, DbErr> {
    let mut events = list(
        p.db,
        &Filter {
            limit: Some(filter.limit.unwrap_or(10_000)),
            ..filter.clone()
        },
    )
    .await?;
    events.sort_by_key(|e| (e.created, e.received_at));
    let mut results = Vec::with_capacity(events.len());
    for e in events {
        let result = match replay(p, &e.id).await {
            Ok(done) => Ok(done.outcome),
            Err(err) => Err(err.to_string()),
        };
        results.push((e.id, result));
    }
    Ok(results)
}

/// Reads a `--since` value: unix seconds, RFC 3339 (`2026-11-25T10:00:00Z`), or an age
/// such as `90s`, `15m`, `1h`, `2d`, `1w` counted back from `now`.
pub fn parse_since(raw: &str, now: i64) -> Result<i64, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("empty time".into());
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse().map_err(|_| format!("`{raw}` is too large"));
    }
    if let Some(unit) = raw.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        let number = &raw[..raw.len() - 1];
        if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = number
                .parse()
                .map_err(|_| format!("`{raw}` is too large"))?;
            let secs = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                'w' => 604_800,
                _ => {
                    return Err(format!(
                        "`{raw}`: unknown unit `{unit}` (use s, m, h, d or w)"
                    ))
                }
            };
            return n
                .checked_mul(secs)
                .map(|age| now - age)
                .ok_or_else(|| format!("`{raw}` is too large"));
        }
    }
    parse_rfc3339(raw).ok_or_else(|| {
        format!("`{raw}` is not unix seconds, an RFC 3339 time or an age like 1h or 2d")
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let tz = rest.get(1..)?;
            let (h, m) = tz.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3_600 + m * 60)
        }
    };
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?)
            .ok()?;
    let time = time::Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
    )
    .ok()?;
    let utc = time::PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp();
    Some(utc - offset)
}

/// The table's last column: the error (marked when Stripe refused), or the payload's removal.
fn note(e: &EventSummary) -> String {
    let error = e.error.as_deref().unwrap_or("");
    match (e.stripe_refused, e.payload_removed_at) {
        (true, _) => format!("[refused by Stripe: fix the key, then replay] {error}"),
        (false, Some(at)) if error.is_empty() => {
            format!("payload removed {}", crate::db::clock::rfc3339(at))
        }
        _ => error.to_owned(),
    }
}

/// A plain table for the terminal.
pub fn format_table(events: &[EventSummary]) -> String {
    let mut out = format!(
        "{:<32} {:<40} {:<14} {:>8} {:<20} {:<22} {}\n",
        "EVENT", "TYPE", "OUTCOME", "ATTEMPTS", "RECEIVED", "API VERSION", "NOTE"
    );
    for e in events {
        // An event applied from the API's copy says so: its endpoint is on another version.
        let version = match (&e.api_version, e.applied_from_api) {
            (Some(v), true) => format!("{v} (refetched)"),
            (None, true) => "? (refetched)".to_owned(),
            (Some(v), false) => v.clone(),
            (None, false) => String::new(),
        };
        out.push_str(&format!(
            "{:<32} {:<40} {:<14} {:>8} {:<20} {:<22} {}\n",
            e.id,
            e.event_type,
            e.outcome.to_string(),
            e.attempts,
            crate::db::clock::rfc3339(e.received_at),
            version,
            note(e),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_unix_rfc3339_and_ages() {
        let now = 1_800_000_000;
        let ok = [
            ("1700000000", 1_700_000_000),
            ("90s", now - 90),
            ("15m", now - 900),
            ("1h", now - 3_600),
            ("2d", now - 172_800),
            ("1w", now - 604_800),
            ("2023-11-14T22:13:20Z", 1_700_000_000),
            ("2023-11-14T22:13:20.123Z", 1_700_000_000),
            ("2023-11-15T00:13:20+02:00", 1_700_000_000),
            ("2023-11-14T20:13:20-02:00", 1_700_000_000),
        ];
        for (raw, expected) in ok {
            assert_eq!(parse_since(raw, now), Ok(expected), "{raw}");
        }
        for bad in [
            "",
            "yesterday",
            "1y",
            "h",
            "2023-13-01T00:00:00Z",
            "2023-11-14 22:13",
            "-5",
        ] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_shows_each_event_on_a_line() {
        let table = format_table(&[EventSummary {
            id: "evt_1".into(),
            event_type: "invoice.paid".into(),
            livemode: false,
            created: 1_700_000_000,
            received_at: 1_700_000_000,
            processed_at: Some(1_700_000_000),
            outcome: Outcome::Failed,
            error: Some("database error".into()),
            attempts: 2,
            api_version: Some("2026-09-30.endive".into()),
            applied_from_api: false,
            stripe_refused: false,
            payload_removed_at: None,
        }]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].contains("evt_1") && lines[1].contains("failed"));
        assert!(lines[1].contains("2023-11-14T22:13:20Z"));
        assert!(lines[1].contains("2026-09-30.endive") && !lines[1].contains("refetched"));
        let refetched = format_table(&[EventSummary {
            id: "evt_2".into(),
            event_type: "customer.subscription.updated".into(),
            livemode: false,
            created: 1_700_000_000,
            received_at: 1_700_000_000,
            processed_at: Some(1_700_000_000),
            outcome: Outcome::Applied,
            error: None,
            attempts: 1,
            api_version: Some("2024-06-20".into()),
            applied_from_api: true,
            stripe_refused: false,
            payload_removed_at: None,
        }]);
        assert!(refetched.contains("2024-06-20 (refetched)"), "{refetched}");
    }
}
