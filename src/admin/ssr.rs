//! Server side of operations: who is an operator, what `/admin/billing` shows, the replay
//! route, and the guard that shows everyone else the not-found page.

use std::{future::Future, pin::Pin};

use axum::{
    body::Body,
    extract::{FromRequest, State},
    http::{Extensions, Request},
    middleware::{from_fn_with_state, Next},
    response::{IntoResponse, Redirect, Response},
    routing::post,
    Form, Router,
};
use serde::Deserialize;

use super::{
    operators, AlertRow, DriftRow, EventInbox, EventRow, InboxFilter, MailRow, ReplayResult,
    RunRow, StripeUpdateRow, ADMIN_BILLING, ALERT_LIMIT, DRIFT_LIMIT, EVENT_LIMIT, REPLAY_PATH,
};
use crate::{
    billing::sync::{CUSTOMER_NOT_IN_ACCOUNT, SECOND_LIVE_SUBSCRIPTION},
    db::{
        clock::{now, rfc3339},
        entities::{billing_alert, drift_record, reconcile_run},
    },
    error::AppError,
    reconcile,
    state::AppState,
    web::{CurrentUser, SignedIn},
    webhooks::{
        history::{self, EventSummary, Filter, ReplayError},
        pipeline::{Outcome, Pipeline, ProcessError},
    },
};

/// The signed-in user of a request (from the session layer's extension), if an operator.
/// A database that cannot say is a "no": the page stays hidden.
pub async fn admin_of(state: &AppState, extensions: &Extensions) -> Option<CurrentUser> {
    let user = extensions.get::<SignedIn>().map(|s| s.user.clone())?;
    match operators::is_operator(&state.db, user.id).await {
        Ok(true) => Some(user),
        Ok(false) => None,
        Err(e) => {
            tracing::error!(error = %e, user = user.id, "could not tell whether a user is an operator");
            None
        }
    }
}

/// The operator making the request being rendered; anyone else is [`AppError::NotFound`].
pub async fn require_admin(state: &AppState) -> Result<CurrentUser, AppError> {
    let not_found = || AppError::NotFound("There is nothing at this address.".into());
    let user = crate::web::signed_in()
        .map(|s| s.user)
        .ok_or_else(not_found)?;
    if operators::is_operator(&state.db, user.id).await? {
        Ok(user)
    } else {
        Err(not_found())
    }
}

/// What `/admin/billing` shows, for the operator of the request being rendered; the view is
/// written down with who looked.
pub async fn inbox_for_request(filter: InboxFilter) -> Result<EventInbox, AppError> {
    let state = crate::web::app_state()?;
    let admin = require_admin(&state).await?;
    let target = std::iter::once(ADMIN_BILLING.to_owned())
        .chain(filter.fields().into_iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ");
    operators::record(&state.db, &admin, "view", &target).await?;
    load_inbox(&state, &admin, &filter).await
}

/// The page's data for `admin`: events matching `filter`, drift, the reconciler's last cycle.
pub async fn load_inbox(
    state: &AppState,
    admin: &CurrentUser,
    filter: &InboxFilter,
) -> Result<EventInbox, AppError> {
    let db = &state.db;
    let (events, filter_error) = match parse_filter(filter, now()) {
        Ok(filter) => (events_with_payloads(state, &filter).await?, None),
        Err(problem) => (Vec::new(), Some(problem)),
    };
    let drift = reconcile::drift::list(db, None, DRIFT_LIMIT)
        .await?
        .into_iter()
        .map(drift_row)
        .collect();
    let attention = history::attention(db).await?;
    Ok(EventInbox {
        set_aside: attention.set_aside,
        refused_by_stripe: attention.refused_by_stripe,
        payload_retention_days: state.config.webhook_payload_retention.as_secs() / 86_400,
        email: admin.email.clone(),
        events,
        filter_error,
        event_types: history::event_types(db).await?,
        drift,
        alerts: alerts(db).await?,
        mail: crate::mail::outbox::newest(db, None, MAIL_LIMIT)
            .await?
            .into_iter()
            .map(mail_row)
            .collect(),
        stripe_updates: crate::billing::stripe_outbox::newest(db, MAIL_LIMIT)
            .await?
            .into_iter()
            .map(stripe_update_row)
            .collect(),
        last_run: reconcile::last_run(db).await?.map(run_row),
        last_success: reconcile::last_success(db).await?.map(rfc3339),
    })
}

/// How many of the outbox's newest mails the page lists.
const MAIL_LIMIT: u64 = 20;

fn mail_row(m: crate::db::entities::mail_outbox::Model) -> MailRow {
    let waiting = m.status == crate::mail::outbox::QUEUED && m.attempts > 0;
    MailRow {
        created_at: rfc3339(m.created_at),
        kind: m.kind,
        to: m.to_address,
        status: m.status,
        attempts: m.attempts,
        sent_at: m.sent_at.map(rfc3339),
        next_attempt_at: waiting.then(|| rfc3339(m.next_attempt_at)),
        last_error: m.last_error,
    }
}

fn stripe_update_row(r: crate::db::entities::stripe_outbox::Model) -> StripeUpdateRow {
    let waiting = r.status == crate::billing::stripe_outbox::QUEUED && r.attempts > 0;
    StripeUpdateRow {
        updated_at: rfc3339(r.updated_at),
        kind: r.kind,
        customer_id: r.customer_id,
        status: r.status,
        attempts: r.attempts,
        generation: r.generation,
        next_attempt_at: waiting.then(|| rfc3339(r.next_attempt_at)),
        last_error: r.last_error,
    }
}

/// The page's filters as the event listing takes them, or what is wrong with them.
fn parse_filter(filter: &InboxFilter, now: i64) -> Result<Filter, String> {
    let outcome = filter
        .outcome
        .as_deref()
        .map(str::parse::<Outcome>)
        .transpose()?;
    let since = filter
        .since
        .as_deref()
        .map(|raw| history::parse_since(raw, now))
        .transpose()
        .map_err(|e| format!("Received since: {e}"))?;
    Ok(Filter {
        outcome,
        event_type: filter.event_type.clone(),
        since,
        limit: Some(EVENT_LIMIT),
    })
}

async fn events_with_payloads(
    state: &AppState,
    filter: &Filter,
) -> Result<Vec<EventRow>, AppError> {
    let events = history::list(&state.db, filter).await?;
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let mut payloads = history::payloads(&state.db, &ids).await?;
    Ok(events
        .into_iter()
        .map(|e| {
            let payload = payloads
                .remove(&e.id)
                .map(|p| pretty(&p))
                .unwrap_or_default();
            event_row(e, payload)
        })
        .collect())
}

/// A JSON body indented for reading; anything else as it is.
fn pretty(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| raw.to_owned())
}

fn event_row(e: EventSummary, payload: String) -> EventRow {
    EventRow {
        created: rfc3339(e.created),
        received_at: rfc3339(e.received_at),
        processed_at: e.processed_at.map(rfc3339),
        outcome: e.outcome.to_string(),
        refetched: e.applied_from_api,
        stripe_refused: e.stripe_refused,
        payload_removed: e.payload_removed_at.is_some(),
        id: e.id,
        event_type: e.event_type,
        livemode: e.livemode,
        attempts: e.attempts,
        api_version: e.api_version,
        error: e.error,
        payload,
    }
}

/// The newest billing alerts.
async fn alerts(db: &sea_orm::DatabaseConnection) -> Result<Vec<AlertRow>, sea_orm::DbErr> {
    use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
    Ok(billing_alert::Entity::find()
        .order_by_desc(billing_alert::Column::RaisedAt)
        .order_by_desc(billing_alert::Column::Id)
        .limit(ALERT_LIMIT)
        .all(db)
        .await?
        .into_iter()
        .map(alert_row)
        .collect())
}

fn alert_row(a: billing_alert::Model) -> AlertRow {
    let title = match a.kind.as_str() {
        SECOND_LIVE_SUBSCRIPTION => "A second live subscription",
        CUSTOMER_NOT_IN_ACCOUNT => "A customer this Stripe account does not have",
        other => other,
    };
    AlertRow {
        raised_at: rfc3339(a.raised_at),
        title: title.to_owned(),
        customer_id: a.customer_id,
        object_id: a.object_id,
        detail: a.detail,
    }
}

fn drift_row(r: drift_record::Model) -> DriftRow {
    DriftRow {
        detected_at: rfc3339(r.detected_at),
        customer_id: r.customer_id,
        object_type: r.object_type,
        object_id: r.object_id,
        field: r.field,
        event_type: r.event_type,
        database_value: r.database_value,
        stripe_value: r.stripe_value,
    }
}

fn run_row(r: reconcile_run::Model) -> RunRow {
    RunRow {
        runner: r.runner,
        started_at: rfc3339(r.started_at_ms.div_euclid(1000)),
        finished_at: rfc3339(r.finished_at_ms.div_euclid(1000)),
        took_ms: r.finished_at_ms - r.started_at_ms,
        succeeded: r.succeeded,
        events_processed: r.events_processed,
        customers_compared: r.customers_compared,
        drift: r.drift,
        error: r.error,
    }
}

/// How the app renders its not-found page for a request: handed over by the composition
/// root, so this feature needs nothing of the app's shell.
pub type NotFoundPage =
    fn(AppState, Request<Body>) -> Pin<Box<dyn Future<Output = Response> + Send>>;

/// What the operators' guard needs: the state, and the page everyone else gets.
#[derive(Clone)]
pub struct Guard {
    state: AppState,
    not_found: NotFoundPage,
}

/// The operators' routes: their pages (from the app's route list) and the replay action, all
/// behind [`admin_only`], which shows anyone else `not_found`. Mounted with the other browser
/// routes, under the session and the cross-origin guard.
pub fn routes(
    pages: Router<AppState>,
    state: &AppState,
    not_found: NotFoundPage,
) -> Router<AppState> {
    let guard = Guard {
        state: state.clone(),
        not_found,
    };
    pages
        .route(REPLAY_PATH, post(replay_event))
        .route_layer(from_fn_with_state(guard, admin_only))
}

/// Route layer: an operator goes on (the not-found page travels with the request, for the
/// replay's own check); anyone else gets the not-found page.
pub async fn admin_only(
    State(guard): State<Guard>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    if admin_of(&guard.state, req.extensions()).await.is_some() {
        req.extensions_mut().insert(guard.not_found);
        next.run(req).await
    } else {
        (guard.not_found)(guard.state, req).await
    }
}

/// A replay form's fields: the event, and the page's filters to come back to.
#[derive(Debug, Default, Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    pub event_id: String,
    pub outcome: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub since: Option<String>,
}

/// `POST /admin/billing/replay`: re-applies one recorded event through the pipeline (the
/// ordering rules still decide what it changes), then sends the browser back to the page
/// (303) with the result and the filters it came from. Operators only, checked here again.
pub async fn replay_event(State(state): State<AppState>, req: Request<Body>) -> Response {
    let Some(operator) = admin_of(&state, req.extensions()).await else {
        return match req.extensions().get::<NotFoundPage>().copied() {
            Some(not_found) => not_found(state, req).await,
            None => axum::http::StatusCode::NOT_FOUND.into_response(),
        };
    };
    let form = match Form::<ReplayForm>::from_request(req, &state).await {
        Ok(Form(form)) => form,
        Err(rejection) => return rejection.into_response(),
    };
    let event_id = form.event_id.trim();
    if let Err(e) = operators::record(&state.db, &operator, "replay", event_id).await {
        tracing::error!(error = %e, "could not write down an operator's replay; not replaying");
        return AppError::Unavailable("The service is temporarily unavailable.".into())
            .into_response();
    }
    let pipeline = Pipeline {
        db: &state.db,
        stripe: &state.stripe,
        livemode: state.config.stripe.mode.livemode(),
    };
    let result = match history::replay(pipeline, event_id).await {
        // Stripe refused again (the key still lacks the permission): recorded on the event.
        Ok(done) if done.outcome == Outcome::Failed => {
            tracing::warn!(
                event_id,
                operator = operator.id,
                "a replayed event was refused by Stripe again"
            );
            ReplayResult::Failed
        }
        Ok(done) => {
            tracing::info!(event_id, operator = operator.id, outcome = %done.outcome, "an operator replayed an event");
            ReplayResult::Processed(done.outcome.to_string())
        }
        Err(ReplayError::NotFound(_)) => ReplayResult::NotFound,
        Err(ReplayError::Process(ProcessError::Failed { error, .. })) => {
            tracing::warn!(event_id, operator = operator.id, %error, "a replayed event failed again");
            ReplayResult::Failed
        }
        Err(e) => {
            tracing::error!(event_id, operator = operator.id, error = %e, "could not replay an event");
            ReplayResult::Error
        }
    };
    let filter = InboxFilter::from_fields(|name| match name {
        "outcome" => form.outcome.clone(),
        "type" => form.event_type.clone(),
        "since" => form.since.clone(),
        _ => None,
    });
    Redirect::to(&back_to_page(&filter, event_id, &result)).into_response()
}

/// The page with `filter` and the flash of a replay: always this site's own page.
fn back_to_page(filter: &InboxFilter, event_id: &str, result: &ReplayResult) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in filter.fields() {
        query.append_pair(name, &value);
    }
    query.append_pair("replayed", event_id);
    query.append_pair("result", result.as_str());
    format!("{ADMIN_BILLING}?{}", query.finish())
}

#[cfg(test)]
mod tests {
    use sea_orm::Iterable;

    use super::*;

    #[test]
    fn the_filter_lists_every_outcome_there_is() {
        let names: Vec<String> = Outcome::iter().map(|o| o.to_string()).collect();
        assert_eq!(names, super::super::OUTCOMES);
    }

    #[test]
    fn filters_are_parsed_or_explained() {
        let now = 1_800_000_000;
        let filter = |outcome: Option<&str>, since: Option<&str>| InboxFilter {
            outcome: outcome.map(str::to_owned),
            event_type: Some("invoice.paid".into()),
            since: since.map(str::to_owned),
        };
        let parsed = parse_filter(&filter(Some("failed"), Some("2h")), now).expect("valid");
        assert_eq!(parsed.outcome, Some(Outcome::Failed));
        assert_eq!(parsed.event_type.as_deref(), Some("invoice.paid"));
        assert_eq!(parsed.since, Some(now - 7_200));
        assert_eq!(parsed.limit, Some(EVENT_LIMIT));
        let err = parse_filter(&filter(Some("lost"), None), now).expect_err("no such outcome");
        assert!(err.contains("lost"), "{err}");
        let err = parse_filter(&filter(None, Some("yesterday")), now).expect_err("no such time");
        assert!(err.starts_with("Received since:"), "{err}");
    }

    #[test]
    fn a_replay_goes_back_to_the_same_filters_on_this_site() {
        let filter = InboxFilter {
            outcome: Some("failed".into()),
            event_type: None,
            since: Some("2026-01-01T00:00:00+01:00".into()),
        };
        let to = back_to_page(
            &filter,
            "evt_1&x=//evil.example",
            &ReplayResult::Processed("applied".into()),
        );
        assert_eq!(
            to,
            "/admin/billing?outcome=failed&since=2026-01-01T00%3A00%3A00%2B01%3A00\
             &replayed=evt_1%26x%3D%2F%2Fevil.example&result=applied"
        );
    }

    #[test]
    fn payloads_are_indented_when_they_are_json() {
        assert_eq!(pretty(r#"{"id":"evt_1"}"#), "{\n  \"id\": \"evt_1\"\n}");
        assert_eq!(pretty("not json"), "not json");
    }
}
