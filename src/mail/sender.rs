//! The sender task: delivers the outbox's due rows, one claimed row at a time, then waits for
//! the next poll or for this process to queue a mail. A temporary refusal (the server
//! unreachable, busy, or 4xx) is tried again with back-off; a permanent one (5xx, or a mail
//! that cannot be made) is recorded with the server's words. A replica that dies mid-send
//! leaves a claim that lapses after [`CLAIM_SECS`](super::outbox::CLAIM_SECS), and the row
//! goes out again: delivery is at least once, and a row is never sent by two live replicas.

use std::{sync::Arc, time::Duration};

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::watch;

use super::{
    links,
    outbox::{self, Outcome},
    render,
    transport::Refusal,
    Kind, Mailer,
};
use crate::{
    config::Config,
    db::{begin_write, clock, entities::mail_outbox},
};

/// How often the outbox is read when nothing wakes the sender.
pub const POLL: Duration = Duration::from_secs(2);

/// The waits after each temporary refusal, in seconds (30 s up to 8 h, about 15 h in all);
/// once they run out the mail is recorded as failed.
const BACKOFF_SECS: [i64; 10] = [30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 28_800];

/// Rows read at a time.
const BATCH: u64 = 20;

/// Runs until `stop` turns true.
pub async fn run(
    db: DatabaseConnection,
    mailer: Arc<Mailer>,
    config: Arc<Config>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = deliver_due(&db, &mailer, &config).await {
            tracing::warn!(error = %e, "mail: could not read the outbox");
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = mailer.queued.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Delivers every row due now that no live replica holds. Returns how many were attempted.
pub async fn deliver_due(
    db: &DatabaseConnection,
    mailer: &Mailer,
    config: &Config,
) -> Result<usize, DbErr> {
    let mut attempted = 0;
    loop {
        let due = outbox::due(db, BATCH).await?;
        if due.is_empty() {
            return Ok(attempted);
        }
        let mut claimed_any = false;
        for row in due {
            if !claim(db, row.id).await? {
                continue;
            }
            claimed_any = true;
            attempted += 1;
            let outcome = attempt(db, mailer, config, &row).await?;
            let result = match &outcome {
                Outcome::Sent => "sent",
                Outcome::Retry { .. } => "retry",
                Outcome::Failed { .. } => "failed",
            };
            crate::metrics::mail(&row.kind, result);
            if let Outcome::Failed { error } = &outcome {
                tracing::warn!(id = row.id, kind = %row.kind, %error, "mail: not sent, and will not be");
            }
            let txn = begin_write(db).await?;
            outbox::record(&*txn, row.id, outcome).await?;
            txn.commit().await?;
        }
        // Everything due was someone else's: leave it to them.
        if !claimed_any {
            return Ok(attempted);
        }
    }
}

/// Claims the row for this process, through the one write path (on SQLite, the queue of
/// writers), so the sender never contends with a request's write.
async fn claim(db: &DatabaseConnection, id: i64) -> Result<bool, DbErr> {
    let txn = begin_write(db).await?;
    let claimed = outbox::claim(&*txn, id, crate::db::process_name()).await?;
    txn.commit().await?;
    Ok(claimed)
}

/// One attempt at a claimed row: its link made (for the kinds that carry one), rendered, sent.
async fn attempt(
    db: &DatabaseConnection,
    mailer: &Mailer,
    config: &Config,
    row: &mail_outbox::Model,
) -> Result<Outcome, DbErr> {
    let failed = |error: &str| Outcome::Failed {
        error: error.to_owned(),
    };
    let Some(kind) = Kind::parse(&row.kind) else {
        return Ok(failed("a kind of mail this version does not know"));
    };
    let params: serde_json::Value = match serde_json::from_str(&row.params) {
        Ok(params) => params,
        Err(_) => return Ok(failed("its facts are not JSON")),
    };
    let link = match (kind.link_purpose(), row.user_id) {
        (Some(purpose), Some(user_id)) => {
            let txn = begin_write(db).await?;
            // An invitation's link names the invitation (its facts carry the id).
            let subject = params.get("invitation_id").map(|v| v.to_string());
            let token =
                links::mint(&*txn, purpose, user_id, &row.to_address, subject.as_deref()).await?;
            txn.commit().await?;
            // A billing message's link names the organisation whose billing it opens.
            let org = params
                .get("organization_id")
                .and_then(serde_json::Value::as_i64)
                .map(|id| format!("&org={id}"))
                .unwrap_or_default();
            Some(config.url_for(&format!("{}?token={token}{org}", purpose.path())))
        }
        (Some(_), None) => return Ok(failed("a link mail without its user")),
        (None, _) => None,
    };
    let ctx = render::Context {
        billing_url: config.url_for("/settings/billing"),
        past_due: config.past_due,
    };
    let rendered = match render::content(kind, &row.to_address, &params, link.as_deref(), &ctx)
        .map_err(|e| format!("the mail cannot be made: {e}"))
        .and_then(|c| c.render().map_err(|e| format!("the template failed: {e}")))
    {
        Ok(rendered) => rendered,
        Err(e) => return Ok(failed(&e)),
    };
    Ok(
        match mailer
            .transport
            .send(&mailer.config.from, &row.to_address, &rendered)
            .await
        {
            Ok(()) => Outcome::Sent,
            Err(Refusal::Permanent(error)) => Outcome::Failed { error },
            Err(Refusal::Temporary(error)) => {
                match BACKOFF_SECS.get(row.attempts.max(0) as usize) {
                    Some(wait) => Outcome::Retry {
                        at: clock::now() + wait,
                        error,
                    },
                    None => Outcome::Failed {
                        error: format!("gave up after {} attempts: {error}", row.attempts + 1),
                    },
                }
            }
        },
    )
}
