//! SeaORM entities: one module per table. Rows stay on the server; they never `Serialize`.

pub mod billing_alert;
pub mod checkout_expiry;
pub mod customer_check;
pub mod customer_entitlement;
pub mod drift_record;
pub mod email_token;
pub mod invitation;
pub mod invoice;
pub mod mail_outbox;
pub mod membership;
pub mod operator;
pub mod operator_action;
pub mod organization;
pub mod payment_method;
pub mod price;
pub mod product;
pub mod project;
pub mod reconcile_run;
pub mod reconcile_state;
pub mod session;
pub mod stripe_customer;
pub mod stripe_outbox;
pub mod subscription;
pub mod subscription_schedule;
pub mod user;
pub mod webhook_event;
