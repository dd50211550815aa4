//! Events and their delivery: every change is recorded as an event, queued for each endpoint
//! that wants its type, signed with that endpoint's secret and retried on failure.

use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    clock,
    model::{new_id, DeliveryAttempt, DeliveryRecord, Metadata, State, StoredEvent},
    render::{previous_attributes, API_VERSION},
    state::MetadataPatch,
};

/// How webhooks are delivered: the retry schedule and the chaos options tests use.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// The wait before each retry after a failed attempt; when it runs out, delivery stops.
    pub retry_schedule: Vec<Duration>,
    /// How long one attempt may take before it counts as failed.
    pub attempt_timeout: Duration,
    /// Chance (0.0–1.0) that an event is delivered a second time.
    pub duplicate_probability: f64,
    /// Each delivery waits a random time up to this long, so events within the window arrive in any order.
    pub reorder_window: Duration,
    /// A fixed wait before every first attempt.
    pub extra_delay: Duration,
}

impl Default for DeliveryOptions {
    /// Stripe's shape: exponential back-off over about three days.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        DeliveryOptions {
            retry_schedule: vec![
                minutes(1),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(1200),
                minutes(1440),
                minutes(1440),
            ],
            attempt_timeout: Duration::from_secs(20),
            duplicate_probability: 0.0,
            reorder_window: Duration::ZERO,
            extra_delay: Duration::ZERO,
        }
    }
}

impl DeliveryOptions {
    /// The default schedule with every wait divided by `factor`, for tests and demos.
    pub fn compressed(factor: u32) -> Self {
        let mut options = DeliveryOptions::default();
        let factor = factor.max(1);
        for wait in &mut options.retry_schedule {
            *wait /= factor;
        }
        options
    }

    /// A schedule that doubles from `first`, `retries` times: `first, 2·first, 4·first, …`.
    pub fn exponential(first: Duration, retries: u32) -> Self {
        DeliveryOptions {
            retry_schedule: (0..retries)
                .map(|i| first.saturating_mul(1 << i.min(20)))
                .collect(),
            ..DeliveryOptions::default()
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl State {
    /// Records an event about `object` and queues it for every interested endpoint.
    pub fn emit(&mut self, event_type: &str, object: Value, previous: Option<Value>, at: i64) {
        // A subscription that changed may change what its customer is entitled to.
        let subscriber = event_type
            .starts_with("customer.subscription.")
            .then(|| object["customer"].as_str().map(str::to_owned))
            .flatten();
        self.record_event(event_type, object, previous, at);
        if let Some(customer) = subscriber {
            self.refresh_entitlements(&customer, at);
        }
    }

    fn record_event(&mut self, event_type: &str, object: Value, previous: Option<Value>, at: i64) {
        let id = new_id("evt_", 24);
        let endpoints: Vec<(String, String)> = self
            .webhook_endpoints
            .iter()
            .filter(|e| e.wants(event_type))
            .map(|e| (e.id.clone(), e.url.clone()))
            .collect();
        let mut data = json!({ "object": object });
        if let Some(previous) = previous {
            data["previous_attributes"] = previous;
        }
        let event = json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": at,
            "data": data,
            "livemode": false,
            "pending_webhooks": endpoints.len(),
            "request": {
                "id": self.request.id,
                "idempotency_key": self.request.idempotency_key,
            },
            "type": event_type,
        });
        let payload = serde_json::to_string_pretty(&event).unwrap_or_default();
        self.events.push(StoredEvent {
            id: id.clone(),
            type_: event_type.to_string(),
            created: at,
            json: event,
            payload,
        });
        let now = clock::now_millis();
        for (endpoint_id, url) in endpoints {
            let copies =
                if rand::rng().random_bool(self.env.chaos.duplicate_probability.clamp(0.0, 1.0)) {
                    2
                } else {
                    1
                };
            for copy in 0..copies {
                let chaos = &self.env.chaos;
                let jitter = if chaos.reorder_window_millis > 0 {
                    rand::rng().random_range(0..=chaos.reorder_window_millis)
                } else {
                    0
                };
                self.deliveries.push(DeliveryRecord {
                    id: new_id("whdel_", 20),
                    event_id: id.clone(),
                    event_type: event_type.to_string(),
                    endpoint_id: endpoint_id.clone(),
                    url: url.clone(),
                    attempts: 0,
                    last_status: None,
                    last_error: None,
                    delivered: false,
                    gave_up: false,
                    duplicate: copy > 0,
                    created_millis: now,
                    next_attempt_millis: Some(now + chaos.extra_delay_millis + jitter),
                    attempt_log: Vec::new(),
                    in_flight: false,
                });
            }
        }
    }

    /// Emits an update event when, and only when, the object changed.
    pub fn emit_update(&mut self, event_type: &str, before: &Value, after: Value, at: i64) {
        if let Some(previous) = previous_attributes(before, &after) {
            self.emit(event_type, after, Some(previous), at);
        }
    }

    /// Emits an update event with the old values `changes` gathered, when there are any.
    pub fn emit_changes(&mut self, event_type: &str, object: Value, changes: Changes, at: i64) {
        if let Some(previous) = changes.into_previous() {
            self.emit(event_type, object, Some(previous), at);
        }
    }

    /// Deliveries due now, marked as in flight; and when the next one falls due.
    pub fn take_due_deliveries(&mut self, now_millis: i64) -> (Vec<String>, Option<i64>) {
        let mut due = Vec::new();
        let mut next = None;
        for d in self
            .deliveries
            .iter_mut()
            .filter(|d| d.pending() && !d.in_flight)
        {
            match d.next_attempt_millis {
                Some(at) if at <= now_millis => {
                    d.in_flight = true;
                    due.push(d.id.clone());
                }
                Some(at) => next = Some(next.map_or(at, |n: i64| n.min(at))),
                None => {}
            }
        }
        (due, next)
    }

    /// Records how an attempt went and schedules the next one (or gives up).
    pub fn finish_attempt(
        &mut self,
        delivery_id: &str,
        at_millis: i64,
        status: Option<u16>,
        error: Option<String>,
        schedule: &[Duration],
    ) {
        let Some(d) = self.delivery_mut(delivery_id) else {
            return;
        };
        d.in_flight = false;
        d.attempts += 1;
        d.last_status = status;
        d.last_error = error.clone();
        d.attempt_log.push(DeliveryAttempt {
            at_millis,
            status,
            error,
        });
        if status.is_some_and(|s| (200..300).contains(&s)) {
            d.delivered = true;
            d.next_attempt_millis = None;
            return;
        }
        let retry_index = usize::try_from(d.attempts - 1).unwrap_or(usize::MAX);
        match schedule.get(retry_index) {
            Some(wait) => d.next_attempt_millis = Some(clock::now_millis() + millis(*wait)),
            None => {
                d.gave_up = true;
                d.next_attempt_millis = None;
            }
        }
    }

    /// What one attempt sends: the endpoint's URL and secret, and the event's bytes.
    pub fn delivery_request(&self, delivery_id: &str) -> Option<(String, String, String)> {
        let d = self.delivery(delivery_id)?;
        let endpoint = self.webhook_endpoint(&d.endpoint_id)?;
        let event = self.event(&d.event_id)?;
        Some((
            endpoint.url.clone(),
            endpoint.secret.clone(),
            event.payload.clone(),
        ))
    }
}

pub(super) fn chaos_from(options: &DeliveryOptions) -> super::model::Chaos {
    super::model::Chaos {
        duplicate_probability: options.duplicate_probability,
        reorder_window_millis: millis(options.reorder_window),
        extra_delay_millis: millis(options.extra_delay),
    }
}

/// An update event's `previous_attributes`, gathered field by field as an update handler
/// applies its parameters: the old value of each field it changed, none for one it left alone.
#[derive(Debug, Default)]
pub struct Changes(serde_json::Map<String, Value>);

impl Changes {
    /// Sets `field` to `new` when one is given and it differs, keeping the old value as `name`.
    pub fn set<T: PartialEq + Serialize>(&mut self, name: &str, field: &mut T, new: Option<T>) {
        if let Some(new) = new.filter(|n| *n != *field) {
            self.0.insert(name.into(), json!(field));
            *field = new;
        }
    }

    /// Applies a metadata patch, keeping the old metadata when it changed any of it.
    pub fn metadata(&mut self, field: &mut Metadata, patch: Option<MetadataPatch>) {
        if let Some(patch) = patch {
            let before = field.clone();
            patch.apply(field);
            if before != *field {
                self.0.insert("metadata".into(), json!(before));
            }
        }
    }

    /// The `previous_attributes`, or `None` when nothing changed.
    pub fn into_previous(self) -> Option<Value> {
        (!self.0.is_empty()).then_some(Value::Object(self.0))
    }
}

/// Sends one signed delivery; the status, or why there was none.
pub(super) async fn send_signed(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    payload: String,
    timeout: Duration,
) -> Result<u16, String> {
    let signature = crate::signature::header_value(secret, clock::now(), payload.as_bytes());
    let response = http
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "user-agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .header("stripe-signature", signature)
        .body(payload)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out".to_string()
            } else {
                format!("could not connect: {e}")
            }
        })?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WebhookEndpoint;

    fn state_with_endpoint() -> State {
        let mut st = State::default();
        st.webhook_endpoints.push(WebhookEndpoint {
            id: "we_1".into(),
            created: 0,
            url: "http://127.0.0.1:9/hook".into(),
            secret: "whsec_x".into(),
            enabled_events: vec!["*".into()],
            description: None,
            metadata: Default::default(),
            status: "enabled".into(),
            api_version: None,
        });
        st
    }

    #[test]
    fn retries_follow_the_schedule_then_give_up() {
        let mut st = state_with_endpoint();
        st.emit("customer.created", json!({"id": "cus_1"}), None, 1);
        let (due, _) = st.take_due_deliveries(i64::MAX);
        assert_eq!(due.len(), 1);
        let id = due[0].clone();
        let schedule = [Duration::from_millis(10), Duration::from_millis(20)];
        st.finish_attempt(&id, 0, Some(500), None, &schedule);
        st.finish_attempt(&id, 0, None, Some("timed out".into()), &schedule);
        let d = st.delivery(&id).expect("delivery");
        assert!(d.pending() && d.next_attempt_millis.is_some());
        st.finish_attempt(&id, 0, Some(400), None, &schedule);
        let d = st.delivery(&id).expect("delivery");
        assert!(d.gave_up && !d.delivered);
        assert_eq!(d.attempts, 3);
        assert_eq!(st.pending_webhooks(&d.event_id.clone()), 0);
    }

    #[test]
    fn a_2xx_delivers_and_endpoints_filter_types() {
        let mut st = state_with_endpoint();
        st.webhook_endpoints[0].enabled_events = vec!["invoice.paid".into()];
        st.emit("customer.created", json!({}), None, 1);
        assert!(st.deliveries.is_empty());
        st.emit("invoice.paid", json!({}), None, 1);
        let event_id = st.events[1].id.clone();
        assert_eq!(st.pending_webhooks(&event_id), 1);
        let (due, _) = st.take_due_deliveries(i64::MAX);
        st.finish_attempt(&due[0], 0, Some(204), None, &[]);
        assert!(st.deliveries[0].delivered);
        assert_eq!(st.pending_webhooks(&event_id), 0);
    }

    #[test]
    fn compressed_schedules_keep_their_shape() {
        let fast = DeliveryOptions::compressed(60);
        assert_eq!(fast.retry_schedule[0], Duration::from_secs(1));
        let exp = DeliveryOptions::exponential(Duration::from_millis(100), 3);
        assert_eq!(
            exp.retry_schedule,
            vec![
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400)
            ]
        );
    }
}
