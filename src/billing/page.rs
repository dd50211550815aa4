//! The billing settings page and its parts.

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_meta::Title;
use leptos_router::{components::Redirect, hooks::use_query_map};

use super::{
    access::Reason,
    api::{
        get_billing_summary, get_pro_report, get_projects, CreateBillingAccount, CreateProject,
        OpenBillingPortal, PortalFlow, StartCheckout,
    },
    model::SubscriptionStatus,
    summary::{
        describe_card, format_date, format_money, format_price, BillingSummary, Dunning, Included,
        PlanState, PlanView, Projects, Severity, SubscriptionView, EXPORT_FEATURE,
    },
};
use crate::{error::AppError, forms::refusal, layout::SettingsLayout, ui::form::ErrorLine};

const BUTTON: &str = "inline-flex items-center justify-center rounded-md px-4 py-2 text-sm font-medium shadow-sm disabled:cursor-wait disabled:opacity-60";
const PRIMARY: &str = "bg-indigo-600 text-white hover:bg-indigo-500";
const SECONDARY: &str = "border border-slate-300 bg-white text-slate-700 hover:bg-slate-50";
const DANGER: &str = "border border-red-200 bg-white text-red-700 hover:bg-red-50";
const ERROR_LINE: &str = "mt-2 text-sm text-red-700";
const CARD: &str = "rounded-xl border border-slate-200 bg-white p-6 shadow-sm";

/// Loads the summary (re-synced first after Checkout or the Portal) and hands it to `render`,
/// inside the settings layout; sends a signed-out visitor to log in.
#[component]
pub fn WithBillingSummary(
    title: &'static str,
    here: &'static str,
    render: fn(BillingSummary) -> AnyView,
) -> impl IntoView {
    let query = use_query_map();
    let from = move || query.read().get("from");
    let summary = AsyncDerived::new(move || get_billing_summary(from()));
    view! {
        <Title text=title/>
        <Suspense fallback=|| view! { <p class="p-8 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match summary.await {
                    Ok(s) => {
                        let email = s.email.clone();
                        let email_verified = s.email_verified;
                        // The billing buttons are for those who may use them (the server
                        // refuses everyone else whatever the page shows).
                        provide_context(ManagesBilling(s.org.role.manages_billing()));
                        let org = s.org.name.clone();
                        let choices = s.org_choices.clone();
                        view! { <SettingsLayout email email_verified org choices>{render(s)}</SettingsLayout> }.into_any()
                    }
                    Err(AppError::Unauthorized) => {
                        let path = format!("/login?next={}", here.replace('/', "%2F"));
                        view! { <Redirect path/> }.into_any()
                    }
                    Err(e) => view! {
                        <div role="alert" class="m-8 rounded-md border border-red-200 bg-red-50 p-4 text-red-800">
                            {e.to_string()}
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Whether the signed-in user manages the current organisation's billing: the billing buttons
/// render only then.
#[derive(Clone, Copy)]
struct ManagesBilling(bool);

fn manages_billing() -> bool {
    use_context::<ManagesBilling>().is_some_and(|m| m.0)
}

/// `/settings/billing`.
#[component]
pub fn BillingPage() -> impl IntoView {
    view! {
        <WithBillingSummary title="Billing · Billfold" here="/settings/billing" render=render_billing/>
    }
}

fn render_billing(s: BillingSummary) -> AnyView {
    let state = s.plan_state();
    let primary = s.primary().cloned();
    let ended = state.offers_new_plan();
    let dunning = s.dunning();
    let manages = s.org.role.manages_billing();
    let member_notice = (!manages).then(|| {
        view! { <MemberNotice org=s.org.name.clone() contacts=s.billing_contacts.clone()/> }
    });
    let BillingSummary {
        has_customer,
        card,
        included,
        limit_names,
        invoices,
        plans,
        ..
    } = s;
    let has_card = card.is_some();
    // A trial or an active plan switches in one click, through Stripe's confirmation.
    let switchable = matches!(state, PlanState::Trial { .. } | PlanState::Active { .. });
    let current_price = primary.as_ref().and_then(|s| s.price_id.clone());
    view! {
        <div class="space-y-6">
            <div>
                <h1 class="text-2xl font-semibold">"Billing"</h1>
                <p class="mt-1 text-slate-600">"Your plan, payment method and invoices."</p>
            </div>
            {member_notice}
            {dunning.map(|dunning| view! { <DunningBanner dunning/> })}
            <section class=CARD aria-labelledby="plan-heading" data-testid="subscription-card">
                <h2 id="plan-heading" class="text-sm font-semibold uppercase tracking-wide text-slate-500">"Plan"</h2>
                {match primary {
                    Some(sub) if !matches!(state, PlanState::None) => {
                        view! {
                            <SubscriptionCard sub state=state.clone()/>
                            <HaveNow included=included.clone() limit_names=limit_names.clone()/>
                        }.into_any()
                    }
                    _ => view! {
                        <p class="mt-2 text-lg font-medium">"No active subscription"</p>
                        <p class="text-slate-600">
                            {if manages { "Choose a plan below to get started." } else { "Those who manage its billing can choose a plan." }}
                        </p>
                    }.into_any(),
                }}
            </section>
            {(ended && manages).then(|| view! { <PlanPicker plans=plans.clone()/> })}
            {(switchable && manages).then(|| view! { <SwitchPlans plans=plans.clone() current=current_price.clone()/> })}
            <section class=CARD aria-labelledby="card-heading">
                <div class="flex items-center justify-between gap-4">
                    <div>
                        <h2 id="card-heading" class="text-sm font-semibold uppercase tracking-wide text-slate-500">"Payment method"</h2>
                        <p class="mt-2" data-testid="card-on-file">
                            {card.as_ref().map(describe_card).unwrap_or_else(|| "No card on file".into())}
                        </p>
                    </div>
                    {(has_customer && (has_card || !ended)).then(|| view! {
                        <ManageBillingButton flow=PortalFlow::PaymentMethodUpdate label="Update payment method" style=SECONDARY/>
                    })}
                </div>
            </section>
            <InvoiceList invoices/>
            {(!has_customer && manages).then(|| view! { <NoBillingAccount/> })}
        </div>
    }
    .into_any()
}

fn badge(status: SubscriptionStatus) -> (&'static str, &'static str) {
    match status {
        SubscriptionStatus::Active => (
            "Active",
            "bg-emerald-50 text-emerald-700 ring-emerald-600/20",
        ),
        SubscriptionStatus::Trialing => ("Free Trial", "bg-sky-50 text-sky-700 ring-sky-600/20"),
        SubscriptionStatus::PastDue => ("Past due", "bg-amber-50 text-amber-800 ring-amber-600/20"),
        SubscriptionStatus::Unpaid => ("Unpaid", "bg-red-50 text-red-700 ring-red-600/20"),
        SubscriptionStatus::Incomplete => {
            ("Incomplete", "bg-amber-50 text-amber-800 ring-amber-600/20")
        }
        SubscriptionStatus::Paused => ("Paused", "bg-slate-100 text-slate-700 ring-slate-500/20"),
        SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired => {
            ("Ended", "bg-slate-100 text-slate-700 ring-slate-500/20")
        }
    }
}

/// The primary subscription: plan, status, price, and what happens next.
#[component]
fn SubscriptionCard(sub: SubscriptionView, state: PlanState) -> impl IntoView {
    let (label, tone) = badge(sub.subscription.status);
    let price = format_price(
        sub.unit_amount,
        sub.currency.as_deref(),
        sub.interval.as_deref(),
    );
    let next = match &state {
        // A switch Stripe has scheduled (a downgrade at the period's end) comes first.
        PlanState::Trial { .. } | PlanState::Active { .. } if sub.switches_to.is_some() => sub
            .switches_to
            .as_ref()
            .map(|(plan, at)| format!("Switches to {plan} on {}", format_date(*at))),
        PlanState::Trial { ends } => ends.map(|t| format!("Trial ends on {}", format_date(t))),
        PlanState::Active { renews } => renews.map(|t| format!("Renews on {}", format_date(t))),
        PlanState::Cancelling { ends } => Some(format!("Cancels on {}", format_date(*ends))),
        PlanState::PaymentFailed => Some("Payment failed: we could not charge your card.".into()),
        PlanState::RetriesStopped => {
            Some("Unpaid: the payment failed and Stripe has stopped retrying.".into())
        }
        PlanState::Ended { ended } => Some(match ended {
            Some(t) => format!("Your plan ended on {}", format_date(*t)),
            None => "Your plan has ended".into(),
        }),
        PlanState::None => None,
    };
    let live = matches!(
        state,
        PlanState::Trial { .. } | PlanState::Active { .. } | PlanState::PaymentFailed
    );
    let cancelling = matches!(state, PlanState::Cancelling { .. });
    view! {
        <div class="mt-2 flex flex-wrap items-start justify-between gap-4">
            <div>
                <p class="flex items-center gap-2 text-lg font-medium">
                    <span data-testid="plan-name">{sub.plan_name.clone().unwrap_or_else(|| "Subscription".into())}</span>
                    <span data-testid="status-badge" class=format!("rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset {tone}")>{label}</span>
                </p>
                <p class="text-slate-600">{price}</p>
                <p class="mt-2 font-medium" data-testid="plan-next">{next}</p>
            </div>
            <div class="flex flex-wrap gap-2">
                {cancelling.then(|| view! {
                    <ManageBillingButton label="Resume plan" style=PRIMARY/>
                })}
                <ManageBillingButton label="Manage Billing" style=if cancelling { SECONDARY } else { PRIMARY }/>
                {live.then(|| view! {
                    <ManageBillingButton flow=PortalFlow::SubscriptionUpdate label="Change plan" style=SECONDARY/>
                    <ManageBillingButton flow=PortalFlow::SubscriptionCancel label="Cancel plan" style=DANGER/>
                })}
            </div>
        </div>
    }
}

/// "Your last payment failed": how often Stripe tried, when it tries next, when access ends,
/// and the way to fix it; louder as the deadline nears. Once Stripe has stopped retrying, it
/// says so and points to a new plan.
#[component]
fn DunningBanner(dunning: Dunning) -> impl IntoView {
    let tone = match dunning.severity {
        Severity::Notice => "border-amber-300 bg-amber-50 text-amber-900",
        Severity::Warning => "border-orange-400 bg-orange-50 text-orange-900",
        Severity::Critical => "border-red-400 bg-red-50 text-red-900",
    };
    let severity = format!("{:?}", dunning.severity).to_lowercase();
    let tries = match dunning.attempts {
        0 => None,
        1 => Some("We tried to charge your card once.".to_owned()),
        n => Some(format!("We tried to charge your card {n} times.")),
    };
    let next = match (dunning.retries_stopped, dunning.next_retry) {
        (false, Some(at)) => format!("Next try: {}.", format_date(at)),
        _ => "No more automatic tries are scheduled.".to_owned(),
    };
    let deadline = if dunning.first_payment {
        "Your plan starts once the first payment goes through.".to_owned()
    } else if dunning.retries_stopped {
        "Stripe has stopped retrying, and your plan no longer gives access. Pay the open invoice, or choose a new plan below.".to_owned()
    } else {
        match dunning.access_ends {
            Some(end) => format!(
                "Your access ends on {} unless the payment goes through.",
                format_date(end)
            ),
            None => "Your access continues while we retry.".to_owned(),
        }
    };
    let title = if dunning.retries_stopped {
        "Your payment failed and retries have stopped"
    } else {
        "Your last payment failed"
    };
    view! {
        <div role="alert" data-testid="dunning-banner" data-severity=severity class=format!("rounded-xl border p-5 {tone}")>
            <p class="font-semibold">{title}</p>
            <p class="mt-1 text-sm" data-testid="dunning-attempts">{tries}" "{next}</p>
            <p class="mt-1 text-sm font-medium" data-testid="dunning-deadline">{deadline}</p>
            <p class="mt-1 text-sm">"Update your card so the payment can go through and your plan keeps running."</p>
            <div class="mt-3 flex flex-wrap items-center gap-3">
                <ManageBillingButton flow=PortalFlow::PaymentMethodUpdate label="Update payment method" style=PRIMARY/>
                {dunning.invoice_url.map(|url| view! {
                    <a href=url class="text-sm font-medium underline">"View the open invoice"</a>
                })}
            </div>
        </div>
    }
}

/// A button into the Customer Portal (or one of its flows). A plain form post without
/// JavaScript; in the browser, it says "Opening…" and stays disabled until the browser leaves.
#[component]
pub fn ManageBillingButton(
    label: &'static str,
    #[prop(optional)] flow: Option<PortalFlow>,
    #[prop(default = PRIMARY)] style: &'static str,
) -> impl IntoView {
    manages_billing().then(|| {
        view! {
            <PostButton
                action=OpenBillingPortal::PATH.to_owned()
                field=flow.map(|f| ("flow".to_owned(), f.as_str().to_owned()))
                label=label.to_owned()
                busy_label="Opening…".to_owned()
                form_class="inline-block".to_owned()
                class=format!("{BUTTON} {style}")
                error_class="mt-2 max-w-xs text-sm text-red-700".to_owned()
            />
        }
    })
}

/// For a member who does not manage the organisation's billing: who does.
#[component]
fn MemberNotice(org: String, contacts: Vec<String>) -> impl IntoView {
    let ask = if contacts.is_empty() {
        "Its owners".to_owned()
    } else {
        contacts.join(", ")
    };
    view! {
        <div role="status" data-testid="billing-member-notice" class="rounded-xl border border-slate-200 bg-slate-50 p-5 text-sm text-slate-700">
            <p class="font-medium">{format!("You are a member of {org}.")}</p>
            <p class="mt-1">{format!("{ask} manage its billing: ask them to change the plan, the card or the invoices' address.")}</p>
        </div>
    }
}

/// A button that posts one server function (with at most one hidden field): a plain form;
/// answered by the page's script, it says `busy_label` and stays disabled while the request
/// is out and while the browser leaves for the answer's URL, and shows a refusal under itself.
#[component]
fn PostButton(
    action: String,
    field: Option<(String, String)>,
    /// A choice posted with the form: the field's name and its options (value, label).
    #[prop(optional)]
    choice: Option<(String, Vec<(String, String)>)>,
    label: String,
    busy_label: String,
    form_class: String,
    class: String,
    error_class: String,
) -> impl IntoView {
    let error = refusal(&action);
    let aria_label = label.clone();
    view! {
        <form method="post" action=action class=form_class data-enhance="">
            {field.map(|(name, value)| view! { <input type="hidden" name=name value=value/> })}
            {choice.map(|(name, options)| view! {
                <select name=name aria-label="Billing interval" class="mb-2 block w-full rounded-md border border-slate-300 bg-white px-2 py-1.5 text-sm">
                    {options.into_iter().map(|(value, text)| view! { <option value=value>{text}</option> }).collect_view()}
                </select>
            })}
            <button type="submit" class=class aria-label=aria_label data-busy=busy_label>{label}</button>
            <ErrorLine error class=error_class/>
        </form>
    }
}

/// The plans a user can start, each through Stripe Checkout.
#[component]
fn PlanPicker(plans: Vec<PlanView>) -> impl IntoView {
    if plans.is_empty() {
        return view! {
            <section class=CARD>
                <h2 class="text-lg font-semibold">"Choose a plan"</h2>
                <p class="mt-2 text-slate-600">"No plans are available right now. Please check back soon."</p>
            </section>
        }
        .into_any();
    }
    view! {
        <section class=CARD aria-labelledby="plans-heading">
            <h2 id="plans-heading" class="text-lg font-semibold">"Choose a plan"</h2>
            <div class="mt-4 grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
                {group_plans(plans).into_iter().map(|plan| view! { <PlanOption plan/> }).collect_view()}
            </div>
        </section>
    }
    .into_any()
}

#[component]
fn PlanOption(plan: PlanGroup) -> impl IntoView {
    let trial = plan
        .prices
        .first()
        .and_then(|p| p.trial_period_days)
        .filter(|d| *d > 0)
        .map(|d| format!("{d}-day free trial"));
    let label = format!("Choose {}", plan.name);
    // One interval: its price as text; several: a choice between them, one card either way.
    let (price, field, choice) = match plan.prices.as_slice() {
        [only] => (
            Some(format_price(
                only.unit_amount,
                Some(&only.currency),
                only.interval.as_deref(),
            )),
            Some(("price_id".to_owned(), only.price_id.clone())),
            None,
        ),
        several => (
            None,
            None,
            Some((
                "price_id".to_owned(),
                several
                    .iter()
                    .map(|p| {
                        (
                            p.price_id.clone(),
                            format_price(p.unit_amount, Some(&p.currency), p.interval.as_deref()),
                        )
                    })
                    .collect::<Vec<_>>(),
            )),
        ),
    };
    view! {
        <div class="flex flex-col rounded-lg border border-slate-200 p-4" data-testid="plan-option">
            <p class="font-semibold">{plan.name.clone()}</p>
            <p class="text-slate-600">{price}</p>
            <p class="text-sm text-sky-700">{trial}</p>
            <PlanIncludes plan=plan.prices.first().cloned()/>
            // Starts Checkout for this price; "Opening…" until the browser leaves for Stripe.
            {match choice {
                Some(choice) => view! {
                    <PostButton
                        action=StartCheckout::PATH.to_owned()
                        field=None
                        choice
                        busy_label="Opening…".to_owned()
                        label
                        form_class="mt-3".to_owned()
                        class=format!("{BUTTON} {PRIMARY} w-full")
                        error_class=ERROR_LINE.to_owned()
                    />
                }.into_any(),
                None => view! {
                    <PostButton
                        action=StartCheckout::PATH.to_owned()
                        field
                        busy_label="Opening…".to_owned()
                        label
                        form_class="mt-3".to_owned()
                        class=format!("{BUTTON} {PRIMARY} w-full")
                        error_class=ERROR_LINE.to_owned()
                    />
                }.into_any(),
            }}
        </div>
    }
}

/// What a plan includes, as the catalogue says: its description, features and limits.
#[component]
fn PlanIncludes(plan: Option<PlanView>) -> impl IntoView {
    let plan = plan?;
    let limits = plan
        .limits
        .iter()
        .map(|(name, value)| describe_limit(name, Some(*value)));
    let lines: Vec<String> = plan.features.iter().cloned().chain(limits).collect();
    Some(view! {
        <div class="mt-1 text-sm text-slate-600" data-testid="plan-includes">
            {plan.description.map(|d| view! { <p>{d}</p> })}
            <ul class="mt-2 space-y-1">
                {lines.into_iter().map(|line| view! {
                    <li class="flex gap-2"><span aria-hidden="true" class="text-emerald-600">"✓"</span>{line}</li>
                }).collect_view()}
            </ul>
        </div>
    })
}

/// What the user has now, by the entitlement loader: the features Stripe lists while access
/// is granted, and each of the catalogue's limits (capped, or not).
#[component]
fn HaveNow(included: Included, limit_names: Vec<String>) -> impl IntoView {
    if !included.granted {
        return view! {
            <p class="mt-3 text-sm text-slate-600" data-testid="have-now-none">
                "Your plan includes no features while it gives no access."
            </p>
        }
        .into_any();
    }
    let limits: Vec<String> = limit_names
        .iter()
        .map(|name| describe_limit(name, included.limit(name)))
        .collect();
    view! {
        <div class="mt-3 text-sm text-slate-700" data-testid="have-now">
            <p class="font-medium">"You have now"</p>
            <ul class="mt-1 space-y-1">
                {included.features.into_iter().map(|f| view! {
                    <li class="flex gap-2" data-testid="have-feature" data-key=f.lookup_key>
                        <span aria-hidden="true" class="text-emerald-600">"✓"</span>{f.name}
                    </li>
                }).collect_view()}
                {limits.into_iter().map(|line| view! {
                    <li class="flex gap-2" data-testid="have-limit">
                        <span aria-hidden="true" class="text-emerald-600">"✓"</span>{line}
                    </li>
                }).collect_view()}
            </ul>
        </div>
    }
    .into_any()
}

/// "Up to 20 projects", "Unlimited projects", "No projects".
pub fn describe_limit(name: &str, limit: Option<u64>) -> String {
    let name = name.replace('_', " ");
    match limit {
        None => format!("Unlimited {name}"),
        Some(0) => format!("No {name}"),
        Some(n) => format!("Up to {n} {name}"),
    }
}

/// One plan of the picker, with the prices of its intervals (monthly, yearly…).
struct PlanGroup {
    name: String,
    prices: Vec<PlanView>,
}

/// The picker's prices as plans: one per product name, its intervals together, in the
/// picker's order.
fn group_plans(plans: Vec<PlanView>) -> Vec<PlanGroup> {
    let mut groups: Vec<PlanGroup> = Vec::new();
    for plan in plans {
        match groups.iter_mut().find(|g| g.name == plan.product_name) {
            Some(g) => g.prices.push(plan),
            None => groups.push(PlanGroup {
                name: plan.product_name.clone(),
                prices: vec![plan],
            }),
        }
    }
    for g in &mut groups {
        g.prices
            .sort_by_key(|p| (interval_rank(p.interval.as_deref()), p.unit_amount));
    }
    groups.sort_by_key(|g| g.prices.first().and_then(|p| p.unit_amount));
    groups
}

fn interval_rank(interval: Option<&str>) -> u8 {
    match interval {
        Some("day") => 0,
        Some("week") => 1,
        Some("month") => 2,
        Some("year") => 3,
        _ => 4,
    }
}

/// For a subscribed user: every other plan (and the other intervals of their own) with a
/// "Switch to <plan>" button straight into Stripe's confirmation of that switch, which shows
/// what it costs today and on the next invoice.
#[component]
fn SwitchPlans(plans: Vec<PlanView>, current: Option<String>) -> impl IntoView {
    let groups: Vec<PlanGroup> = group_plans(plans)
        .into_iter()
        .map(|mut g| {
            g.prices.retain(|p| Some(&p.price_id) != current.as_ref());
            g
        })
        .filter(|g| !g.prices.is_empty())
        .collect();
    if groups.is_empty() {
        return ().into_any();
    }
    view! {
        <section class=CARD aria-labelledby="switch-heading" data-testid="switch-plans">
            <h2 id="switch-heading" class="text-lg font-semibold">"Switch plan"</h2>
            <p class="mt-1 text-sm text-slate-600">"Stripe shows what you pay today and on your next invoice before anything changes."</p>
            <div class="mt-4 grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
                {groups.into_iter().map(|g| {
                    let options: Vec<(String, String)> = g
                        .prices
                        .iter()
                        .map(|p| (
                            p.price_id.clone(),
                            format_price(p.unit_amount, Some(&p.currency), p.interval.as_deref()),
                        ))
                        .collect();
                    let label = format!("Switch to {}", g.name);
                    view! {
                        <div class="flex flex-col rounded-lg border border-slate-200 p-4" data-testid="switch-option">
                            <p class="font-semibold">{g.name.clone()}</p>
                            <PlanIncludes plan=g.prices.first().cloned()/>
                            <PostButton
                                action=OpenBillingPortal::PATH.to_owned()
                                field=Some(("flow".to_owned(), PortalFlow::SubscriptionUpdateConfirm.as_str().to_owned()))
                                choice=("price_id".to_owned(), options)
                                busy_label="Opening…".to_owned()
                                label
                                form_class="mt-3".to_owned()
                                class=format!("{BUTTON} {SECONDARY} w-full")
                                error_class=ERROR_LINE.to_owned()
                            />
                        </div>
                    }
                }).collect_view()}
            </div>
        </section>
    }
    .into_any()
}

/// The last invoices, newest first.
#[component]
fn InvoiceList(invoices: Vec<super::summary::InvoiceView>) -> impl IntoView {
    view! {
        <section class=CARD aria-labelledby="invoices-heading">
            <h2 id="invoices-heading" class="text-sm font-semibold uppercase tracking-wide text-slate-500">"Invoices"</h2>
            {if invoices.is_empty() {
                view! { <p class="mt-2 text-slate-600">"No invoices yet."</p> }.into_any()
            } else {
                view! {
                    <table class="mt-3 w-full text-left text-sm">
                        <thead class="text-slate-500">
                            <tr><th class="py-1 font-medium">"Date"</th><th class="py-1 font-medium">"Amount"</th><th class="py-1 font-medium">"Status"</th><th class="py-1"></th></tr>
                        </thead>
                        <tbody>
                            {invoices.into_iter().map(|i| {
                                let amount = if i.status == "paid" { i.amount_paid } else { i.amount_due };
                                view! {
                                    <tr class="border-t border-slate-100" data-testid="invoice-row">
                                        <td class="py-2">{format_date(i.created)}</td>
                                        <td class="py-2">{format_money(amount, &i.currency)}</td>
                                        <td class="py-2 capitalize">{i.status.replace('_', " ")}</td>
                                        <td class="py-2 text-right">{i.hosted_invoice_url.map(|u| view! {
                                            <a href=u class="font-medium text-indigo-600 hover:underline">"View"</a>
                                        })}</td>
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

/// Shown when the user has no Stripe customer (sign-up could not reach Stripe).
#[component]
fn NoBillingAccount() -> impl IntoView {
    view! {
        <section class=CARD data-testid="no-billing-account">
            <h2 class="text-lg font-semibold">"No billing account yet"</h2>
            <p class="mt-1 text-slate-600">"It is created when you choose a plan, or right now:"</p>
            <PostButton
                action=CreateBillingAccount::PATH.to_owned()
                field=None
                label="Create billing account".to_owned()
                busy_label="Create billing account".to_owned()
                form_class="mt-3".to_owned()
                class=format!("{BUTTON} {SECONDARY}")
                error_class=ERROR_LINE.to_owned()
            />
        </section>
    }
}

/// `/app`: a paid feature, granted or denied by the access rules, with the reason.
#[component]
pub fn AppPage() -> impl IntoView {
    // Created with the page, beside the summary, so the server render waits for both.
    provide_context(ProReportResource(AsyncDerived::new(get_pro_report)));
    provide_context(ProjectsResource(AsyncDerived::new(get_projects)));
    view! { <WithBillingSummary title="Pro features · Billfold" here="/app" render=render_app/> }
}

/// The Pro report's resource, made by [`AppPage`] for [`ProReportSection`].
#[derive(Clone, Copy)]
struct ProReportResource(AsyncDerived<Result<super::summary::ProReport, AppError>>);

/// The projects' resource, made by [`AppPage`] for [`ProjectsSection`].
#[derive(Clone, Copy)]
struct ProjectsResource(AsyncDerived<Result<Projects, AppError>>);

fn render_app(s: BillingSummary) -> AnyView {
    let access = s.access();
    // The same deadline the billing page's banner tells.
    let dunning = s.dunning().map(|d| {
        let next = match (d.retries_stopped, d.next_retry) {
            (false, Some(at)) => format!("next try {}", format_date(at)),
            _ => "no more automatic tries".to_owned(),
        };
        let ends = match d.access_ends {
            Some(end) => format!("; access ends on {}", format_date(end)),
            None => String::new(),
        };
        format!("Payment failed ({next}{ends}). Update your card on the billing page.")
    });
    let until = access.until.map(|t| match access.reason {
        Reason::Active => format!("Renews on {}", format_date(t)),
        _ => format!("Access until {}", format_date(t)),
    });
    view! {
        <div class="space-y-4">
            <h1 class="text-2xl font-semibold">"Pro features"</h1>
            <section class=CARD data-testid="pro-access" data-granted=access.granted.to_string()>
                <p class="mt-1 text-slate-600" data-testid="access-reason">{access.reason.describe()}</p>
                <p class="text-sm text-slate-500">{until}</p>
                {dunning.map(|text| view! {
                    <p class="mt-2 text-sm font-medium text-red-700" data-testid="app-dunning">{text}</p>
                })}
            </section>
            <ProReportSection/>
            <ExportSection included=s.included.clone()/>
            <ProjectsSection/>
        </div>
    }
    .into_any()
}

/// A feature by entitlement: the export link when the plan includes `export`, else what
/// includes it. The link's route checks again on the server ([`super::guard::Entitled`]):
/// what this card shows decides nothing.
#[component]
fn ExportSection(included: Included) -> impl IntoView {
    let has = included.has(EXPORT_FEATURE);
    let locked = if included.granted {
        included
            .locked
            .get(EXPORT_FEATURE)
            .cloned()
            .unwrap_or_default()
    } else {
        "Export to CSV needs an active plan that includes it.".to_owned()
    };
    view! {
        <section class=CARD data-testid="export" data-included=has.to_string()>
            <h2 class="text-lg font-semibold">"Export to CSV"</h2>
            {if has {
                view! {
                    <p class="mt-1 text-slate-600">"Your paid invoices, as a spreadsheet."</p>
                    <a href="/app/export.csv" class=format!("{BUTTON} {SECONDARY} mt-3") download="invoices.csv">"Download invoices.csv"</a>
                }.into_any()
            } else {
                view! {
                    <p class="mt-1 text-slate-600" data-testid="export-locked">{locked}</p>
                    <a href="/settings/billing" class="mt-3 inline-block font-medium text-indigo-600">"See plans"</a>
                }.into_any()
            }}
        </section>
    }
}

/// A limit: the projects the plan allows, the list, and a form that the server refuses once
/// the limit is reached (with the plans that allow more).
#[component]
fn ProjectsSection() -> impl IntoView {
    let ProjectsResource(projects) = expect_context::<ProjectsResource>();
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match projects.await {
                    Ok(p) => {
                        let used = match p.limit {
                            Some(cap) => format!("{} of {cap} used", p.names.len()),
                            None => format!("{} used, no limit", p.names.len()),
                        };
                        let at_limit = p.at_limit();
                        view! {
                            <section class=CARD data-testid="projects" data-limit=p.limit.map(|l| l.to_string()).unwrap_or_else(|| "none".into())>
                                <div class="flex items-baseline justify-between">
                                    <h2 class="text-lg font-semibold">"Projects"</h2>
                                    <p class="text-sm text-slate-500" data-testid="projects-used">{used}</p>
                                </div>
                                <ul class="mt-2 space-y-1">
                                    {p.names.into_iter().map(|name| view! { <li class="text-slate-700" data-testid="project">{name}</li> }).collect_view()}
                                </ul>
                                {at_limit.then(|| view! {
                                    <p class="mt-2 text-sm text-amber-800" data-testid="projects-at-limit">{p.refusal.clone()}</p>
                                })}
                                <NewProjectForm/>
                            </section>
                        }
                        .into_any()
                    }
                    Err(e) => view! { <p role="alert" class=ERROR_LINE>{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The new-project form: a plain HTML form; the page's script shows the server's refusal in
/// place.
#[component]
fn NewProjectForm() -> impl IntoView {
    view! {
        <form method="post" action=CreateProject::PATH class="mt-3 flex flex-wrap items-start gap-2" data-enhance="">
            <label class="sr-only" for="project-name">"Project name"</label>
            <input id="project-name" name="name" type="text" required=true maxlength="80" placeholder="New project name"
                class="min-w-0 flex-1 rounded-md border border-slate-300 px-3 py-2 text-sm"/>
            <button type="submit" class=format!("{BUTTON} {PRIMARY}") data-busy="Adding…">"Add project"</button>
            <ErrorLine
                error=refusal(CreateProject::PATH)
                class="w-full text-sm text-red-700"
                testid="project-error"
            />
        </form>
    }
}

/// The Pro feature itself, fetched through the server's access guard: what is shown is what
/// the server let through, not what the page decided.
#[component]
fn ProReportSection() -> impl IntoView {
    let ProReportResource(report) = expect_context::<ProReportResource>();
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match report.await {
                    Ok(r) => view! {
                        <section class=CARD data-testid="pro-report">
                            <p class="text-lg font-medium text-emerald-700">"Pro reports: unlocked"</p>
                            <p class="mt-1 text-slate-700" data-testid="pro-report-total">
                                {match &r.currency {
                                    Some(c) => format!(
                                        "{} paid invoice(s), {} in all.",
                                        r.invoices_paid,
                                        format_money(r.amount_paid, c)
                                    ),
                                    None => "No paid invoices yet.".to_owned(),
                                }}
                            </p>
                        </section>
                    }
                    .into_any(),
                    Err(e) => view! {
                        <section class=CARD data-testid="pro-locked">
                            <p class="text-lg font-medium text-slate-700">"Pro reports: locked"</p>
                            <p class="mt-1 text-slate-600" data-testid="pro-refusal">{e.to_string()}</p>
                            <a href="/settings/billing" class="mt-3 inline-block font-medium text-indigo-600">"See plans"</a>
                        </section>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}
