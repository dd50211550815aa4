//! A delivered Stripe event: its envelope, and the typed object inside for the event types
//! Billfold handles.
//!
//! The body is parsed once, by the route, with miniserde into a JSON value, the way
//! async-stripe parses what the API returns; the [`Envelope`] then travels with the body
//! through batching and the pipeline. Its few fields come out of that value by hand, so an
//! event of a type we do not know (or an object we cannot read) is still recorded; only the
//! handled types are turned into async-stripe's types.

use std::sync::Arc;

use axum::body::Bytes;
use miniserde::json::{Number, Object, Value};
use stripe_types::miniserde_helpers::FromValueOpt;

use crate::billing::sync::{self, Applied, Source, SyncError};

/// A parsed delivery: the parts of an event every delivery is recorded with, the object
/// inside, and the body as delivered (stored for replays).
#[derive(Debug)]
pub struct Envelope {
    pub id: String,
    pub event_type: String,
    /// Unix seconds: the event's place in time, the rows' ordering watermark.
    pub created: i64,
    pub livemode: bool,
    pub api_version: Option<String>,
    object: Value,
    body: Bytes,
    /// The body as stored, made once (see [`Envelope::stored_payload`]).
    stored: std::sync::OnceLock<String>,
    /// The object as the first type it was asked for (see [`Envelope::object_as`]).
    parsed: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

/// Why a body is not a Stripe event; the text is safe to send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAnEvent {
    #[error("body is not UTF-8 JSON")]
    NotJson,
    #[error("body is not a Stripe event (needs id, type, created, livemode and data.object)")]
    MissingFields,
}

fn take_string(map: &mut Object, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn as_i64(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Number(Number::U64(n))) => i64::try_from(*n).ok(),
        Some(Value::Number(Number::I64(n))) => Some(*n),
        _ => None,
    }
}

impl Envelope {
    /// Reads the envelope of a delivered body.
    pub fn parse(body: Bytes) -> Result<Envelope, NotAnEvent> {
        let text = std::str::from_utf8(&body).map_err(|_| NotAnEvent::NotJson)?;
        let value: Value = miniserde::json::from_str(text).map_err(|_| NotAnEvent::NotJson)?;
        let Value::Object(mut map) = value else {
            return Err(NotAnEvent::MissingFields);
        };
        if let Some(Value::String(object)) = map.get("object") {
            if object != "event" {
                return Err(NotAnEvent::MissingFields);
            }
        }
        let id = take_string(&mut map, "id")
            .filter(|id| id.starts_with("evt_"))
            .ok_or(NotAnEvent::MissingFields)?;
        let event_type = take_string(&mut map, "type")
            .filter(|t| !t.is_empty())
            .ok_or(NotAnEvent::MissingFields)?;
        let created = as_i64(map.get("created")).ok_or(NotAnEvent::MissingFields)?;
        let livemode = match map.get("livemode") {
            Some(Value::Bool(b)) => *b,
            _ => return Err(NotAnEvent::MissingFields),
        };
        let api_version = take_string(&mut map, "api_version");
        let object = match map.remove("data") {
            Some(Value::Object(mut data)) => match data.remove("object") {
                Some(object @ Value::Object(_)) => object,
                _ => return Err(NotAnEvent::MissingFields),
            },
            _ => return Err(NotAnEvent::MissingFields),
        };
        Ok(Envelope {
            id,
            event_type,
            created,
            livemode,
            api_version,
            object,
            body,
            stored: std::sync::OnceLock::new(),
            parsed: std::sync::OnceLock::new(),
        })
    }

    /// The body as delivered.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as it is stored ([`super::payload::stored`]: deflated), made on first use and
    /// kept. Group commit makes it before the delivery waits for its writer, so the one writer
    /// a database has does not spend its time compressing.
    pub fn stored_payload(&self) -> &str {
        self.stored
            .get_or_init(|| super::payload::stored(&self.body))
    }

    /// The event's object as async-stripe's (pinned) type `T`, parsed once and kept; `None`
    /// if it does not parse as `T`. A copy is parsed, so the envelope stays whole for a batch
    /// that has to be applied again one event at a time.
    pub fn object_as<T>(&self) -> Option<Arc<T>>
    where
        T: FromValueOpt + Send + Sync + 'static,
    {
        let parse = || T::from_value(self.object.clone()).map(Arc::new);
        let kept = self.parsed.get_or_init(|| Box::new(parse()));
        match kept.downcast_ref::<Option<Arc<T>>>() {
            Some(kept) => kept.clone(),
            // Asked for as another type than the first time: parsed again.
            None => parse(),
        }
    }

    /// Does on the request's own task what applying the event will need (its stored form, its
    /// object parsed as the type its kind applies), so that group commit's one writer per
    /// database spends its time writing. Only a warm-up: [`apply`] parses whatever is missing.
    pub fn prepare(&self) {
        self.stored_payload();
        match Kind::of(&self.event_type) {
            Some(Kind::Subscription { .. }) => {
                self.object_as::<stripe_shared::Subscription>();
            }
            Some(Kind::Invoice { .. }) => {
                self.object_as::<stripe_shared::Invoice>();
            }
            Some(Kind::PaymentMethod { .. }) => {
                self.object_as::<stripe_shared::PaymentMethod>();
            }
            Some(Kind::CheckoutCompleted) => {
                self.object_as::<stripe_shared::CheckoutSession>();
            }
            _ => {}
        }
    }

    /// The `id` of the event's object, whatever its shape.
    pub fn object_id(&self) -> Option<&str> {
        match &self.object {
            Value::Object(map) => match map.get("id") {
                Some(Value::String(id)) if !id.is_empty() => Some(id),
                _ => None,
            },
            _ => None,
        }
    }

    /// The rows this event writes, as far as concurrency goes: a catalogue event (a product or
    /// a price, whose rename reaches every subscription on it) or one customer's billing (its
    /// id, or the event's own id when the object names no customer).
    pub fn scope(&self) -> Scope<'_> {
        if matches!(
            Kind::of(&self.event_type),
            Some(Kind::Product { .. } | Kind::Price { .. })
        ) {
            return Scope::Catalogue;
        }
        let Value::Object(object) = &self.object else {
            return Scope::Customer(&self.id);
        };
        let text = |key: &str| match object.get(key) {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        let customer = match text("object") {
            Some("customer") => text("id"),
            _ => match object.get("customer") {
                Some(Value::String(id)) => Some(id.as_str()),
                Some(Value::Object(expanded)) => match expanded.get("id") {
                    Some(Value::String(id)) => Some(id.as_str()),
                    _ => None,
                },
                _ => None,
            },
        };
        Scope::Customer(customer.unwrap_or(&self.id))
    }
}

/// See [`Envelope::scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Catalogue,
    Customer(&'a str),
}

/// The event types Billfold acts on, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CheckoutCompleted,
    Subscription {
        deletion: bool,
    },
    CustomerUpdated,
    CustomerDeleted,
    PaymentMethod {
        detached: bool,
    },
    Invoice {
        deletion: bool,
    },
    Product {
        deletion: bool,
    },
    Price {
        deletion: bool,
    },
    /// A subscription schedule: the switch it plans (a downgrade at the period's end).
    Schedule,
    /// What Stripe's Entitlements say a customer has.
    Entitlements,
}

/// Every event type Billfold acts on, and how: the one list the pipeline, `billfold doctor`'s
/// check of the webhook endpoint, and the tests read.
pub const HANDLED: &[(&str, Kind)] = &[
    ("checkout.session.completed", Kind::CheckoutCompleted),
    (
        "customer.subscription.created",
        Kind::Subscription { deletion: false },
    ),
    (
        "customer.subscription.updated",
        Kind::Subscription { deletion: false },
    ),
    (
        "customer.subscription.paused",
        Kind::Subscription { deletion: false },
    ),
    (
        "customer.subscription.resumed",
        Kind::Subscription { deletion: false },
    ),
    (
        "customer.subscription.trial_will_end",
        Kind::Subscription { deletion: false },
    ),
    (
        "customer.subscription.deleted",
        Kind::Subscription { deletion: true },
    ),
    ("customer.updated", Kind::CustomerUpdated),
    ("customer.deleted", Kind::CustomerDeleted),
    (
        "payment_method.attached",
        Kind::PaymentMethod { detached: false },
    ),
    (
        "payment_method.updated",
        Kind::PaymentMethod { detached: false },
    ),
    (
        "payment_method.automatically_updated",
        Kind::PaymentMethod { detached: false },
    ),
    (
        "payment_method.detached",
        Kind::PaymentMethod { detached: true },
    ),
    ("invoice.created", Kind::Invoice { deletion: false }),
    ("invoice.updated", Kind::Invoice { deletion: false }),
    ("invoice.finalized", Kind::Invoice { deletion: false }),
    ("invoice.paid", Kind::Invoice { deletion: false }),
    (
        "invoice.payment_succeeded",
        Kind::Invoice { deletion: false },
    ),
    ("invoice.payment_failed", Kind::Invoice { deletion: false }),
    (
        "invoice.payment_action_required",
        Kind::Invoice { deletion: false },
    ),
    (
        "invoice.marked_uncollectible",
        Kind::Invoice { deletion: false },
    ),
    ("invoice.voided", Kind::Invoice { deletion: false }),
    ("invoice.deleted", Kind::Invoice { deletion: true }),
    ("product.created", Kind::Product { deletion: false }),
    ("product.updated", Kind::Product { deletion: false }),
    ("product.deleted", Kind::Product { deletion: true }),
    ("price.created", Kind::Price { deletion: false }),
    ("price.updated", Kind::Price { deletion: false }),
    ("price.deleted", Kind::Price { deletion: true }),
    ("subscription_schedule.created", Kind::Schedule),
    ("subscription_schedule.updated", Kind::Schedule),
    ("subscription_schedule.released", Kind::Schedule),
    ("subscription_schedule.canceled", Kind::Schedule),
    ("subscription_schedule.completed", Kind::Schedule),
    ("subscription_schedule.aborted", Kind::Schedule),
    (
        "entitlements.active_entitlement_summary.updated",
        Kind::Entitlements,
    ),
];

impl Kind {
    /// `None` for every type Billfold records and ignores.
    pub fn of(event_type: &str) -> Option<Kind> {
        HANDLED
            .iter()
            .find(|(name, _)| *name == event_type)
            .map(|(_, kind)| *kind)
    }
}

/// Why a handled event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the {0} event's object does not parse as the Stripe type it should be")]
    BadObject(&'static str),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Where the object an event was applied with came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFrom {
    /// The event's own object.
    Event,
    /// The event's object is in another API version's shape (its endpoint is on another
    /// version) and did not parse as the pinned type; the API's copy was read and applied.
    Api,
}

/// The object to apply: the event's own, parsed as async-stripe's (pinned) type, or, when it
/// does not parse, the API's copy read in the pinned version, ordered as an API read.
/// `None`: it did not parse and Stripe no longer has the object.
fn object_or_api<T>(
    envelope: &Envelope,
    fetched: &sync::Fetched,
    what: &'static str,
) -> Result<Option<(Arc<T>, Source, ObjectFrom)>, ApplyError>
where
    T: FromValueOpt + sync::FetchedObject + Send + Sync + 'static,
{
    if let Some(object) = envelope.object_as::<T>() {
        return Ok(Some((
            object,
            Source::Event(envelope.created),
            ObjectFrom::Event,
        )));
    }
    let id = envelope.object_id().ok_or(ApplyError::BadObject(what))?;
    Ok(fetched
        .latest::<T>(id)?
        .map(|(object, read_at)| (Arc::new(object), Source::Api(read_at), ObjectFrom::Api)))
}

/// Recorded with an event whose object did not parse and is gone from Stripe.
const GONE: &str =
    "the object does not parse in the pinned API version and Stripe no longer has it";

/// Applies `apply` to the object [`object_or_api`] finds, or records why there was none.
macro_rules! with_object {
    ($envelope:expr, $fetched:expr, $ty:ty, $what:literal, |$object:ident, $source:ident| $apply:expr) => {
        match object_or_api::<$ty>($envelope, $fetched, $what)? {
            Some(($object, $source, copy)) => ($apply, copy),
            None => (Applied::Refused(GONE), ObjectFrom::Api),
        }
    };
}

/// Applies a handled event's object through [`sync`], inside `conn`'s transaction. An object
/// in another API version's shape is read again through the API (see [`object_or_api`]);
/// the answer says which copy was applied.
pub async fn apply(
    conn: &impl sea_orm::ConnectionTrait,
    fetched: &sync::Fetched,
    kind: Kind,
    envelope: &Envelope,
) -> Result<(Applied, ObjectFrom), ApplyError> {
    let f = fetched;
    let applied = match kind {
        Kind::CheckoutCompleted => {
            // Whichever copy is applied, the event's second is the link's time.
            with_object!(
                envelope,
                f,
                stripe_shared::CheckoutSession,
                "checkout.session",
                |cs, _source| {
                    sync::apply_checkout_session(conn, f, &cs, envelope.created).await?
                }
            )
        }
        Kind::Subscription { deletion } => {
            with_object!(
                envelope,
                f,
                stripe_shared::Subscription,
                "subscription",
                |sub, source| { sync::apply_subscription(conn, f, &sub, source, deletion).await? }
            )
        }
        Kind::CustomerUpdated => {
            match stripe_shared::Customer::from_value(envelope.object.clone()) {
                Some(cus) => (
                    sync::apply_customer(conn, f, &cus, Source::Event(envelope.created)).await?,
                    ObjectFrom::Event,
                ),
                None => {
                    use stripe_core::customer::RetrieveCustomerReturned as R;
                    let id = envelope
                        .object_id()
                        .ok_or(ApplyError::BadObject("customer"))?;
                    let applied = match f.latest::<R>(id)? {
                        Some((R::Customer(cus), at)) => {
                            sync::apply_customer(conn, f, &cus, Source::Api(at)).await?
                        }
                        Some((R::DeletedCustomer(_), _)) => {
                            sync::apply_customer_deleted(conn, id).await?
                        }
                        None => Applied::Refused(GONE),
                    };
                    (applied, ObjectFrom::Api)
                }
            }
        }
        Kind::Schedule => {
            let facts = sync::ScheduleFacts::read(&envelope.object)
                .ok_or(ApplyError::BadObject("subscription_schedule"))?;
            (
                sync::apply_schedule(conn, f, &facts, Source::Event(envelope.created)).await?,
                ObjectFrom::Event,
            )
        }
        Kind::Entitlements => {
            let facts = sync::EntitlementFacts::read(&envelope.object).ok_or(
                ApplyError::BadObject("entitlements.active_entitlement_summary"),
            )?;
            (
                sync::apply_entitlements(conn, f, &facts, Source::Event(envelope.created)).await?,
                ObjectFrom::Event,
            )
        }
        Kind::CustomerDeleted => {
            // Only the id matters, so a deleted customer's shape cannot get in the way.
            let id = envelope
                .object_id()
                .ok_or(ApplyError::BadObject("customer"))?;
            (
                sync::apply_customer_deleted(conn, id).await?,
                ObjectFrom::Event,
            )
        }
        Kind::PaymentMethod { detached } => {
            with_object!(
                envelope,
                f,
                stripe_shared::PaymentMethod,
                "payment_method",
                |pm, source| { sync::apply_payment_method(conn, f, &pm, source, detached).await? }
            )
        }
        Kind::Invoice { deletion } => {
            with_object!(
                envelope,
                f,
                stripe_shared::Invoice,
                "invoice",
                |inv, source| { sync::apply_invoice(conn, f, &inv, source, deletion).await? }
            )
        }
        Kind::Product { deletion } => {
            with_object!(
                envelope,
                f,
                stripe_shared::Product,
                "product",
                |product, source| {
                    sync::apply_product(conn, f, &product, source, deletion).await?
                }
            )
        }
        Kind::Price { deletion } => {
            with_object!(
                envelope,
                f,
                stripe_shared::Price,
                "price",
                |price, source| { sync::apply_price(conn, f, &price, source, deletion).await? }
            )
        }
    };
    // What the event means to the customer's user, by mail, in the same transaction: read from
    // the tables as the event left them, queued once per message's key.
    if matches!(applied.0, Applied::Applied | Applied::Stale) {
        crate::billing::notices::queue_for_event(
            conn,
            f,
            &envelope.event_type,
            envelope.object_id(),
            envelope.created,
        )
        .await?;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The customer an event is scoped to, or `None` for a catalogue event.
    fn scope_of(event_type: &str, object: &str) -> Option<String> {
        let body = format!(
            r#"{{"id":"evt_s","object":"event","type":"{event_type}","created":1,"livemode":false,"data":{{"object":{object}}}}}"#
        );
        let env = Envelope::parse(Bytes::from(body)).expect("an event");
        match env.scope() {
            Scope::Catalogue => None,
            Scope::Customer(id) => Some(id.to_owned()),
        }
    }

    /// Events are grouped by the customer whose rows they write; catalogue events by none.
    #[test]
    fn an_event_is_scoped_to_its_customer_or_the_catalogue() {
        let customer = |id: &str| Some(id.to_owned());
        assert_eq!(
            scope_of("customer.updated", r#"{"id":"cus_1","object":"customer"}"#),
            customer("cus_1")
        );
        assert_eq!(
            scope_of(
                "customer.subscription.updated",
                r#"{"id":"sub_1","object":"subscription","customer":"cus_2"}"#
            ),
            customer("cus_2")
        );
        assert_eq!(
            scope_of(
                "invoice.paid",
                r#"{"id":"in_1","object":"invoice","customer":{"id":"cus_3","object":"customer"}}"#
            ),
            customer("cus_3")
        );
        // A detached card names no customer: the event is a scope of its own.
        assert_eq!(
            scope_of(
                "payment_method.detached",
                r#"{"id":"pm_1","object":"payment_method","customer":null}"#
            ),
            customer("evt_s")
        );
        assert_eq!(
            scope_of("product.updated", r#"{"id":"prod_1","object":"product"}"#),
            None
        );
        assert_eq!(
            scope_of("price.created", r#"{"id":"price_1","object":"price"}"#),
            None
        );
    }

    #[test]
    fn reads_the_envelope_of_any_event_type() {
        let body = br#"{"id":"evt_1","object":"event","type":"radar.early_fraud_warning.created","created":1700000000,"livemode":false,"api_version":"2026-09-30.endive","pending_webhooks":1,"data":{"object":{"id":"x"}}}"#;
        let env = Envelope::parse(Bytes::from_static(body)).expect("an event");
        assert_eq!(env.id, "evt_1");
        assert_eq!(env.event_type, "radar.early_fraud_warning.created");
        assert_eq!(env.created, 1_700_000_000);
        assert!(!env.livemode);
        assert_eq!(env.api_version.as_deref(), Some("2026-09-30.endive"));
        assert_eq!(Kind::of(&env.event_type), None);
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        let cases: &[&[u8]] = &[
            b"",
            b"not json",
            b"\xff\xfe",
            b"[]",
            br#"{"id":"evt_1","object":"event"}"#,
            br#"{"id":"cus_1","type":"x","created":1,"livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"x","created":"1","livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"x","created":1,"livemode":false,"data":{}}"#,
            br#"{"id":"evt_1","object":"customer","type":"x","created":1,"livemode":false,"data":{"object":{}}}"#,
        ];
        for body in cases {
            assert!(
                Envelope::parse(Bytes::from_static(body)).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn knows_every_handled_type() {
        for (t, kind) in HANDLED {
            assert_eq!(Kind::of(t), Some(*kind), "{t}");
        }
        let mut names: Vec<&str> = HANDLED.iter().map(|(t, _)| *t).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HANDLED.len(), "each type once");
        assert_eq!(
            Kind::of("customer.subscription.deleted"),
            Some(Kind::Subscription { deletion: true })
        );
        assert_eq!(Kind::of("customer.created"), None);
    }
}
