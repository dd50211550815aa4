//! Fetch, then write: what a write needs from Stripe is fetched before its transaction.
//!
//! Every `apply_*` runs inside a write transaction (on SQLite: the one writer lock), where
//! no network call may happen: one slow Stripe answer would stall every webhook and every
//! log-in behind it. When a write needs an object from the API (a re-fetch the clocks ask
//! for, a product's name, the subscription of a Checkout Session) it looks in [`Fetched`].
//! If the object is not there it fails with [`SyncError::NeedsFetch`], naming what it
//! wants; the caller ([`FetchLoop`]) rolls the transaction back, fetches that with nothing held,
//! and runs the write again, which decides afresh against the row as it is then.
//!
//! A re-fetch is keyed by the watermark of the row it was asked for against: if the row
//! moved meanwhile, the copy in hand may predate what moved it, so it is fetched again.

use std::collections::HashMap;

use sea_orm::DbErr;
use stripe_core::customer::{RetrieveCustomer, RetrieveCustomerReturned};
use stripe_shared::{CheckoutSession, Invoice, PaymentMethod, Price, Product, Subscription};

use super::{
    entitlements::EntitlementFacts, is_missing, read_clock, schedule::ScheduleFacts, SyncError,
    WriteTxn,
};

/// How often one object may be fetched again for one write because its row kept moving
/// before the write gives up (and fails, to be retried later).
const MAX_REFETCHES_OF_ONE: usize = 3;

/// The most fetches one write may ask for in all: a re-sync of a customer whose rows are all
/// stamped ahead of this server's clock (a test clock) re-fetches each of them once.
const MAX_FETCHES: usize = 512;

/// The kinds of object a write may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// With its price's product expanded.
    Subscription,
    Customer,
    PaymentMethod,
    Invoice,
    /// With its product expanded.
    Price,
    Product,
    CheckoutSession,
    /// Read as JSON, like a schedule event's object (see [`ScheduleFacts::read`]).
    Schedule,
    /// A customer's active entitlements (keyed by the customer's id), read as JSON.
    Entitlements,
}

impl Kind {
    /// The API call that reads an object of this kind, as metrics name it.
    fn endpoint(self) -> &'static str {
        match self {
            Kind::Subscription => "subscriptions.retrieve",
            Kind::Customer => "customers.retrieve",
            Kind::PaymentMethod => "payment_methods.retrieve",
            Kind::Invoice => "invoices.retrieve",
            Kind::Price => "prices.retrieve",
            Kind::Product => "products.retrieve",
            Kind::CheckoutSession => "checkout.sessions.retrieve",
            Kind::Schedule => "subscription_schedules.retrieve",
            Kind::Entitlements => "entitlements.active_entitlements.list",
        }
    }
}

/// One object a write needs: its kind, its id, and for a re-fetch the watermark of the row
/// it is to replace (`None` for a plain read, such as a product's name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Wanted {
    pub kind: Kind,
    pub id: String,
    pub after: Option<i64>,
}

impl Wanted {
    pub fn new(kind: Kind, id: &str, after: Option<i64>) -> Wanted {
        Wanted {
            kind,
            id: id.to_owned(),
            after,
        }
    }
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.kind, self.id)
    }
}

/// An object as the API returned it.
#[derive(Debug, Clone)]
pub enum Object {
    Subscription(Box<Subscription>),
    Customer(Box<RetrieveCustomerReturned>),
    PaymentMethod(Box<PaymentMethod>),
    Invoice(Box<Invoice>),
    Price(Box<Price>),
    Product(Box<Product>),
    CheckoutSession(Box<CheckoutSession>),
    Schedule(Box<ScheduleFacts>),
    Entitlements(Box<EntitlementFacts>),
}

/// A type of object [`Fetched::latest`] can hand back: which kind it is fetched as, and how
/// to find it among the fetched objects.
pub trait FetchedObject: Clone {
    const KIND: Kind;
    fn pick(object: &Object) -> Option<&Self>;
}

macro_rules! fetched_object {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(
            impl FetchedObject for $ty {
                const KIND: Kind = Kind::$variant;
                fn pick(object: &Object) -> Option<&Self> {
                    match object {
                        Object::$variant(o) => Some(&**o),
                        _ => None,
                    }
                }
            }
        )*
    };
}

fetched_object!(
    Subscription => Subscription,
    RetrieveCustomerReturned => Customer,
    PaymentMethod => PaymentMethod,
    Invoice => Invoice,
    Price => Price,
    Product => Product,
    CheckoutSession => CheckoutSession,
    ScheduleFacts => Schedule,
    EntitlementFacts => Entitlements,
);

/// A fetched object (`None`: Stripe has no such object) and the second the request was
/// made in, taken before it was sent.
type Entry = (Option<Object>, i64);

/// The objects fetched for one write, before its transaction.
#[derive(Debug, Default)]
pub struct Fetched {
    objects: HashMap<Wanted, Entry>,
}

impl Fetched {
    /// Reads `wanted` from the API (no transaction may be open) and keeps it, as read at
    /// `read_at` (taken before the request, by [`read_clock`]).
    pub async fn fetch(
        &mut self,
        stripe: &::stripe::Client,
        wanted: Wanted,
        read_at: i64,
    ) -> Result<(), ::stripe::StripeError> {
        let id = wanted.id.as_str();
        let got = match wanted.kind {
            Kind::Subscription => stripe_billing::subscription::RetrieveSubscription::new(id)
                .expand(vec!["items.data.price.product".to_owned()])
                .send(stripe)
                .await
                .map(|o| Object::Subscription(Box::new(o))),
            Kind::Customer => RetrieveCustomer::new(id)
                .send(stripe)
                .await
                .map(|o| Object::Customer(Box::new(o))),
            Kind::PaymentMethod => stripe_payment::payment_method::RetrievePaymentMethod::new(id)
                .send(stripe)
                .await
                .map(|o| Object::PaymentMethod(Box::new(o))),
            Kind::Invoice => stripe_billing::invoice::RetrieveInvoice::new(id)
                .send(stripe)
                .await
                .map(|o| Object::Invoice(Box::new(o))),
            Kind::Price => stripe_product::price::RetrievePrice::new(id)
                .expand(vec!["product".to_owned()])
                .send(stripe)
                .await
                .map(|o| Object::Price(Box::new(o))),
            Kind::Product => stripe_product::product::RetrieveProduct::new(id)
                .send(stripe)
                .await
                .map(|o| Object::Product(Box::new(o))),
            Kind::CheckoutSession => {
                stripe_checkout::checkout_session::RetrieveCheckoutSession::new(id)
                    .send(stripe)
                    .await
                    .map(|o| Object::CheckoutSession(Box::new(o)))
            }
            Kind::Schedule => ScheduleFacts::retrieve(stripe, id)
                .await
                .map(|o| Object::Schedule(Box::new(o))),
            Kind::Entitlements => EntitlementFacts::retrieve(stripe, id)
                .await
                .map(|o| Object::Entitlements(Box::new(o))),
        };
        crate::metrics::stripe_request(wanted.kind.endpoint(), &got);
        let object = match got {
            Ok(o) => Some(o),
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(e),
        };
        self.objects.insert(wanted, (object, read_at));
        Ok(())
    }

    /// The object fetched for `wanted`: `Some` if Stripe has it, with the second it was
    /// read in; `None` if Stripe has no such object; [`SyncError::NeedsFetch`] if it has
    /// not been fetched yet.
    fn get<T: Clone>(
        &self,
        wanted: Wanted,
        pick: impl FnOnce(&Object) -> Option<&T>,
    ) -> Result<Option<(T, i64)>, SyncError> {
        match self.objects.get(&wanted) {
            Some((object, at)) => Ok(object.as_ref().and_then(pick).map(|o| (o.clone(), *at))),
            None => Err(SyncError::NeedsFetch(wanted)),
        }
    }

    pub fn subscription(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> Result<Option<Subscription>, SyncError> {
        let wanted = Wanted::new(Kind::Subscription, id, after);
        let got = self.get(wanted, |o| match o {
            Object::Subscription(s) => Some(&**s),
            _ => None,
        })?;
        Ok(got.map(|(s, _)| s))
    }

    pub fn customer(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> Result<Option<RetrieveCustomerReturned>, SyncError> {
        let got = self.get(Wanted::new(Kind::Customer, id, after), |o| match o {
            Object::Customer(c) => Some(&**c),
            _ => None,
        })?;
        Ok(got.map(|(c, _)| c))
    }

    pub fn payment_method(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> Result<Option<PaymentMethod>, SyncError> {
        let got = self.get(Wanted::new(Kind::PaymentMethod, id, after), |o| match o {
            Object::PaymentMethod(p) => Some(&**p),
            _ => None,
        })?;
        Ok(got.map(|(p, _)| p))
    }

    pub fn invoice(&self, id: &str, after: Option<i64>) -> Result<Option<Invoice>, SyncError> {
        let got = self.get(Wanted::new(Kind::Invoice, id, after), |o| match o {
            Object::Invoice(i) => Some(&**i),
            _ => None,
        })?;
        Ok(got.map(|(i, _)| i))
    }

    pub fn price(&self, id: &str, after: Option<i64>) -> Result<Option<Price>, SyncError> {
        let got = self.get(Wanted::new(Kind::Price, id, after), |o| match o {
            Object::Price(p) => Some(&**p),
            _ => None,
        })?;
        Ok(got.map(|(p, _)| p))
    }

    pub fn schedule(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> Result<Option<ScheduleFacts>, SyncError> {
        let got = self.get(Wanted::new(Kind::Schedule, id, after), ScheduleFacts::pick)?;
        Ok(got.map(|(s, _)| s))
    }

    pub fn entitlements(
        &self,
        customer: &str,
        after: Option<i64>,
    ) -> Result<Option<EntitlementFacts>, SyncError> {
        let got = self.get(
            Wanted::new(Kind::Entitlements, customer, after),
            EntitlementFacts::pick,
        )?;
        Ok(got.map(|(e, _)| e))
    }

    /// An object as the API has it now (a plain read, not a re-fetch against a row), with
    /// the second it was read in; `None` if Stripe has no such object.
    pub fn latest<T: FetchedObject>(&self, id: &str) -> Result<Option<(T, i64)>, SyncError> {
        self.get(Wanted::new(T::KIND, id, None), T::pick)
    }

    /// A product, with the second it was read in (for ordering it as an API read).
    pub fn product(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> Result<Option<(Product, i64)>, SyncError> {
        self.get(Wanted::new(Kind::Product, id, after), |o| match o {
            Object::Product(p) => Some(&**p),
            _ => None,
        })
    }
}

/// An error that may be a write's request for an object (see [`SyncError::NeedsFetch`]).
pub trait MayNeedFetch: From<DbErr> + From<SyncError> {
    fn wanted(&self) -> Option<&Wanted>;
}

impl MayNeedFetch for SyncError {
    fn wanted(&self) -> Option<&Wanted> {
        match self {
            SyncError::NeedsFetch(w) => Some(w),
            _ => None,
        }
    }
}

/// The loop every write that may need Stripe runs in: begin a write transaction, do the
/// work against [`FetchLoop::fetched`], and hand the result to [`FetchLoop::settle`], which
/// commits it, or rolls back and fetches what the work asked for (then run it again):
///
/// ```ignore
/// let mut writes = FetchLoop::default();
/// loop {
///     let txn = begin_write(db).await?;
///     let result = work(&*txn, writes.fetched()).await;
///     if let Some(done) = writes.settle(txn, result, stripe).await? {
///         return Ok(done);
///     }
/// }
/// ```
#[derive(Debug, Default)]
pub struct FetchLoop {
    fetched: Fetched,
    rounds: usize,
    /// Fetches per object, whatever row watermark they were for.
    per_object: HashMap<(Kind, String), usize>,
}

impl FetchLoop {
    /// Everything fetched so far.
    pub fn fetched(&self) -> &Fetched {
        &self.fetched
    }

    /// Commits `txn` if the work succeeded (`Some` of its result). If the work needs an
    /// object from Stripe, rolls back, fetches it with nothing held, and answers `None`:
    /// run the work again. Any other error rolls back and is returned.
    pub async fn settle<T, E: MayNeedFetch>(
        &mut self,
        txn: WriteTxn,
        result: Result<T, E>,
        stripe: &::stripe::Client,
    ) -> Result<Option<T>, E> {
        let error = match result {
            Ok(done) => {
                txn.commit().await?;
                return Ok(Some(done));
            }
            Err(e) => e,
        };
        let Some(wanted) = error.wanted().cloned() else {
            txn.rollback().await?;
            return Err(error);
        };
        // The read's second, by the database's clock, before the request; asking it here
        // saves a connection and a round trip.
        let read_at = read_clock(&*txn).await;
        txn.rollback().await?;
        let read_at = read_at?;
        self.rounds += 1;
        let again = self
            .per_object
            .entry((wanted.kind, wanted.id.clone()))
            .or_default();
        *again += 1;
        if self.rounds > MAX_FETCHES || *again > MAX_REFETCHES_OF_ONE {
            return Err(E::from(SyncError::TooManyFetches(self.rounds)));
        }
        self.fetched
            .fetch(stripe, wanted, read_at)
            .await
            .map_err(|e| E::from(SyncError::Stripe(e)))?;
        Ok(None)
    }
}
