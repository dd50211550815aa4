//! The `/admin/billing` page: rendered on the server only, with no island. The filters are
//! a GET form, each replay a plain form post.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::{
    AlertRow, DriftRow, EventInbox, EventRow, InboxFilter, MailRow, ReplayFlash, RunRow,
    StripeUpdateRow, ADMIN_BILLING, DRIFT_LIMIT, EVENT_LIMIT, OUTCOMES, REPLAY_PATH,
};
use crate::{
    auth::LogoutButton,
    error::AppError,
    ui::{Brand, NotFound},
};

const CARD: &str = "rounded-xl border border-slate-200 bg-white p-6 shadow-sm";
const HEADING: &str = "text-sm font-semibold uppercase tracking-wide text-slate-500";
const LABEL: &str = "block text-xs font-medium uppercase tracking-wide text-slate-500";
const INPUT: &str = "mt-1 block h-9 w-full rounded-md border border-slate-300 bg-white px-3 py-1.5 text-sm text-slate-900 shadow-sm focus:border-indigo-500 focus:outline-none focus:ring-1 focus:ring-indigo-500";
const BUTTON: &str =
    "inline-flex h-9 items-center justify-center rounded-md px-3 text-sm font-medium shadow-sm";
const PRIMARY: &str = "bg-indigo-600 text-white hover:bg-indigo-500";
const SECONDARY: &str = "border border-slate-300 bg-white text-slate-700 hover:bg-slate-50";
const BADGE: &str = "rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset";

/// `/admin/billing`. The server guards the route; the data is loaded for an operator only,
/// and anyone else gets the not-found page here too.
#[component]
pub fn AdminBillingPage() -> impl IntoView {
    let query = use_query_map();
    let filter = move || InboxFilter::from_fields(|name| query.read().get(name));
    let flash = move || ReplayFlash::from_fields(|name| query.read().get(name));
    let inbox = AsyncDerived::new(move || load_inbox(filter()));
    view! {
        <Suspense fallback=|| view! { <p class="p-8 text-slate-500">"Loading…"</p> }>
            {move || {
                let filter = filter();
                let flash = flash();
                Suspend::new(async move {
                    match inbox.await {
                        Ok(inbox) => {
                            let email = inbox.email.clone();
                            view! {
                                <Title text="Billing operations · Billfold"/>
                                <AdminLayout email>
                                    <Inbox inbox filter flash/>
                                </AdminLayout>
                            }
                            .into_any()
                        }
                        Err(AppError::NotFound(_)) => view! { <NotFound/> }.into_any(),
                        Err(e) => view! {
                            <div role="alert" class="m-8 rounded-md border border-red-200 bg-red-50 p-4 text-red-800">
                                {e.to_string()}
                            </div>
                        }
                        .into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

/// The page's data, read on the server while it renders. Deliberately no server function:
/// the inbox never leaves the server as JSON, and there is no endpoint to find it by.
fn load_inbox(
    filter: InboxFilter,
) -> impl std::future::Future<Output = Result<EventInbox, AppError>> + Send + 'static {
    #[cfg(feature = "ssr")]
    {
        super::ssr::inbox_for_request(filter)
    }
    // The page is never rendered in the browser (only islands are).
    #[cfg(not(feature = "ssr"))]
    {
        let _ = filter;
        std::future::ready(Err(AppError::NotFound(String::new())))
    }
}

/// Header (the operator, log-out) around the operators' pages.
#[component]
fn AdminLayout(email: String, children: Children) -> impl IntoView {
    view! {
        <header class="border-b border-slate-200 bg-white">
            <div class="mx-auto flex max-w-6xl items-center justify-between px-6 py-4">
                <div class="flex items-center gap-3">
                    <Brand/>
                    <span class=format!("{BADGE} bg-amber-50 text-amber-800 ring-amber-600/20")>"Operations"</span>
                </div>
                <div class="flex items-center gap-3">
                    <span class="text-sm text-slate-600" data-testid="user-email">{email}</span>
                    <LogoutButton/>
                </div>
            </div>
        </header>
        <div class="mx-auto max-w-6xl px-6 py-8">{children()}</div>
    }
}

#[component]
fn Inbox(inbox: EventInbox, filter: InboxFilter, flash: Option<ReplayFlash>) -> impl IntoView {
    let EventInbox {
        events,
        filter_error,
        event_types,
        drift,
        alerts,
        mail,
        stripe_updates,
        last_run,
        last_success,
        set_aside,
        refused_by_stripe,
        payload_retention_days,
        ..
    } = inbox;
    view! {
        <div class="space-y-6">
            <div>
                <h1 class="text-2xl font-semibold">"Billing operations"</h1>
                <p class="mt-1 text-slate-600">
                    "Stripe events as they were received and what became of them, the reconciler's last cycle, and the drift it healed."
                </p>
            </div>
            {flash.map(|flash| view! { <Flash flash/> })}
            <Attention set_aside refused_by_stripe/>
            <Alerts alerts/>
            <Outbox mail/>
            <StripeUpdates updates=stripe_updates/>
            <Reconciler last_run last_success/>
            <Events events filter filter_error event_types retention_days=payload_retention_days/>
            <Drift drift/>
        </div>
    }
}

/// Events an operator has to act on: those Stripe refused a request for (the key's
/// permissions), and those the reconciler set aside. Nothing when there are none.
#[component]
fn Attention(set_aside: u64, refused_by_stripe: u64) -> impl IntoView {
    let refused = (refused_by_stripe > 0).then(|| {
        let link = format!("{ADMIN_BILLING}?outcome=failed");
        view! {
            <p data-testid="attention-refused">
                {format!("{refused_by_stripe} event(s) failed because Stripe refused a request they need (the API key lacks a permission). Fix the key's permissions, then replay them: ")}
                <a class="font-medium underline" href=link>"failed events"</a>
                " (or `billfold webhooks replay --outcome failed`)."
            </p>
        }
    });
    let aside = (set_aside > 0).then(|| {
        let link = format!("{ADMIN_BILLING}?outcome=set_aside");
        view! {
            <p data-testid="attention-set-aside">
                {format!("{set_aside} event(s) set aside by the reconciler after failing again and again; it no longer retries them. Fix the cause, then replay them: ")}
                <a class="font-medium underline" href=link>"set-aside events"</a>
                " (or `billfold webhooks replay --outcome set_aside`)."
            </p>
        }
    });
    (refused.is_some() || aside.is_some()).then(|| view! {
        <section role="alert" data-testid="attention" class="space-y-2 rounded-md border border-red-200 bg-red-50 px-4 py-3 text-sm text-red-800">
            {refused}
            {aside}
        </section>
    })
}

/// What only an operator can put right (a customer charged for two plans, a key of another
/// account), newest first; nothing when there is nothing.
#[component]
fn Alerts(alerts: Vec<AlertRow>) -> impl IntoView {
    (!alerts.is_empty()).then(|| {
        view! {
            <section class=CARD aria-labelledby="alerts-heading" data-testid="alerts">
                <h2 id="alerts-heading" class=HEADING>"Billing alerts"</h2>
                <ul class="mt-3 space-y-3">
                    {alerts.into_iter().map(|a| view! {
                        <li class="rounded-md border border-amber-200 bg-amber-50 px-4 py-3 text-sm" data-testid="alert-row">
                            <p class="font-medium text-amber-900">{a.title}</p>
                            <p class="mt-1 text-slate-700">{a.detail}</p>
                            <p class="mt-1 font-mono text-xs text-slate-500">
                                {format!("{} · {} · {}", a.raised_at, a.customer_id, a.object_id)}
                            </p>
                        </li>
                    }).collect_view()}
                </ul>
            </section>
        }
    })
}

/// The outbox: the newest mails, what became of each, and why one is waiting or failed.
#[component]
fn Outbox(mail: Vec<MailRow>) -> impl IntoView {
    view! {
        <section class=CARD aria-labelledby="mail-heading" data-testid="outbox">
            <h2 id="mail-heading" class=HEADING>"Mail"</h2>
            {if mail.is_empty() {
                view! { <p class="mt-2 text-sm text-slate-600">"No mail yet."</p> }.into_any()
            } else {
                view! {
                    <table class="mt-3 w-full text-left text-sm">
                        <thead class="text-slate-500">
                            <tr><th class="py-1 font-medium">"Queued"</th><th class="py-1 font-medium">"Message"</th><th class="py-1 font-medium">"To"</th><th class="py-1 font-medium">"Status"</th></tr>
                        </thead>
                        <tbody>
                            {mail.into_iter().map(|m| {
                                let status = match (&m.status[..], &m.sent_at, &m.next_attempt_at) {
                                    ("sent", Some(at), _) => format!("sent {at}"),
                                    ("queued", _, Some(next)) => format!("queued, try {} at {next}", m.attempts + 1),
                                    (status, _, _) => status.to_owned(),
                                };
                                view! {
                                    <tr class="border-t border-slate-100 align-top" data-testid="mail-row" data-status=m.status.clone()>
                                        <td class="py-2 font-mono text-xs">{m.created_at}</td>
                                        <td class="py-2">{m.kind.replace('_', " ")}</td>
                                        <td class="py-2">{m.to}</td>
                                        <td class="py-2">
                                            {status}
                                            {m.last_error.map(|e| view! { <p class="mt-1 text-xs text-red-700">{e}</p> })}
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

/// The changes owed to Stripe: what each changes, and whether Stripe has it yet.
#[component]
fn StripeUpdates(updates: Vec<StripeUpdateRow>) -> impl IntoView {
    view! {
        <section class=CARD aria-labelledby="stripe-updates-heading" data-testid="stripe-updates">
            <h2 id="stripe-updates-heading" class=HEADING>"Changes for Stripe"</h2>
            {if updates.is_empty() {
                view! { <p class="mt-2 text-sm text-slate-600">"Nothing owed to Stripe yet."</p> }.into_any()
            } else {
                view! {
                    <table class="mt-3 w-full text-left text-sm">
                        <thead class="text-slate-500">
                            <tr><th class="py-1 font-medium">"Changed"</th><th class="py-1 font-medium">"What"</th><th class="py-1 font-medium">"Customer"</th><th class="py-1 font-medium">"Status"</th></tr>
                        </thead>
                        <tbody>
                            {updates.into_iter().map(|u| {
                                let status = match (&u.status[..], &u.next_attempt_at) {
                                    ("queued", Some(next)) => format!("queued, try {} at {next}", u.attempts + 1),
                                    (status, _) => status.to_owned(),
                                };
                                view! {
                                    <tr class="border-t border-slate-100 align-top" data-testid="stripe-update-row" data-status=u.status.clone()>
                                        <td class="py-2 font-mono text-xs">{u.updated_at}</td>
                                        <td class="py-2">{u.kind.replace('_', " ")}</td>
                                        <td class="py-2 font-mono text-xs">{u.customer_id}</td>
                                        <td class="py-2">
                                            {status}
                                            {u.last_error.map(|e| view! { <p class="mt-1 text-xs text-red-700">{e}</p> })}
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

/// What the last replay came to.
#[component]
fn Flash(flash: ReplayFlash) -> impl IntoView {
    let tone = if flash.went_through() {
        "border-emerald-200 bg-emerald-50 text-emerald-900"
    } else {
        "border-red-200 bg-red-50 text-red-800"
    };
    view! {
        <div role="status" data-testid="replay-flash" class=format!("rounded-md border px-4 py-3 text-sm {tone}")>
            {flash.message()}
        </div>
    }
}

/// The reconciler's latest cycle, and its last one that got through everything.
#[component]
fn Reconciler(last_run: Option<RunRow>, last_success: Option<String>) -> impl IntoView {
    view! {
        <section class=CARD aria-labelledby="reconciler-heading" data-testid="reconciler">
            <div class="flex flex-wrap items-baseline justify-between gap-2">
                <h2 id="reconciler-heading" class=HEADING>"Reconciler"</h2>
                <p class="text-sm text-slate-600" data-testid="last-success">
                    "Last successful cycle: "
                    <span class="font-medium text-slate-900">{last_success.unwrap_or_else(|| "never".into())}</span>
                </p>
            </div>
            {match last_run {
                None => view! { <p class="mt-2 text-slate-600">"No cycle has run yet."</p> }.into_any(),
                Some(run) => view! { <LastRun run/> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn LastRun(run: RunRow) -> impl IntoView {
    let (label, tone) = if run.succeeded {
        (
            "Succeeded",
            "bg-emerald-50 text-emerald-700 ring-emerald-600/20",
        )
    } else {
        ("Did not finish", "bg-red-50 text-red-700 ring-red-600/20")
    };
    let item = |term: &'static str, value: String| {
        view! {
            <div>
                <dt class=LABEL>{term}</dt>
                <dd class="mt-0.5 text-slate-900">{value}</dd>
            </div>
        }
    };
    view! {
        <div class="mt-4" data-testid="last-run">
            <p class="flex items-center gap-2 text-sm text-slate-600">
                "Latest cycle"
                <span data-testid="run-result" class=format!("{BADGE} {tone}")>{label}</span>
            </p>
            <dl class="mt-3 grid grid-cols-2 gap-x-6 gap-y-3 text-sm sm:grid-cols-4">
                {item("Runner", run.runner)}
                {item("Started", run.started_at)}
                {item("Finished", format!("{} ({} ms)", run.finished_at, run.took_ms))}
                {item("Events processed", run.events_processed.to_string())}
                {item("Customers compared", run.customers_compared.to_string())}
                {item("Drift", format!("{} field(s)", run.drift))}
            </dl>
            {run.error.map(|e| view! { <p class="mt-3 text-sm text-red-700" data-testid="run-error">{e}</p> })}
        </div>
    }
}

/// The filters, and the events that match them.
#[component]
fn Events(
    events: Vec<EventRow>,
    filter: InboxFilter,
    filter_error: Option<String>,
    event_types: Vec<String>,
    retention_days: u64,
) -> impl IntoView {
    let count = match events.len() {
        0 => String::new(),
        n if n as u64 >= EVENT_LIMIT => format!("The latest {n}"),
        1 => "1 event".to_owned(),
        n => format!("{n} events"),
    };
    let filtered = !filter.fields().is_empty();
    view! {
        <section class=CARD aria-labelledby="events-heading">
            <div class="flex flex-wrap items-baseline justify-between gap-2">
                <h2 id="events-heading" class=HEADING>"Events received"</h2>
                <p class="text-sm text-slate-500" data-testid="event-count">{count}</p>
            </div>
            <FilterForm filter=filter.clone() event_types/>
            {filter_error.map(|e| view! {
                <p role="alert" class="mt-4 rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">{e}</p>
            })}
            {if events.is_empty() {
                let none = if filtered { "No event matches these filters." } else { "No events received yet." };
                view! { <p class="mt-4 text-slate-600" data-testid="no-events">{none}</p> }.into_any()
            } else {
                view! {
                    <ul class="mt-4 divide-y divide-slate-100 border-t border-slate-100">
                        {events.into_iter().map(|event| view! { <Event event filter=filter.clone() retention_days/> }).collect_view()}
                    </ul>
                }
                .into_any()
            }}
        </section>
    }
}

/// A GET form: the filters travel in the query string, so a filtered view can be linked.
#[component]
fn FilterForm(filter: InboxFilter, event_types: Vec<String>) -> impl IntoView {
    let chosen = filter.outcome.clone().unwrap_or_default();
    view! {
        <form method="get" action=ADMIN_BILLING role="search" aria-label="Filter events" class="mt-4 flex flex-wrap items-end gap-3">
            <label class="w-44">
                <span class=LABEL>"Outcome"</span>
                <select name="outcome" class=INPUT>
                    <option value="" selected=chosen.is_empty()>"Any"</option>
                    {OUTCOMES.iter().map(|o| view! {
                        <option value=*o selected={chosen == *o}>{*o}</option>
                    }).collect_view()}
                </select>
            </label>
            <label class="min-w-56 flex-1">
                <span class=LABEL>"Type"</span>
                <input type="text" name="type" list="event-types" placeholder="e.g. invoice.paid" value=filter.event_type.clone().unwrap_or_default() class=INPUT/>
                <datalist id="event-types">
                    {event_types.into_iter().map(|t| view! { <option value=t/> }).collect_view()}
                </datalist>
            </label>
            <label class="w-64">
                <span class=LABEL>"Received since"</span>
                <input type="text" name="since" placeholder="2h, 1d or 2026-01-01T00:00:00Z" value=filter.since.clone().unwrap_or_default() class=INPUT/>
            </label>
            <div class="flex gap-2">
                <button type="submit" class=format!("{BUTTON} {PRIMARY}")>"Filter"</button>
                <a href=ADMIN_BILLING class=format!("{BUTTON} {SECONDARY}")>"Clear"</a>
            </div>
        </form>
    }
}

fn outcome_tone(outcome: &str) -> &'static str {
    match outcome {
        "applied" => "bg-emerald-50 text-emerald-700 ring-emerald-600/20",
        "failed" | "set_aside" => "bg-red-50 text-red-700 ring-red-600/20",
        "stale" | "mode_mismatch" => "bg-amber-50 text-amber-800 ring-amber-600/20",
        _ => "bg-slate-100 text-slate-700 ring-slate-500/20",
    }
}

/// One event: what it is, what became of it, its payload, and a button to replay it.
#[component]
fn Event(event: EventRow, filter: InboxFilter, retention_days: u64) -> impl IntoView {
    let EventRow {
        id,
        event_type,
        livemode,
        created,
        received_at,
        processed_at,
        outcome,
        attempts,
        api_version,
        refetched,
        error,
        stripe_refused,
        payload_removed,
        payload,
    } = event;
    let tone = outcome_tone(&outcome);
    let replay_label = format!("Replay {id}");
    let (row_id, row_outcome, shown_id) = (id.clone(), outcome.clone(), id.clone());
    let fact = |term: &'static str, value: String| {
        view! {
            <div class="flex gap-1.5">
                <dt class="text-slate-500">{term}</dt>
                <dd class="text-slate-800">{value}</dd>
            </div>
        }
    };
    view! {
        <li class="py-4" data-testid="event-row" data-event-id=row_id data-outcome=row_outcome>
            <div class="flex flex-wrap items-start justify-between gap-4">
                <div class="min-w-0 flex-1">
                    <p class="flex flex-wrap items-center gap-2">
                        <span class="font-medium text-slate-900" data-testid="event-type">{event_type}</span>
                        <span class=format!("{BADGE} {tone}") data-testid="event-outcome">{outcome}</span>
                        {livemode.then(|| view! {
                            <span class=format!("{BADGE} bg-indigo-50 text-indigo-700 ring-indigo-600/20")>"live"</span>
                        })}
                        {stripe_refused.then(|| view! {
                            <span class=format!("{BADGE} bg-red-50 text-red-700 ring-red-600/20") data-testid="event-refused"
                                title="Stripe refused a request this event needs, in a way no retry changes: fix the API key's permissions, then replay.">
                                "refused by Stripe"
                            </span>
                        })}
                    </p>
                    <p class="mt-0.5 break-all font-mono text-xs text-slate-500" data-testid="event-id">{shown_id}</p>
                    <dl class="mt-2 flex flex-wrap gap-x-6 gap-y-1 text-sm">
                        {fact("Received", received_at)}
                        {fact("Created", created)}
                        {processed_at.map(|t| fact("Processed", t))}
                        {fact("Attempts", attempts.to_string())}
                        <div class="flex items-center gap-1.5" data-testid="event-api-version">
                            <dt class="text-slate-500">"API version"</dt>
                            <dd class="text-slate-800">{api_version.unwrap_or_else(|| "unknown".into())}</dd>
                            {refetched.then(|| view! {
                                <dd class=format!("{BADGE} bg-sky-50 text-sky-700 ring-sky-600/20")
                                    title="The payload was in another API version's shape: the API's copy of the object was applied.">
                                    "refetched"
                                </dd>
                            })}
                        </div>
                    </dl>
                    {error.map(|e| view! {
                        <p class="mt-2 break-words text-sm text-red-700" data-testid="event-error">{e}</p>
                    })}
                </div>
                <form method="post" action=REPLAY_PATH>
                    <input type="hidden" name="event_id" value=id/>
                    {filter.fields().into_iter().map(|(name, value)| view! {
                        <input type="hidden" name=name value=value/>
                    }).collect_view()}
                    <button type="submit" aria-label=replay_label class=format!("{BUTTON} {SECONDARY}")>"Replay"</button>
                </form>
            </div>
            {if payload_removed {
                view! {
                    <p class="mt-3 text-sm text-slate-500" data-testid="event-payload-removed">
                        {format!("Payload removed after {retention_days} days.")}
                    </p>
                }
                .into_any()
            } else {
                view! {
                    <details class="mt-3">
                        <summary class="cursor-pointer select-none text-sm font-medium text-indigo-600 hover:text-indigo-500">"Payload"</summary>
                        <pre class="mt-2 max-h-96 overflow-auto rounded-md bg-slate-900 p-4 text-xs leading-relaxed text-slate-100" data-testid="event-payload">{payload}</pre>
                    </details>
                }
                .into_any()
            }}
        </li>
    }
}

/// What the reconciler found different from Stripe, newest first.
#[component]
fn Drift(drift: Vec<DriftRow>) -> impl IntoView {
    let cell = "px-3 py-2 align-top";
    let shown = |v: Option<String>| v.unwrap_or_else(|| "(none)".into());
    view! {
        <section class=CARD aria-labelledby="drift-heading" data-testid="drift">
            <div class="flex flex-wrap items-baseline justify-between gap-2">
                <h2 id="drift-heading" class=HEADING>"Drift healed"</h2>
                <p class="text-sm text-slate-500">{format!("The latest {DRIFT_LIMIT} at most")}</p>
            </div>
            {if drift.is_empty() {
                view! { <p class="mt-2 text-slate-600" data-testid="no-drift">"No drift found."</p> }.into_any()
            } else {
                view! {
                    <div class="mt-3 overflow-x-auto">
                        <table class="w-full text-left text-sm">
                            <thead class="whitespace-nowrap text-xs uppercase tracking-wide text-slate-500">
                                <tr>
                                    <th class=cell>"Detected"</th>
                                    <th class=cell>"Object"</th>
                                    <th class=cell>"Field"</th>
                                    <th class=cell>"Database had"</th>
                                    <th class=cell>"Stripe has"</th>
                                    <th class=cell>"Missed event"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {drift.into_iter().map(|d| view! {
                                    <tr class="border-t border-slate-100" data-testid="drift-row">
                                        <td class=format!("{cell} whitespace-nowrap")>{d.detected_at}</td>
                                        <td class=cell>
                                            <span class="block">{d.object_type}</span>
                                            <span class="block font-mono text-xs text-slate-500">{d.object_id}</span>
                                            <span class="block font-mono text-xs text-slate-500">{d.customer_id}</span>
                                        </td>
                                        <td class=format!("{cell} font-mono text-xs")>{d.field}</td>
                                        <td class=format!("{cell} break-all text-red-700")>{shown(d.database_value)}</td>
                                        <td class=format!("{cell} break-all text-emerald-700")>{shown(d.stripe_value)}</td>
                                        <td class=format!("{cell} text-slate-600")>{d.event_type}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
                .into_any()
            }}
        </section>
    }
}
