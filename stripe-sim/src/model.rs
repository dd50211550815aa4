//! The double's state: every object it holds, in a form that serialises to its state file.
//! The JSON Stripe sends is made from these by `render`; the rules that change them are in `state`.

use std::collections::BTreeMap;

use rand::{distr::Alphanumeric, Rng};
use serde::{Deserialize, Serialize};

use super::{cards::CardOutcome, clock::Interval};

pub type Metadata = BTreeMap<String, String>;

/// A Stripe-looking id: the prefix and `len` random alphanumerics.
pub fn new_id(prefix: &str, len: usize) -> String {
    let tail: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        self == &Address::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub created: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub description: Option<String>,
    pub address: Option<Address>,
    pub metadata: Metadata,
    /// `invoice_settings.default_payment_method`.
    pub default_payment_method: Option<String>,
    pub invoice_prefix: String,
    pub next_invoice_sequence: u64,
    pub preferred_locales: Vec<String>,
    /// How far this customer's own clock is ahead of real time, in seconds (the private
    /// advance shortcut; unused for a customer on a test clock).
    pub clock_offset: i64,
    /// The Test Clock (`clock_…`) this customer lives on: its `frozen_time` is their now.
    #[serde(default)]
    pub test_clock: Option<String>,
    pub deleted: bool,
    /// The customer's balance in minor units: negative is credit (from a downgrade's
    /// prorations), applied to the next invoice when it is finalized.
    #[serde(default)]
    pub balance: i64,
}

/// A Test Clock (`test_helpers.test_clock`): frozen time for the customers created on it,
/// moved forward only by advancing it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestClock {
    pub id: String,
    pub created: i64,
    pub name: Option<String>,
    pub frozen_time: i64,
    /// Stripe deletes a clock (and its customers) this long after creating it.
    pub deletes_after: i64,
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub created: i64,
    pub updated: i64,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    pub default_price: Option<String>,
    pub metadata: Metadata,
}

/// An Entitlements feature (`entitlements.feature`): something a product can include.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Feature {
    pub id: String,
    /// Unique among features, at most 80 characters.
    pub lookup_key: String,
    pub name: String,
    pub active: bool,
    pub metadata: Metadata,
}

/// A feature attached to a product (`product_feature`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductFeature {
    pub id: String,
    pub product: String,
    pub feature: String,
}

/// What a customer is entitled to, as last announced (`entitlements.active_entitlement_summary`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CustomerEntitlements {
    pub customer: String,
    /// (active entitlement id `ent_…`, feature id), in the features' order.
    pub active: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Price {
    pub id: String,
    pub created: i64,
    pub product: String,
    pub active: bool,
    pub currency: String,
    pub unit_amount: i64,
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    pub interval_count: u32,
    pub lookup_key: Option<String>,
    pub nickname: Option<String>,
    /// `recurring.trial_period_days`: the trial a new subscription to this price gets.
    pub trial_period_days: Option<u32>,
    pub metadata: Metadata,
    /// Deleted through the legacy `DELETE /v1/plans/{id}`: the API no longer shows it, and
    /// the subscriptions on it go on.
    #[serde(default)]
    pub deleted: bool,
}

impl Price {
    /// A one-time price (no `recurring`): for Checkout in payment mode and invoice items.
    pub fn one_time(&self) -> bool {
        self.interval.is_empty()
    }

    pub fn interval(&self) -> Interval {
        Interval::parse(&self.interval).unwrap_or(Interval::Month)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub id: String,
    pub created: i64,
    pub customer: Option<String>,
    pub brand: String,
    pub last4: String,
    pub funding: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub outcome: CardOutcome,
    pub billing_name: Option<String>,
    pub billing_email: Option<String>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
    /// A trial ended without a payment method under `missing_payment_method=pause`.
    Paused,
}

impl SubStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubStatus::Incomplete => "incomplete",
            SubStatus::IncompleteExpired => "incomplete_expired",
            SubStatus::Trialing => "trialing",
            SubStatus::Active => "active",
            SubStatus::PastDue => "past_due",
            SubStatus::Canceled => "canceled",
            SubStatus::Unpaid => "unpaid",
            SubStatus::Paused => "paused",
        }
    }

    /// Finished for good: nothing more will be billed.
    pub fn is_ended(self) -> bool {
        matches!(self, SubStatus::Canceled | SubStatus::IncompleteExpired)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
    pub created: i64,
    pub price: String,
    pub quantity: u64,
    pub current_period_start: i64,
    pub current_period_end: i64,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    pub created: i64,
    pub start_date: i64,
    pub billing_cycle_anchor: i64,
    pub status: SubStatus,
    pub items: Vec<SubscriptionItem>,
    pub currency: String,
    pub default_payment_method: Option<String>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// `cancellation_details.reason`.
    pub cancellation_reason: Option<String>,
    pub cancellation_feedback: Option<String>,
    pub cancellation_comment: Option<String>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub latest_invoice: Option<String>,
    pub metadata: Metadata,
    pub description: Option<String>,
    /// Whether `customer.subscription.trial_will_end` went out for the current trial.
    pub trial_will_end_sent: bool,
    /// The subscription schedule that manages it (a change scheduled for the period's end).
    #[serde(default)]
    pub schedule: Option<String>,
    /// `trial_settings.end_behavior.missing_payment_method`: `pause` pauses it when the trial
    /// ends without a payment method (else it is billed as usual).
    #[serde(default)]
    pub pause_without_payment_method: bool,
}

impl Subscription {
    /// The billing period as the first item has it (all items share one period here).
    pub fn period(&self) -> (i64, i64) {
        self.items
            .first()
            .map(|i| (i.current_period_start, i.current_period_end))
            .unwrap_or((self.start_date, self.start_date))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Uncollectible,
    Void,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Uncollectible => "uncollectible",
            InvoiceStatus::Void => "void",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub id: String,
    pub price: String,
    pub quantity: u64,
    pub amount: i64,
    pub description: String,
    pub period_start: i64,
    pub period_end: i64,
    pub subscription_item: Option<String>,
    /// A proration (credit for unused time or charge for remaining time).
    #[serde(default)]
    pub proration: bool,
    /// The invoice item (`ii_…`) this line was made from, for prorations.
    #[serde(default)]
    pub invoice_item: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub number: String,
    pub customer: String,
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
    pub subscription: Option<String>,
    pub status: InvoiceStatus,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub created: i64,
    pub period_start: i64,
    pub period_end: i64,
    /// `subscription_create`, `subscription_cycle`, `subscription_update`, `manual`.
    pub billing_reason: String,
    pub attempt_count: u64,
    pub attempted: bool,
    pub next_payment_attempt: Option<i64>,
    pub finalized_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub marked_uncollectible_at: Option<i64>,
    pub voided_at: Option<i64>,
    /// What the last failed charge said, for the hosted invoice page.
    pub last_payment_error: Option<String>,
    pub metadata: Metadata,
    /// The customer's balance applied when it was finalized (negative: credit).
    #[serde(default)]
    pub starting_balance: i64,
    /// The customer's balance after it was finalized; `None` while a draft.
    #[serde(default)]
    pub ending_balance: Option<i64>,
    /// The `proration_date` of the change its prorations came from.
    #[serde(default)]
    pub subscription_proration_date: Option<i64>,
    /// A one-off invoice's memo (`description`).
    #[serde(default)]
    pub description: Option<String>,
    /// Whether Stripe moves it on by itself (finalize, charge); a one-off invoice made through
    /// the API waits for explicit calls.
    #[serde(default = "yes")]
    pub auto_advance: bool,
    /// When a subscription's cycle draft is finalized and charged by itself (about an hour
    /// after `invoice.created`, as Stripe leaves it); `None` once finalized or for other drafts.
    #[serde(default)]
    pub automatically_finalizes_at: Option<i64>,
}

fn yes() -> bool {
    true
}

/// A pending invoice item (`ii_…`): a proration waiting for the subscription's next invoice,
/// or one already swept into an invoice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvoiceItem {
    pub id: String,
    pub customer: String,
    pub subscription: Option<String>,
    pub subscription_item: Option<String>,
    pub price: String,
    pub quantity: u64,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub period_start: i64,
    pub period_end: i64,
    pub proration: bool,
    pub date: i64,
    /// The invoice it was added to; `None` while pending.
    pub invoice: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStatus {
    NotStarted,
    Active,
    Completed,
    Released,
    Canceled,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::NotStarted => "not_started",
            ScheduleStatus::Active => "active",
            ScheduleStatus::Completed => "completed",
            ScheduleStatus::Released => "released",
            ScheduleStatus::Canceled => "canceled",
        }
    }
}

/// One phase of a subscription schedule: these items from `start_date` to `end_date`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchedulePhase {
    pub start_date: i64,
    pub end_date: i64,
    pub price: String,
    pub quantity: u64,
    pub proration_behavior: String,
}

/// A subscription schedule (`sub_sched_…`), as the portal makes one for a change at the
/// period's end: the current phase until then, the new price for one period after, then
/// released (`end_behavior=release`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionSchedule {
    pub id: String,
    pub created: i64,
    pub customer: String,
    /// The subscription it manages; `None` once released or canceled.
    pub subscription: Option<String>,
    pub status: ScheduleStatus,
    pub phases: Vec<SchedulePhase>,
    /// Index into `phases` of the phase in effect.
    pub current_phase: usize,
    pub end_behavior: String,
    pub released_at: Option<i64>,
    pub released_subscription: Option<String>,
    pub canceled_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub currency: String,
    pub metadata: Metadata,
}

impl SubscriptionSchedule {
    /// Still managing its subscription.
    pub fn is_live(&self) -> bool {
        matches!(
            self.status,
            ScheduleStatus::Active | ScheduleStatus::NotStarted
        )
    }

    /// The phase after the current one, if the schedule still has one to start.
    pub fn next_phase(&self) -> Option<&SchedulePhase> {
        self.is_live()
            .then(|| self.phases.get(self.current_phase + 1))
            .flatten()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStatus {
    Open,
    Complete,
    Expired,
}

impl CheckoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutStatus::Open => "open",
            CheckoutStatus::Complete => "complete",
            CheckoutStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutLine {
    pub id: String,
    pub price: String,
    pub quantity: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub created: i64,
    pub expires_at: i64,
    pub status: CheckoutStatus,
    /// `unpaid`, `paid`, `no_payment_required`.
    pub payment_status: String,
    pub customer: Option<String>,
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
    pub line_items: Vec<CheckoutLine>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub client_reference_id: Option<String>,
    pub trial_period_days: Option<u32>,
    pub trial_from_plan: Option<bool>,
    pub subscription_metadata: Metadata,
    pub subscription_description: Option<String>,
    pub metadata: Metadata,
    pub locale: Option<String>,
    pub subscription: Option<String>,
    pub invoice: Option<String>,
    pub amount_total: i64,
    pub currency: String,
    /// `subscription` or `payment` (one-time prices, no subscription).
    #[serde(default = "subscription_mode")]
    pub mode: String,
    /// A payment-mode session's payment, once paid (`pi_…`).
    #[serde(default)]
    pub payment_intent: Option<String>,
}

fn subscription_mode() -> String {
    "subscription".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortalProduct {
    pub product: String,
    pub prices: Vec<String>,
    /// Whether (and within what) the portal lets a customer change the quantity.
    #[serde(default)]
    pub adjustable_quantity: AdjustableQuantity,
}

/// A portal product's `adjustable_quantity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustableQuantity {
    pub enabled: bool,
    pub minimum: u64,
    pub maximum: Option<u64>,
}

impl Default for AdjustableQuantity {
    fn default() -> Self {
        AdjustableQuantity {
            enabled: false,
            minimum: 1,
            maximum: None,
        }
    }
}

impl AdjustableQuantity {
    /// Whether `quantity` is one a customer may choose here.
    pub fn allows(&self, quantity: u64) -> bool {
        self.enabled && quantity >= self.minimum && self.maximum.is_none_or(|max| quantity <= max)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortalConfiguration {
    pub id: String,
    pub created: i64,
    pub updated: i64,
    pub active: bool,
    pub is_default: bool,
    pub name: Option<String>,
    pub headline: Option<String>,
    pub privacy_policy_url: Option<String>,
    pub terms_of_service_url: Option<String>,
    pub default_return_url: Option<String>,
    pub customer_update_enabled: bool,
    /// `email`, `name`, `address`, `phone`, `shipping`, `tax_id`.
    pub customer_update_allowed: Vec<String>,
    pub invoice_history_enabled: bool,
    pub payment_method_update_enabled: bool,
    pub subscription_cancel_enabled: bool,
    /// `at_period_end` or `immediately`.
    pub subscription_cancel_mode: String,
    pub cancellation_reason_enabled: bool,
    pub cancellation_reason_options: Vec<String>,
    pub subscription_update_enabled: bool,
    /// `price`, `quantity`, `promotion_code`.
    pub subscription_update_allowed: Vec<String>,
    pub subscription_update_products: Vec<PortalProduct>,
    /// `none`, `create_prorations`, `always_invoice`.
    pub proration_behavior: String,
    /// When a switch waits for the period's end: `decreasing_item_amount`,
    /// `shortening_interval` (none: every switch happens at once).
    #[serde(default)]
    pub schedule_at_period_end: Vec<String>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortalSession {
    pub id: String,
    pub created: i64,
    pub customer: String,
    pub configuration: String,
    pub return_url: Option<String>,
    pub locale: Option<String>,
    /// The `flow` object exactly as the API returns it (absent for a plain portal session).
    pub flow: Option<serde_json::Value>,
    /// Real time after which an unopened URL shows the expired page.
    pub expires_at: i64,
    /// When the customer first opened it; an opened session lasts an hour.
    #[serde(default)]
    pub opened_at: Option<i64>,
    /// Set once the customer followed the way back; the URL is spent.
    pub returned: bool,
}

/// How long a portal session lasts once opened.
pub const OPENED_PORTAL_SESSION_LIFETIME: i64 = 3600;

impl PortalSession {
    /// Whether the URL still opens the portal at real time `now`: unopened within its first
    /// minutes, opened within the hour, and never after the customer went back.
    pub fn usable(&self, now: i64) -> bool {
        if self.returned {
            return false;
        }
        match self.opened_at {
            None => now <= self.expires_at,
            Some(opened) => now <= opened + OPENED_PORTAL_SESSION_LIFETIME,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: String,
    pub type_: String,
    pub created: i64,
    /// The whole event as first rendered; `pending_webhooks` is refreshed when it is read.
    pub json: serde_json::Value,
    /// The exact bytes every delivery of this event sends.
    pub payload: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub created: i64,
    pub url: String,
    pub secret: String,
    /// Event types to send; `*` means all.
    pub enabled_events: Vec<String>,
    pub description: Option<String>,
    pub metadata: Metadata,
    pub status: String,
    /// The API version its events are rendered for; `None`: the account's default.
    #[serde(default)]
    pub api_version: Option<String>,
}

impl WebhookEndpoint {
    pub fn wants(&self, event_type: &str) -> bool {
        self.status == "enabled"
            && self
                .enabled_events
                .iter()
                .any(|e| e == "*" || e == event_type)
    }
}

/// One try at delivering an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// Unix milliseconds when the request was sent.
    pub at_millis: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// One event on its way to one endpoint, and what happened so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub url: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered: bool,
    /// Every retry in the schedule was spent without a 2xx.
    pub gave_up: bool,
    /// Sent again on purpose by the chaos options.
    pub duplicate: bool,
    pub created_millis: i64,
    /// When the next attempt is due (unix milliseconds); `None` once finished.
    pub next_attempt_millis: Option<i64>,
    pub attempt_log: Vec<DeliveryAttempt>,
    /// An attempt is under way (never persisted as true: a restart retries it).
    #[serde(skip)]
    pub in_flight: bool,
}

impl DeliveryRecord {
    pub fn pending(&self) -> bool {
        !self.delivered && !self.gave_up
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotentResponse {
    pub key: String,
    /// Method, path and canonical parameters of the first request.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub created: i64,
}

/// What happens to a subscription once every retry of a renewal has failed (Stripe's
/// "Manage failed payments" setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetriesExhausted {
    #[default]
    Cancel,
    MarkUnpaid,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Settings {
    pub retries_exhausted: RetriesExhausted,
}

/// Everything the double knows. Collections keep creation order; lists read them newest first.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub customers: Vec<Customer>,
    pub products: Vec<Product>,
    pub prices: Vec<Price>,
    pub payment_methods: Vec<PaymentMethod>,
    pub subscriptions: Vec<Subscription>,
    pub invoices: Vec<Invoice>,
    pub checkout_sessions: Vec<CheckoutSession>,
    pub portal_configurations: Vec<PortalConfiguration>,
    pub portal_sessions: Vec<PortalSession>,
    pub events: Vec<StoredEvent>,
    pub webhook_endpoints: Vec<WebhookEndpoint>,
    pub deliveries: Vec<DeliveryRecord>,
    pub idempotency: Vec<IdempotentResponse>,
    pub settings: Settings,
    #[serde(default)]
    pub invoice_items: Vec<InvoiceItem>,
    #[serde(default)]
    pub subscription_schedules: Vec<SubscriptionSchedule>,
    #[serde(default)]
    pub features: Vec<Feature>,
    #[serde(default)]
    pub product_features: Vec<ProductFeature>,
    #[serde(default)]
    pub entitlements: Vec<CustomerEntitlements>,
    #[serde(default)]
    pub test_clocks: Vec<TestClock>,
    /// Not persisted: who caused the current change (events carry it as `request`).
    #[serde(skip)]
    pub request: RequestTag,
    /// Not persisted: set by `open`.
    #[serde(skip)]
    pub env: Env,
}

/// The `request` an event records: the API request that caused it, if any.
#[derive(Debug, Clone, Default)]
pub struct RequestTag {
    pub id: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Settings that come from `SimOptions` rather than from the state file.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub public_base: String,
    pub chaos: Chaos,
}

/// The delivery options that shape how an event is queued.
#[derive(Debug, Clone, Default)]
pub struct Chaos {
    pub duplicate_probability: f64,
    pub reorder_window_millis: i64,
    pub extra_delay_millis: i64,
}

macro_rules! finders {
    ($($find:ident, $field:ident, $ty:ty;)*) => {
        impl State {
            $(
                pub fn $find(&self, id: &str) -> Option<&$ty> {
                    self.$field.iter().find(|x| x.id == id)
                }
            )*
        }
    };
}

macro_rules! finders_mut {
    ($($find_mut:ident, $field:ident, $ty:ty;)*) => {
        impl State {
            $(
                pub fn $find_mut(&mut self, id: &str) -> Option<&mut $ty> {
                    self.$field.iter_mut().find(|x| x.id == id)
                }
            )*
        }
    };
}

finders! {
    customer, customers, Customer;
    product, products, Product;
    price, prices, Price;
    payment_method, payment_methods, PaymentMethod;
    subscription, subscriptions, Subscription;
    invoice, invoices, Invoice;
    checkout_session, checkout_sessions, CheckoutSession;
    portal_configuration, portal_configurations, PortalConfiguration;
    portal_session, portal_sessions, PortalSession;
    event, events, StoredEvent;
    webhook_endpoint, webhook_endpoints, WebhookEndpoint;
    delivery, deliveries, DeliveryRecord;
    invoice_item, invoice_items, InvoiceItem;
    subscription_schedule, subscription_schedules, SubscriptionSchedule;
    test_clock, test_clocks, TestClock;
}

finders_mut! {
    customer_mut, customers, Customer;
    payment_method_mut, payment_methods, PaymentMethod;
    subscription_mut, subscriptions, Subscription;
    invoice_mut, invoices, Invoice;
    checkout_session_mut, checkout_sessions, CheckoutSession;
    portal_configuration_mut, portal_configurations, PortalConfiguration;
    portal_session_mut, portal_sessions, PortalSession;
    delivery_mut, deliveries, DeliveryRecord;
    subscription_schedule_mut, subscription_schedules, SubscriptionSchedule;
    test_clock_mut, test_clocks, TestClock;
}

impl State {
    /// A customer that exists and is not deleted.
    pub fn live_customer(&self, id: &str) -> Option<&Customer> {
        self.customer(id).filter(|c| !c.deleted)
    }

    /// The customer's own "now": its Test Clock's frozen time, else real time plus its own
    /// offset.
    pub fn customer_now(&self, customer: &str) -> i64 {
        let Some(c) = self.customer(customer) else {
            return super::clock::now();
        };
        match c.test_clock.as_deref().and_then(|id| self.test_clock(id)) {
            Some(clock) => clock.frozen_time,
            None => super::clock::now() + c.clock_offset,
        }
    }

    /// The Test Clock a customer lives on, by its id (for the objects' `test_clock`).
    pub fn clock_of(&self, customer: &str) -> Option<String> {
        self.customer(customer).and_then(|c| c.test_clock.clone())
    }

    pub fn default_portal_configuration(&self) -> Option<&PortalConfiguration> {
        self.portal_configurations
            .iter()
            .find(|c| c.is_default && c.active)
    }

    pub fn product_name(&self, price: &str) -> String {
        self.price(price)
            .and_then(|p| self.product(&p.product))
            .map(|p| p.name.clone())
            .unwrap_or_else(|| price.to_string())
    }
}
