use sea_orm::{entity::prelude::*, Iterable};

/// Every Stripe event received, with what became of it. The primary key is Stripe's
/// event id, which is what makes delivery exactly-once.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    /// `evt_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub event_type: String,
    pub livemode: bool,
    /// Stripe's `created` (unix seconds).
    pub created: i64,
    pub api_version: Option<String>,
    /// Unix seconds.
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub attempts: i32,
    /// The event's object was in another API version's shape (its `api_version`) and did
    /// not parse as the pinned type: the API's copy of the object was applied instead.
    pub applied_from_api: bool,
    /// The raw body as delivered, for replays; emptied once older than
    /// `WEBHOOK_PAYLOAD_RETENTION` (see `payload_removed_at`).
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// The last attempt failed because Stripe refused a request that no retry can change
    /// (401, 403, a 400): the key's permissions need fixing before a replay can work.
    pub stripe_refused: bool,
    /// When the payload was removed for being older than the retention period (unix seconds).
    pub payload_removed_at: Option<i64>,
}

/// What became of a delivery: stored in `webhook_events.outcome` (as the names below),
/// sent back to Stripe, and shown to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Outcome {
    #[sea_orm(string_value = "applied")]
    Applied,
    /// Seen before and already dealt with: nothing was applied again.
    #[sea_orm(string_value = "duplicate")]
    Duplicate,
    /// Older than what the rows already show: recorded, not applied.
    #[sea_orm(string_value = "stale")]
    Stale,
    /// A type Billfold does not act on, or about something it does not keep.
    #[sea_orm(string_value = "ignored")]
    Ignored,
    /// Applying failed; a redelivery (or a replay) applies it again.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// A live event at a test-mode app, or the other way round.
    #[sea_orm(string_value = "mode_mismatch")]
    ModeMismatch,
    /// Failed again and again when the reconciler found it missed: set aside so it no
    /// longer holds the reconciler back, until an operator replays it.
    #[sea_orm(string_value = "set_aside")]
    SetAside,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_value())
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::try_from_value(&s.to_owned()).map_err(|_| {
            let names: Vec<String> = Outcome::iter().map(|o| o.to_value()).collect();
            format!("`{s}` is not an outcome (one of {})", names.join(", "))
        })
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_through_their_stored_names() {
        let names: Vec<String> = Outcome::iter().map(|o| o.to_string()).collect();
        assert_eq!(
            names,
            [
                "applied",
                "duplicate",
                "stale",
                "ignored",
                "failed",
                "mode_mismatch",
                "set_aside"
            ]
        );
        for o in Outcome::iter() {
            assert_eq!(o.to_string().parse(), Ok(o));
        }
        assert!("nope".parse::<Outcome>().is_err());
    }
}
