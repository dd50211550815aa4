//! Group commit for webhook deliveries: the step between the route and the pipeline.
//!
//! Each delivery on its own costs a transaction (two more round trips, a commit that waits
//! for the disk) and, on SQLite, a hand-over of the one write lock from request to request.
//! Here a few writer tasks per database take every delivery queued at that moment and run
//! them one after another in a single transaction, then answer each request after the
//! commit. SQLite gets one writer, as it only ever has one; PostgreSQL gets a few, so that
//! one batch's round trips overlap another's.
//!
//! Per event nothing changes: each is claimed, applied and recorded exactly as on its own,
//! in arrival order, and no request is answered before the commit that holds its effects.
//! Only the rows of events never seen before are inserted together, by the batch's first
//! statement (applying an event reads no event rows, so it sees no difference).
//! If anything in a batch fails, the batch is rolled back and each of its events is
//! processed again in a transaction of its own, so that a failing event is recorded as
//! failed alone and the others apply.
//!
//! On PostgreSQL two batches that lock the same rows in opposite orders deadlock; the
//! database breaks it by failing one, but only after a second, and under a burst the
//! retries deadlock again. So each writer has a queue of its own, and a customer's events
//! always go to the same writer, whether Stripe delivered them or the reconciler found them
//! missing (it hands them to [`process`] too): two batches never share a customer's rows.
//! A product seen inside a subscription is written only when it brings news (see
//! `sync::price::apply_embedded_product`), so lanes do not fight over its row. Catalogue
//! events (products, prices) go to no batch: a rename locks its product and then every
//! subscription on it, while a subscription's write takes the product's share lock after
//! whatever its batch wrote before.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::Instant,
};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use tokio::sync::{mpsc, oneshot};

use super::{
    event::{Envelope, Scope},
    pipeline::{self, AttemptError, Delivery, Outcome, Pipeline, ProcessError, Processed},
};
use crate::billing::sync::{Fetched, MayNeedFetch};

/// The most events one SQLite transaction takes: enough for every connection Stripe opens
/// at once, small enough that one commit never waits long.
const SQLITE_BATCH: usize = 64;

/// PostgreSQL runs several writers; smaller batches spread the queue across them, which
/// keeps one large batch from holding up the slowest requests.
const POSTGRES_BATCH: usize = 8;

/// Deliveries waiting for each writer.
const QUEUE: usize = 1024;

/// Processes a verified delivery from Stripe through its database's group commit, or on
/// its own should no writer take it. Answers after the commit that holds its effects.
pub async fn process(p: Pipeline<'_>, envelope: Envelope) -> Result<Processed, ProcessError> {
    let envelope = Arc::new(envelope);
    let lane = match envelope.scope() {
        Scope::Catalogue => None,
        Scope::Customer(customer) => Some(lane_of(customer)),
    };
    if let (Some(key), Some(lane)) = (database_key(p.db), lane) {
        // Compressed and parsed here, on the request's own task, not by the writer every
        // delivery waits for.
        envelope.prepare();
        if let Some(result) = submit(key, lane, Job::new(p, envelope.clone())).await {
            return result;
        }
    }
    pipeline::process(p, &envelope, Delivery::Webhook).await
}

/// Which writer a customer's events go to (modulo the number of writers): the same one
/// every time, in every process.
fn lane_of(customer: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    customer.hash(&mut h);
    h.finish()
}

/// A verified delivery waiting for the writer.
struct Job {
    db: DatabaseConnection,
    stripe: ::stripe::Client,
    livemode: bool,
    envelope: Arc<Envelope>,
    reply: Option<oneshot::Sender<Result<Processed, ProcessError>>>,
    /// When the delivery was queued for its writer.
    queued_at: Instant,
}

impl Job {
    fn new(p: Pipeline<'_>, envelope: Arc<Envelope>) -> Job {
        Job {
            db: p.db.clone(),
            stripe: p.stripe.clone(),
            livemode: p.livemode,
            envelope,
            reply: None,
            queued_at: Instant::now(),
        }
    }

    fn pipeline(&self) -> Pipeline<'_> {
        Pipeline {
            db: &self.db,
            stripe: &self.stripe,
            livemode: self.livemode,
        }
    }

    fn answer(&mut self, result: Result<Processed, ProcessError>) {
        if let Some(reply) = self.reply.take() {
            // The request may have gone away; the event is recorded either way.
            let _ = reply.send(result);
        }
    }
}

/// Which database a pool writes to, so that every pool on one database shares its
/// writers; `None` for a database without group commit.
fn database_key(db: &DatabaseConnection) -> Option<String> {
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            let options = db.get_sqlite_connection_pool().connect_options();
            Some(format!("sqlite:{}", options.get_filename().display()))
        }
        DbBackend::Postgres => {
            let o = db.get_postgres_connection_pool().connect_options();
            Some(format!(
                "postgres://{}:{}/{}?{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or_default(),
                o.get_socket()
                    .map(|s| s.display().to_string())
                    .unwrap_or_default(),
            ))
        }
        _ => None,
    }
}

/// How many transactions run side by side, and how many events each takes at most. SQLite
/// has one writer anyway; PostgreSQL overlaps one batch's round trips with another's.
fn writers_for(db: &DatabaseConnection) -> (usize, usize) {
    match db.get_database_backend() {
        DbBackend::Sqlite => (1, SQLITE_BATCH),
        _ => (4, POSTGRES_BATCH),
    }
}

/// The queues of one database's writers, one queue each.
type Writers = Arc<Vec<mpsc::Sender<Job>>>;

static WRITERS: LazyLock<Mutex<HashMap<String, Writers>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The writers for `key`, started if there are none (or their runtime is gone).
fn writers(key: String, db: &DatabaseConnection) -> Writers {
    let mut all = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(writers) = all.get(&key).filter(|w| w.iter().all(|tx| !tx.is_closed())) {
        return writers.clone();
    }
    let (count, max_batch) = writers_for(db);
    let writers: Writers = Arc::new(
        (0..count)
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(rx, max_batch));
                tx
            })
            .collect(),
    );
    all.insert(key, writers.clone());
    writers
}

/// Hands a delivery to the writer of its lane and waits for the answer, given after the
/// commit. `None` if no writer could take it; nothing of it was then written.
async fn submit(key: String, lane: u64, mut job: Job) -> Option<Result<Processed, ProcessError>> {
    let (reply, answer) = oneshot::channel();
    job.reply = Some(reply);
    let writers = writers(key, &job.db);
    let index = usize::try_from(lane % writers.len().max(1) as u64).unwrap_or(0);
    let tx = writers.get(index)?.clone();
    tx.send(job).await.ok()?;
    answer.await.ok()
}

/// One writer: takes whatever is queued (waiting for at least one), writes it, repeats.
/// While it writes, the other writers write their own lanes' batches.
async fn run(mut queue: mpsc::Receiver<Job>, max_batch: usize) {
    loop {
        let mut batch = Vec::with_capacity(max_batch);
        let taken = queue.recv_many(&mut batch, max_batch).await;
        if taken == 0 {
            return;
        }
        write_batch(batch).await;
    }
}

async fn write_batch(mut batch: Vec<Job>) {
    let Some(first) = batch.first() else {
        return;
    };
    let db = first.db.clone();
    let started = Instant::now();
    for job in &batch {
        crate::metrics::webhook_queued(started.saturating_duration_since(job.queued_at));
    }
    match apply_all(&db, &batch).await {
        Ok(outcomes) => {
            for (job, outcome) in batch.iter_mut().zip(outcomes) {
                let processed = Processed::of(&job.envelope, outcome);
                job.answer(Ok(processed));
            }
        }
        // A write needs something from Stripe: each event goes on its own, off this writer,
        // so that the fetch (between transactions) holds up no other delivery.
        Err(error) if error.wanted().is_some() => {
            for mut job in batch {
                tokio::spawn(async move {
                    let result =
                        pipeline::process(job.pipeline(), &job.envelope, Delivery::Webhook).await;
                    job.answer(result);
                });
            }
        }
        // A batch of one has its answer (unless it lost to a concurrent transaction: then
        // it runs again on its own, below). With no connection to be had, one by one each event
        // would wait as long again to fail the same way, while the queue behind them grows:
        // all are answered now.
        Err(error)
            if (batch.len() == 1 && !error.lost_to_concurrency()) || error.is_unreachable() =>
        {
            for job in batch.iter_mut() {
                let failure = pipeline::failed(&job.db, &job.envelope, &error).await;
                job.answer(Err(failure));
            }
        }
        Err(_) => {
            // Which event failed matters: each gets its own transaction and its own outcome.
            for job in batch.iter_mut() {
                let result =
                    pipeline::process(job.pipeline(), &job.envelope, Delivery::Webhook).await;
                job.answer(result);
            }
        }
    }
}

/// Every event of the batch in one transaction, in order; the first error rolls it all back.
async fn apply_all(db: &DatabaseConnection, batch: &[Job]) -> Result<Vec<Outcome>, AttemptError> {
    let started = Instant::now();
    let txn = crate::db::begin_write(db).await?;
    let outcomes = match apply_each(&*txn, batch).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            txn.rollback().await?;
            return Err(e);
        }
    };
    let applied = Instant::now();
    txn.commit().await?;
    crate::metrics::webhook_batch(
        batch.len(),
        applied.duration_since(started),
        applied.elapsed(),
    );
    Ok(outcomes)
}

/// The events never seen before are recorded with one statement; each is then applied in its
/// turn. An event seen before (or twice in this batch) is claimed in its turn, as alone.
async fn apply_each(
    conn: &impl ConnectionTrait,
    batch: &[Job],
) -> Result<Vec<Outcome>, AttemptError> {
    let mut new =
        pipeline::claim_new(conn, batch.iter().map(|job| (&*job.envelope, job.livemode))).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let fetched = Fetched::default();
        let outcome = if new.remove(&job.envelope.id) {
            pipeline::apply_claimed(conn, &fetched, job.livemode, &job.envelope).await?
        } else {
            pipeline::record_and_apply(
                conn,
                &fetched,
                job.livemode,
                &job.envelope,
                Delivery::Webhook,
            )
            .await?
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use sea_orm::EntityTrait;

    use super::*;
    use crate::db::entities::webhook_event;

    fn event(id: &str, event_type: &str, object: &str) -> Bytes {
        Bytes::from(format!(
            r#"{{"id":"{id}","object":"event","type":"{event_type}","created":1700000000,"livemode":false,"data":{{"object":{object}}}}}"#
        ))
    }

    /// A migrated SQLite database of its own (kept while the directory lives), and a Stripe
    /// client that reaches nothing.
    async fn database() -> (tempfile::TempDir, DatabaseConnection, ::stripe::Client) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/batch.db?mode=rwc", dir.path().display());
        let db = crate::db::connect_and_migrate(&url).await.expect("db");
        let stripe = ::stripe::ClientBuilder::new("sk_test_batch")
            .url("http://127.0.0.1:9")
            .build()
            .expect("client");
        (dir, db, stripe)
    }

    /// Deliveries that share a batch with a failing one still apply, and only the failing
    /// one is recorded as failed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_in_a_batch_stays_with_its_event() {
        let (_dir, db, stripe) = database().await;
        let p = Pipeline {
            db: &db,
            stripe: &stripe,
            livemode: false,
        };

        let mut bodies: Vec<Bytes> = (0..16)
            .map(|i| {
                event(
                    &format!("evt_ok_{i}"),
                    "customer.created",
                    r#"{"id":"cus_1"}"#,
                )
            })
            .collect();
        // Its object is no subscription, so it cannot be applied; the others can.
        bodies.insert(
            8,
            event(
                "evt_bad",
                "customer.subscription.updated",
                r#"{"id":"sub_1","object":"subscription"}"#,
            ),
        );
        let results = futures_util::future::join_all(bodies.into_iter().map(|b| {
            let envelope = Envelope::parse(b).expect("an event");
            process(p, envelope)
        }))
        .await;

        for result in results {
            match result {
                Ok(done) => {
                    assert!(done.event_id.starts_with("evt_ok_"), "{done:?}");
                    assert_eq!(done.outcome, Outcome::Ignored);
                }
                Err(ProcessError::Failed { event_id, .. }) => assert_eq!(event_id, "evt_bad"),
            }
        }
        let rows = webhook_event::Entity::find().all(&db).await.expect("rows");
        assert_eq!(rows.len(), 17);
        for row in rows {
            let expected = if row.id == "evt_bad" {
                Outcome::Failed
            } else {
                Outcome::Ignored
            };
            assert_eq!(row.outcome, expected, "{}", row.id);
            assert_eq!(row.attempts, 1, "{}", row.id);
        }
    }

    /// An event delivered twice at once is applied once, and one whose last attempt failed
    /// is taken over, whether or not its batch inserts the others' rows together.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_claims_each_event_once() {
        let (_dir, db, stripe) = database().await;
        let p = Pipeline {
            db: &db,
            stripe: &stripe,
            livemode: false,
        };
        let customer = r#"{"id":"cus_1"}"#;
        // A first attempt that failed: a redelivery takes it over.
        let earlier =
            Envelope::parse(event("evt_retry", "customer.created", customer)).expect("an event");
        pipeline::failed(
            &db,
            &earlier,
            &AttemptError::Db(sea_orm::DbErr::Custom("down".into())),
        )
        .await;

        let mut bodies: Vec<Bytes> = (0..12)
            .map(|i| event(&format!("evt_new_{i}"), "customer.created", customer))
            .collect();
        bodies.insert(3, event("evt_twice", "customer.created", customer));
        bodies.insert(7, event("evt_twice", "customer.created", customer));
        bodies.insert(5, event("evt_retry", "customer.created", customer));
        let results = futures_util::future::join_all(bodies.into_iter().map(|b| {
            let envelope = Envelope::parse(b).expect("an event");
            process(p, envelope)
        }))
        .await;

        let mut twice = Vec::new();
        for result in results {
            let done = result.expect("processed");
            if done.event_id == "evt_twice" {
                twice.push(done.outcome);
            } else {
                assert_eq!(done.outcome, Outcome::Ignored, "{done:?}");
            }
        }
        twice.sort_by_key(|o| *o == Outcome::Duplicate);
        assert_eq!(twice, [Outcome::Ignored, Outcome::Duplicate]);

        let rows = webhook_event::Entity::find().all(&db).await.expect("rows");
        assert_eq!(rows.len(), 14);
        for row in rows {
            assert_eq!(row.outcome, Outcome::Ignored, "{}", row.id);
            assert_eq!(row.error, None, "{}", row.id);
            let attempts = if row.id == "evt_retry" { 2 } else { 1 };
            assert_eq!(row.attempts, attempts, "{}", row.id);
        }
    }
}
