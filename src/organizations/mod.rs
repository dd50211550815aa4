//! Organisations: who pays and who belongs. Every account has a personal organisation; a user
//! can create team organisations, invite people by mail, give them roles (owner, billing
//! admin, member), remove them, or leave. The current organisation is chosen on
//! `/settings/organization` and remembered; billing, access and limits answer for it.
//!
//! It sits above `auth` (the user, the current organisation) and beside `billing`, which
//! enforces who may pay ([`crate::domain::Role::manages_billing`]).

#[cfg(feature = "ssr")]
pub mod service;

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_meta::Title;
use leptos_router::{
    components::{Redirect, A},
    hooks::use_query_map,
};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{format_date, CurrentOrg, OrgChoice, Role},
    error::AppError,
    forms::refusal,
    layout::SettingsLayout,
    ui::form::{submit_class, AuthCard, ErrorLine, Field, FormError},
};

/// One member of the current organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
    /// The signed-in user.
    pub you: bool,
}

/// An invitation waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRow {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub expires_at: i64,
}

/// What `/settings/organization` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationView {
    pub email: String,
    pub email_verified: bool,
    pub current: CurrentOrg,
    /// Where its receipts and invoices go (`None`: a personal organisation's user's address).
    pub billing_email: Option<String>,
    pub choices: Vec<OrgChoice>,
    pub members: Vec<MemberRow>,
    /// Pending invitations (owners only).
    pub invitations: Vec<InvitationRow>,
    /// Seats, when the organisation's plan is priced per seat.
    pub seats: Option<SeatsView>,
}

/// A per-seat plan's seats: taken (by the policy's count), paid for (Stripe's quantity), and
/// the plan's most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatsView {
    pub used: u64,
    pub paid: Option<u64>,
    pub maximum: Option<u64>,
}

/// What an invitation link offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationPreview {
    pub organization: String,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
}

#[cfg(feature = "ssr")]
const HERE: &str = "/settings/organization";

#[server(name = GetOrganization, prefix = "/api", endpoint = "org")]
pub async fn get_organization() -> Result<OrganizationView, AppError> {
    let signed_in = crate::web::require_user()?;
    service::view(&crate::web::app_state()?, &signed_in).await
}

/// Creates a team organisation with the user as its owner, and switches to it.
#[server(name = CreateOrganization, prefix = "/api", endpoint = "org/create")]
pub async fn create_organization(#[server(default)] name: String) -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    service::create(&crate::web::app_state()?, &user, &name).await?;
    leptos_axum::redirect(HERE);
    Ok(())
}

/// Makes another organisation the user belongs to their current one.
#[server(name = SwitchOrganization, prefix = "/api", endpoint = "org/switch")]
pub async fn switch_organization(
    #[server(default)] organization_id: String,
    /// Where to go after (a page of this site; the organisation page when absent).
    next: Option<String>,
) -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    service::switch(&crate::web::app_state()?, &user, &organization_id).await?;
    let to = match next.as_deref() {
        Some(n) if !n.is_empty() => crate::auth::validate::safe_next(Some(n)),
        _ => HERE.to_owned(),
    };
    leptos_axum::redirect(&to);
    Ok(())
}

/// Invites an address to the current organisation (owners).
#[server(name = InviteMember, prefix = "/api", endpoint = "org/invite")]
pub async fn invite_member(
    #[server(default)] email: String,
    #[server(default)] role: String,
) -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    service::invite(&crate::web::app_state()?, &user, &email, &role).await?;
    leptos_axum::redirect("/settings/organization?invited=1");
    Ok(())
}

/// Withdraws a pending invitation (owners).
#[server(name = RevokeInvitation, prefix = "/api", endpoint = "org/invitation/revoke")]
pub async fn revoke_invitation(#[server(default)] invitation_id: String) -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    service::revoke(&crate::web::app_state()?, &user, &invitation_id).await?;
    leptos_axum::redirect(HERE);
    Ok(())
}

/// Gives a member another role (owners).
#[server(name = ChangeRole, prefix = "/api", endpoint = "org/role")]
pub async fn change_role(
    #[server(default)] user_id: String,
    #[server(default)] role: String,
) -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    service::change_role(&crate::web::app_state()?, &user, &user_id, &role).await?;
    leptos_axum::redirect(HERE);
    Ok(())
}

/// Removes a member (owners).
#[server(name = RemoveMember, prefix = "/api", endpoint = "org/remove")]
pub async fn remove_member(#[server(default)] user_id: String) -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    service::remove(&crate::web::app_state()?, &user, &user_id).await?;
    leptos_axum::redirect(HERE);
    Ok(())
}

/// Leaves the current organisation (back to the personal one).
#[server(name = LeaveOrganization, prefix = "/api", endpoint = "org/leave")]
pub async fn leave_organization() -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    service::leave(&crate::web::app_state()?, &user).await?;
    leptos_axum::redirect(HERE);
    Ok(())
}

/// What an invitation link offers (its page asks before showing the Accept button).
#[server(name = CheckInvitation, prefix = "/api", endpoint = "org/invitation")]
pub async fn check_invitation(
    #[server(default)] token: String,
) -> Result<InvitationPreview, AppError> {
    service::preview(&crate::web::app_state()?, &token).await
}

/// Accepts an invitation, signed in with the address it went to.
#[server(name = AcceptInvitation, prefix = "/api", endpoint = "org/invitation/accept")]
pub async fn accept_invitation(#[server(default)] token: String) -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    service::accept(&crate::web::app_state()?, &user, &token).await?;
    leptos_axum::redirect(HERE);
    Ok(())
}

const CARD: &str = "rounded-xl border border-slate-200 bg-white p-6 shadow-sm";
const SMALL_BUTTON: &str = "rounded-md border border-slate-300 bg-white px-3 py-1.5 text-sm font-medium text-slate-700 hover:bg-slate-50 disabled:opacity-60";

/// `/settings/organization`.
#[component]
pub fn OrganizationPage() -> impl IntoView {
    let view = AsyncDerived::new(get_organization);
    let invited = use_query_map().read_untracked().get("invited").is_some();
    view! {
        <Title text="Organisation · Billfold"/>
        <Suspense fallback=|| view! { <p class="p-8 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match view.await {
                    Ok(v) => {
                        let email = v.email.clone();
                        let email_verified = v.email_verified;
                        let org = v.current.name.clone();
                        let choices = v.choices.clone();
                        view! {
                            <SettingsLayout email email_verified org choices>
                                <Organization view=v invited/>
                            </SettingsLayout>
                        }.into_any()
                    }
                    Err(AppError::Unauthorized) => {
                        view! { <Redirect path="/login?next=%2Fsettings%2Forganization"/> }.into_any()
                    }
                    Err(e) => view! {
                        <div role="alert" class="m-8 rounded-md border border-red-200 bg-red-50 p-4 text-red-800">{e.to_string()}</div>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Organization(view: OrganizationView, invited: bool) -> impl IntoView {
    let OrganizationView {
        current,
        billing_email,
        choices,
        members,
        invitations,
        seats: seat_view,
        ..
    } = view;
    let owner = current.role.manages_members();
    let team = !current.personal;
    let seats = members.len();
    view! {
        <div class="space-y-6">
            <div>
                <h1 class="text-2xl font-semibold" data-testid="org-name">{current.name.clone()}</h1>
                <p class="mt-1 text-slate-600" data-testid="org-role">
                    {format!("Your role: {}.", current.role.label())}
                    {billing_email.map(|b| format!(" Receipts and invoices go to {b}."))}
                </p>
            </div>
            {invited.then(|| view! {
                <p role="status" data-testid="invitation-sent" class="rounded-md border border-emerald-200 bg-emerald-50 px-3 py-2 text-sm text-emerald-900">
                    "Invitation sent. It works once, for a week."
                </p>
            })}
            <section class=CARD aria-labelledby="members-heading">
                <h2 id="members-heading" class="text-lg font-semibold">"Members"</h2>
                <p class="text-sm text-slate-600" data-testid="seats-used">{format!("{seats} member{}", if seats == 1 { "" } else { "s" })}</p>
                {seat_view.map(|s| {
                    let paid = s.paid.map_or_else(|| "not known yet".to_owned(), |p| p.to_string());
                    let max = s.maximum.map(|m| format!(" (the plan allows up to {m})")).unwrap_or_default();
                    let short = s.paid.is_some_and(|p| p < s.used);
                    view! {
                        <p class="text-sm text-slate-600" data-testid="seats-paid">{format!("Seats: {} used, {paid} paid{max}.", s.used)}</p>
                        {short.then(|| view! {
                            <p role="alert" data-testid="seats-short" class="mt-2 rounded-md border border-amber-300 bg-amber-50 px-3 py-2 text-sm text-amber-900">
                                "Fewer seats are paid for than are used (the quantity was lowered in Stripe). Nobody loses access before the period ends; the next member change sets the quantity again."
                            </p>
                        })}
                    }
                })}
                <table class="mt-3 w-full text-left text-sm">
                    <thead class="text-slate-500"><tr><th class="py-1 font-medium">"Email"</th><th class="py-1 font-medium">"Role"</th><th></th></tr></thead>
                    <tbody>
                        {members.into_iter().map(|m| {
                            let id = m.user_id.to_string();
                            view! {
                                <tr class="border-t border-slate-100 align-top" data-testid="member-row">
                                    <td class="py-2">{m.email.clone()}{m.you.then_some(" (you)")}</td>
                                    <td class="py-2">
                                        {if owner && team {
                                            view! { <RoleForm user_id=id.clone() role=m.role/> }.into_any()
                                        } else {
                                            view! { <span>{m.role.label()}</span> }.into_any()
                                        }}
                                    </td>
                                    <td class="py-2 text-right">
                                        {(owner && team && !m.you).then(|| view! {
                                            <OneButton action=RemoveMember::PATH.to_owned() field=("user_id".to_owned(), id.clone()) label="Remove".to_owned()/>
                                        })}
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
            {(owner && team).then(|| view! {
                <section class=CARD aria-labelledby="invite-heading">
                    <h2 id="invite-heading" class="text-lg font-semibold">"Invite someone"</h2>
                    <div class="mt-3 max-w-sm"><InviteForm/></div>
                    {(!invitations.is_empty()).then(|| view! {
                        <h3 class="mt-6 font-medium">"Waiting for an answer"</h3>
                        <ul class="mt-2 space-y-2 text-sm">
                            {invitations.into_iter().map(|i| view! {
                                <li class="flex items-center justify-between gap-3" data-testid="pending-invitation">
                                    <span>{format!("{} as {}, until {}", i.email, i.role.label().to_lowercase(), format_date(i.expires_at))}</span>
                                    <OneButton action=RevokeInvitation::PATH.to_owned() field=("invitation_id".to_owned(), i.id.to_string()) label="Revoke".to_owned()/>
                                </li>
                            }).collect_view()}
                        </ul>
                    })}
                </section>
            })}
            <section class=CARD aria-labelledby="orgs-heading">
                <h2 id="orgs-heading" class="text-lg font-semibold">"Your organisations"</h2>
                <ul class="mt-3 space-y-2 text-sm">
                    {choices.into_iter().map(|c| {
                        let label = if c.personal { format!("{} (just you)", c.name) } else { c.name.clone() };
                        view! {
                            <li class="flex items-center justify-between gap-3" data-testid="org-choice">
                                <span>{label}" · "{c.role.label()}</span>
                                {if c.current {
                                    view! { <span class="text-xs font-medium text-indigo-700">"Current"</span> }.into_any()
                                } else {
                                    view! { <OneButton action=SwitchOrganization::PATH.to_owned() field=("organization_id".to_owned(), c.id.to_string()) label=format!("Switch to {}", c.name)/> }.into_any()
                                }}
                            </li>
                        }
                    }).collect_view()}
                </ul>
                <h3 class="mt-6 font-medium">"Create a team organisation"</h3>
                <p class="text-sm text-slate-600">"It has its own plan, card and invoices; you are its owner."</p>
                <div class="mt-3 max-w-sm"><CreateForm/></div>
                {team.then(|| view! {
                    <div class="mt-6">
                        <OneButton action=LeaveOrganization::PATH.to_owned() field=(String::new(), String::new()) label=format!("Leave {}", current.name)/>
                    </div>
                })}
            </section>
        </div>
    }
}

/// A one-button form (with one hidden field): a plain form; the page's script shows a
/// refusal under it.
#[component]
fn OneButton(action: String, field: (String, String), label: String) -> impl IntoView {
    let error = refusal(&action);
    let (name, value) = field;
    view! {
        <form method="post" action=action class="inline-block" data-enhance="">
            {(!name.is_empty()).then(|| view! { <input type="hidden" name=name value=value/> })}
            <button type="submit" class=SMALL_BUTTON>{label}</button>
            <ErrorLine error class="mt-1 max-w-xs text-sm text-red-700"/>
        </form>
    }
}

/// A member's role, changed by an owner.
#[component]
fn RoleForm(user_id: String, role: Role) -> impl IntoView {
    view! {
        <form method="post" action=ChangeRole::PATH class="flex items-center gap-2" data-enhance="">
            <input type="hidden" name="user_id" value=user_id/>
            <select name="role" aria-label="Role" class="rounded-md border border-slate-300 bg-white px-2 py-1 text-sm">
                {Role::ALL.into_iter().map(|r| view! { <option value=r.as_str() selected=r == role>{r.label()}</option> }).collect_view()}
            </select>
            <button type="submit" class=SMALL_BUTTON>"Save"</button>
            <ErrorLine error=refusal(ChangeRole::PATH) class="text-sm text-red-700"/>
        </form>
    }
}

#[component]
fn InviteForm() -> impl IntoView {
    let error = refusal(InviteMember::PATH);
    view! {
        <form method="post" action=InviteMember::PATH class="space-y-4" novalidate=true data-enhance="">
            <FormError error=error.clone()/>
            <Field name="email" label="Email to invite" kind="email" autocomplete="off" error/>
            <label class="block text-sm font-medium text-slate-700">
                "Role"
                <select name="role" class="mt-1 block w-full rounded-md border border-slate-300 bg-white px-2 py-2 text-sm">
                    {Role::ALL.into_iter().rev().map(|r| view! { <option value=r.as_str()>{r.label()}</option> }).collect_view()}
                </select>
            </label>
            <button type="submit" class=submit_class() data-busy="Sending…">"Send the invitation"</button>
        </form>
    }
}

#[component]
fn CreateForm() -> impl IntoView {
    let error = refusal(CreateOrganization::PATH);
    view! {
        <form method="post" action=CreateOrganization::PATH class="space-y-4" novalidate=true data-enhance="">
            <FormError error=error.clone()/>
            <Field name="name" label="Organisation name" kind="text" autocomplete="organization" error/>
            <button type="submit" class=submit_class() data-busy="Creating…">"Create organisation"</button>
        </form>
    }
}

/// `/accept-invitation?token=…`: what the invitation offers, and Accept (signed in with the
/// address it went to); signed out, the way to log in or sign up and come back.
#[component]
pub fn AcceptInvitationPage() -> impl IntoView {
    let token = use_query_map()
        .read_untracked()
        .get("token")
        .unwrap_or_default();
    let form_token = token.clone();
    let preview = AsyncDerived::new(move || check_invitation(token.clone()));
    // The request says who is signed in.
    #[cfg(feature = "ssr")]
    let signed_in = crate::web::signed_in().is_some();
    #[cfg(not(feature = "ssr"))]
    let signed_in = false;
    view! {
        <Title text="Join an organisation · Billfold"/>
        <AuthCard title="Join an organisation">
            <Suspense fallback=|| view! { <p class="text-slate-500">"Checking…"</p> }>
                {move || {
                    let token = form_token.clone();
                    Suspend::new(async move {
                        match preview.await {
                            Ok(p) => {
                                let back = format!("/accept-invitation?token={token}");
                                let next = urlencoding_lite(&back);
                                view! {
                                    <p class="text-slate-700" data-testid="invitation-offer">
                                        {format!("{} invited {} to join {} as {}.", p.invited_by, p.email, p.organization, p.role.label().to_lowercase())}
                                    </p>
                                    {if signed_in {
                                        view! { <div class="mt-4"><AcceptForm token/></div> }.into_any()
                                    } else {
                                        view! {
                                            <p class="mt-4 text-sm text-slate-600">
                                                {format!("Log in with {}, or create an account with it, to accept.", p.email)}
                                            </p>
                                            <p class="mt-2 text-sm">
                                                <A href=format!("/login?next={next}") attr:class="font-medium text-indigo-600">"Log in to accept"</A>
                                            </p>
                                            <p class="mt-2 text-sm text-slate-600">
                                                "New here? "
                                                <A href="/signup" attr:class="font-medium text-indigo-600">"Create an account"</A>
                                                {format!(" with {}, then open the invitation's link again.", p.email)}
                                            </p>
                                        }.into_any()
                                    }}
                                }.into_any()
                            }
                            Err(e) => view! {
                                <p role="alert" class="text-red-700" data-testid="invitation-refused">{e.to_string()}</p>
                            }.into_any(),
                        }
                    })
                }}
            </Suspense>
        </AuthCard>
    }
}

/// A path made safe to carry in a query string (the characters a token and a path use).
fn urlencoding_lite(s: &str) -> String {
    s.replace('%', "%25")
        .replace('/', "%2F")
        .replace('?', "%3F")
        .replace('=', "%3D")
        .replace('&', "%26")
}

#[component]
fn AcceptForm(token: String) -> impl IntoView {
    view! {
        <form method="post" action=AcceptInvitation::PATH class="space-y-3" data-enhance="">
            <FormError error=refusal(AcceptInvitation::PATH)/>
            <input type="hidden" name="token" value=token/>
            <button type="submit" class=submit_class() data-busy="Joining…">"Accept the invitation"</button>
        </form>
    }
}
