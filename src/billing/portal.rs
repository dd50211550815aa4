//! Customer Portal sessions, plain or deep-linked into one flow (payment method, cancel,
//! switch plans).

use ::stripe::StripeError;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use stripe_billing::billing_portal_session::{
    CreateBillingPortalSession, CreateBillingPortalSessionFlowData,
    CreateBillingPortalSessionFlowDataAfterCompletion,
    CreateBillingPortalSessionFlowDataAfterCompletionRedirect,
    CreateBillingPortalSessionFlowDataAfterCompletionType,
    CreateBillingPortalSessionFlowDataSubscriptionCancel,
    CreateBillingPortalSessionFlowDataSubscriptionUpdate,
    CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirm,
    CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirmItems,
    CreateBillingPortalSessionFlowDataType,
};

use super::{
    access,
    customer::{find_customer, on_the_customer},
    limits::limit_sessions,
    plans::find_for_sale,
    summary::SubscriptionView,
    summary_load::subscription_view,
    PortalFlow,
};
use crate::{db::entities::subscription, error::AppError, state::AppState, web::CurrentUser};

/// The subscription a deep link acts on: the user's own primary one, looked up here.
async fn primary_subscription_id(
    state: &AppState,
    customer_id: &str,
) -> Result<Option<String>, AppError> {
    let subs: Vec<SubscriptionView> = subscription::Entity::find()
        .filter(subscription::Column::CustomerId.eq(customer_id))
        .filter(subscription::Column::Deleted.eq(false))
        .all(&state.db)
        .await?
        .into_iter()
        .map(subscription_view)
        .filter(|s| !s.subscription.status.is_terminal())
        .collect();
    Ok(access::primary(&subs).map(|s| s.subscription.id.clone()))
}

/// Creates a Customer Portal session (optionally deep-linked into one flow) and returns its URL.
pub async fn open_portal(
    state: &AppState,
    user: &CurrentUser,
    flow: Option<PortalFlow>,
    price_id: Option<&str>,
) -> Result<String, AppError> {
    super::roles::require_billing_manager(state, user).await?;
    // A switch is to one of the prices the picker shows, checked before anything else.
    let switch_to = match (flow, price_id) {
        (Some(PortalFlow::SubscriptionUpdateConfirm), Some(price)) => {
            Some(find_for_sale(state, price).await?.price.id)
        }
        (Some(PortalFlow::SubscriptionUpdateConfirm), None) => {
            return Err(AppError::invalid(
                "price_id",
                "Choose the plan to switch to.",
            ))
        }
        (_, Some(_)) => {
            return Err(AppError::invalid(
                "price_id",
                "A plan is only chosen with flow=subscription_update_confirm.",
            ))
        }
        (_, None) => None,
    };
    limit_sessions(state, user).await?;
    let Some(customer_id) = find_customer(state, user.org.id).await? else {
        return Err(AppError::NotFound(
            "No billing account yet. Choose a plan to create one.".into(),
        ));
    };
    let session = on_the_customer(state, user, customer_id, "portal", |customer| {
        portal_session(state, customer, flow, switch_to.clone())
    })
    .await?;
    crate::metrics::billing_session("portal");
    Ok(session.url)
}

/// Asks Stripe for a portal session for `customer_id`. The outer error is Billfold's own
/// (no subscription to deep-link into), the inner one Stripe's answer.
async fn portal_session(
    state: &AppState,
    customer_id: String,
    flow: Option<PortalFlow>,
    switch_to: Option<String>,
) -> Result<Result<stripe_billing::BillingPortalSession, StripeError>, AppError> {
    let return_url = state.config.url_for("/settings/billing?from=portal");
    let mut request = CreateBillingPortalSession::new()
        .customer(customer_id.clone())
        .return_url(return_url.clone());
    if let Some(configuration) = &state.config.stripe.portal_configuration_id {
        request = request.configuration(configuration.clone());
    }
    if let Some(flow) = flow {
        let subscription = match flow {
            PortalFlow::PaymentMethodUpdate => None,
            PortalFlow::SubscriptionCancel
            | PortalFlow::SubscriptionUpdate
            | PortalFlow::SubscriptionUpdateConfirm => Some(
                primary_subscription_id(state, &customer_id)
                    .await?
                    .ok_or_else(|| {
                        AppError::NotFound("You have no subscription to change yet.".into())
                    })?,
            ),
        };
        // The item to switch is the subscription's own, as Stripe has it (the server's
        // lookup, never the request's).
        let item = match (&subscription, switch_to) {
            (Some(sub), Some(price)) => {
                let read = stripe_billing::subscription::RetrieveSubscription::new(sub.as_str())
                    .send(&state.stripe)
                    .await;
                crate::metrics::stripe_request("subscriptions.retrieve", &read);
                let sub = match read {
                    Ok(sub) => sub,
                    Err(e) => return Ok(Err(e)),
                };
                let item = sub.items.data.first().ok_or_else(|| {
                    AppError::Conflict("Your subscription has no plan to switch.".into())
                })?;
                if item.price.id.as_str() == price {
                    return Err(AppError::invalid(
                        "price_id",
                        "You are on that plan already.",
                    ));
                }
                Some((item.id.to_string(), price))
            }
            _ => None,
        };
        request = request.flow_data(flow_data(flow, subscription, item, &return_url));
    }
    let session = request.send(&state.stripe).await;
    crate::metrics::stripe_request("billing_portal.sessions.create", &session);
    Ok(session)
}

fn flow_data(
    flow: PortalFlow,
    subscription: Option<String>,
    item: Option<(String, String)>,
    return_url: &str,
) -> CreateBillingPortalSessionFlowData {
    let kind = match flow {
        PortalFlow::PaymentMethodUpdate => {
            CreateBillingPortalSessionFlowDataType::PaymentMethodUpdate
        }
        PortalFlow::SubscriptionCancel => {
            CreateBillingPortalSessionFlowDataType::SubscriptionCancel
        }
        PortalFlow::SubscriptionUpdate => {
            CreateBillingPortalSessionFlowDataType::SubscriptionUpdate
        }
        PortalFlow::SubscriptionUpdateConfirm => {
            CreateBillingPortalSessionFlowDataType::SubscriptionUpdateConfirm
        }
    };
    let mut data = CreateBillingPortalSessionFlowData::new(kind);
    match (flow, subscription) {
        (PortalFlow::SubscriptionCancel, Some(sub)) => {
            data.subscription_cancel = Some(
                CreateBillingPortalSessionFlowDataSubscriptionCancel::new(sub),
            );
        }
        (PortalFlow::SubscriptionUpdate, Some(sub)) => {
            data.subscription_update = Some(
                CreateBillingPortalSessionFlowDataSubscriptionUpdate::new(sub),
            );
        }
        (PortalFlow::SubscriptionUpdateConfirm, Some(sub)) => {
            let mut confirm_items = Vec::new();
            if let Some((id, price)) = item {
                let mut one =
                    CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirmItems::new(id);
                one.price = Some(price);
                one.quantity = Some(1);
                confirm_items.push(one);
            }
            data.subscription_update_confirm = Some(
                CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirm::new(
                    confirm_items,
                    sub,
                ),
            );
        }
        _ => {}
    }
    // A finished deep-linked flow comes straight back to the billing page.
    let mut after = CreateBillingPortalSessionFlowDataAfterCompletion::new(
        CreateBillingPortalSessionFlowDataAfterCompletionType::Redirect,
    );
    after.redirect =
        Some(CreateBillingPortalSessionFlowDataAfterCompletionRedirect::new(return_url.to_owned()));
    data.after_completion = Some(after);
    data
}
