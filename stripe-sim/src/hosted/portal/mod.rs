//! The hosted Customer Portal: current plan and renewal, switching plan, cancelling at period
//! end and renewing, the payment method, billing details and invoice history. A session with
//! `flow_data` opens on its screen and, once done, follows `after_completion`.
//! Here: the routes and what every screen shares (the checked session, the page frame, where
//! an action ends); the screens are in one module per flow.

mod billing_details;
mod home;
mod payment_method;
mod subscription_cancel;
mod subscription_update;

use axum::{
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};
use serde_json::Value;

use super::{escape, message_page, mount_path, page, safe_redirect, see_other};
use crate::{
    clock,
    model::{PortalConfiguration, PortalSession, State, Subscription},
    StripeSim,
};

pub fn routes() -> Router<StripeSim> {
    Router::new()
        .route("/portal/{sid}", get(home::home))
        .route("/portal/{sid}/return", get(home::go_back))
        .route("/portal/{sid}/done", get(home::done))
        .route(
            "/portal/{sid}/payment-method",
            get(payment_method::payment_method_form).post(payment_method::payment_method_save),
        )
        .route(
            "/portal/{sid}/billing-details",
            get(billing_details::details_form).post(billing_details::details_save),
        )
        .route(
            "/portal/{sid}/subscriptions/{sub}/update",
            get(subscription_update::update_choose).post(subscription_update::update_chosen),
        )
        .route(
            "/portal/{sid}/subscriptions/{sub}/update/confirm",
            get(subscription_update::update_confirm_form).post(subscription_update::update_confirm),
        )
        .route(
            "/portal/{sid}/subscriptions/{sub}/cancel",
            get(subscription_cancel::cancel_form).post(subscription_cancel::cancel_confirm),
        )
        .route(
            "/portal/{sid}/subscriptions/{sub}/renew",
            post(subscription_cancel::renew),
        )
        .route(
            "/portal/{sid}/subscriptions/{sub}/schedule/release",
            post(subscription_update::release_scheduled),
        )
}

/// What a flow is about; matched against the session's `flow.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    PaymentMethod,
    Cancel,
    Update,
    /// A switch that waits for the end of the period.
    ScheduledUpdate,
}

impl Action {
    fn flow_types(self) -> &'static [&'static str] {
        match self {
            Action::PaymentMethod => &["payment_method_update"],
            Action::Cancel => &["subscription_cancel"],
            Action::Update | Action::ScheduledUpdate => {
                &["subscription_update", "subscription_update_confirm"]
            }
        }
    }

    fn done_message(self) -> &'static str {
        match self {
            Action::PaymentMethod => "Your payment method has been updated.",
            Action::Cancel => "Your subscription has been canceled. It stays active until the end of the billing period.",
            Action::Update => "Your subscription has been updated.",
            Action::ScheduledUpdate => {
                "Your plan change is scheduled: it takes effect at the end of your billing period."
            }
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Action::PaymentMethod => "payment_method",
            Action::Cancel => "cancel",
            Action::Update => "update",
            Action::ScheduledUpdate => "update_scheduled",
        }
    }
}

/// Everything a portal screen needs, checked: the session is usable, its customer exists.
struct Ctx {
    session: PortalSession,
    config: PortalConfiguration,
    mount: String,
}

impl Ctx {
    fn url(&self, rest: &str) -> String {
        format!("{}/portal/{}{rest}", self.mount, self.session.id)
    }

    fn flow_type(&self) -> Option<&str> {
        self.session.flow.as_ref().and_then(|f| f["type"].as_str())
    }

    /// In a flow (other than one that ends on the portal's home page), "back" leaves the portal.
    fn in_closed_flow(&self) -> bool {
        let home = self
            .session
            .flow
            .as_ref()
            .and_then(|f| f["after_completion"]["type"].as_str())
            == Some("portal_homepage");
        self.flow_type().is_some() && !home
    }

    fn back_link(&self) -> String {
        if self.in_closed_flow() {
            self.url("/return")
        } else if self.flow_type().is_some() {
            self.url("?home=1")
        } else {
            self.url("")
        }
    }

    fn brand(&self) -> String {
        self.config
            .headline
            .clone()
            .unwrap_or_else(|| "Billfold (test mode)".into())
    }
}

/// Runs a portal screen about one of the session customer's own subscriptions (or answers
/// why it cannot), then saves the double's state.
async fn on_own_subscription(
    sim: &StripeSim,
    sid: &str,
    sub: &str,
    screen: impl FnOnce(&mut State, &Ctx, Subscription) -> Response,
) -> Response {
    let response = {
        let mut st = sim.lock();
        match context(&mut st, sid) {
            Err(r) => *r,
            Ok(ctx) => match own_subscription(&st, &ctx, sub) {
                Err(r) => *r,
                Ok(s) => screen(&mut st, &ctx, s),
            },
        }
    };
    sim.changed().await;
    response
}

/// Opens the session (first visit) or explains why it cannot be used.
fn context(st: &mut State, sid: &str) -> Result<Ctx, Box<Response>> {
    let now = clock::now();
    let Some(session) = st.portal_session(sid).cloned() else {
        return Err(Box::new(message_page(
            "Portal session not found",
            "This billing portal link is not valid.",
            None,
            StatusCode::NOT_FOUND,
        )));
    };
    if !session.usable(now) {
        let back = session.return_url.as_deref().and_then(safe_redirect);
        return Err(Box::new(message_page(
            "This session has expired",
            "Billing portal links work for a few minutes and only until you leave. Go back and open the billing portal again.",
            back.as_deref().map(|u| (u, "Return")),
            StatusCode::GONE,
        )));
    }
    if st.live_customer(&session.customer).is_none() {
        return Err(Box::new(message_page(
            "Account not found",
            "The customer for this session no longer exists.",
            None,
            StatusCode::NOT_FOUND,
        )));
    }
    if session.opened_at.is_none() {
        if let Some(s) = st.portal_session_mut(sid) {
            s.opened_at = Some(now);
        }
    }
    let config = st
        .portal_configuration(&session.configuration)
        .cloned()
        .or_else(|| st.default_portal_configuration().cloned())
        .ok_or_else(|| {
            Box::new(message_page(
                "Portal not configured",
                "There is no portal configuration.",
                None,
                StatusCode::NOT_FOUND,
            ))
        })?;
    Ok(Ctx {
        session,
        config,
        mount: mount_path(st),
    })
}

/// The customer's subscription `sub`, if it is theirs and still running.
fn own_subscription(st: &State, ctx: &Ctx, sub: &str) -> Result<Subscription, Box<Response>> {
    st.subscription(sub)
        .filter(|s| s.customer == ctx.session.customer && !s.status.is_ended())
        .cloned()
        .ok_or_else(|| {
            Box::new(message_page(
                "Subscription not found",
                "This subscription is not available here.",
                Some((&ctx.url(""), "Back")),
                StatusCode::NOT_FOUND,
            ))
        })
}

fn screen(ctx: &Ctx, title: &str, body: &str) -> Response {
    let back = format!(
        r#"<p><a href="{}">← {}</a></p>"#,
        escape(&ctx.back_link()),
        if ctx.in_closed_flow() {
            "Cancel and return"
        } else {
            "Back"
        }
    );
    page(
        title,
        &ctx.brand(),
        &format!(r#"<div style="max-width:620px;margin:0 auto">{back}{body}</div>"#),
        StatusCode::OK,
    )
}

fn error_box(error: Option<&str>) -> String {
    error
        .map(|e| format!(r#"<div class="error" role="alert">{}</div>"#, escape(e)))
        .unwrap_or_default()
}

/// After an action: what `after_completion` says if this was the session's flow, else home.
fn finish(st: &mut State, ctx: &Ctx, action: Action) -> Response {
    let flow = ctx.session.flow.clone().unwrap_or(Value::Null);
    let is_this_flow = ctx
        .flow_type()
        .is_some_and(|t| action.flow_types().contains(&t));
    if is_this_flow {
        match flow["after_completion"]["type"].as_str() {
            Some("redirect") => {
                if let Some(url) = flow["after_completion"]["redirect"]["return_url"]
                    .as_str()
                    .and_then(safe_redirect)
                {
                    if let Some(s) = st.portal_session_mut(&ctx.session.id) {
                        s.returned = true;
                    }
                    return see_other(&url);
                }
            }
            Some("hosted_confirmation") => {
                return see_other(&ctx.url(&format!("/done?action={}", action.slug())));
            }
            _ => {}
        }
    }
    see_other(&ctx.url(&format!("?notice={}", action.slug())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_unopened_after_minutes_and_once_left() {
        let mut s = PortalSession {
            id: "bps_1".into(),
            created: 1000,
            customer: "cus_1".into(),
            configuration: "bpc_1".into(),
            return_url: None,
            locale: None,
            flow: None,
            expires_at: 1300,
            opened_at: None,
            returned: false,
        };
        assert!(s.usable(1300));
        assert!(!s.usable(1301));
        s.opened_at = Some(1200);
        assert!(s.usable(1200 + 3600));
        assert!(!s.usable(1200 + 3601));
        s.returned = true;
        assert!(!s.usable(1201));
    }
}
