//! SeaORM entities: one module per table. Rows stay on the server; they never `Serialize`.

pub mod customer_check;
pub mod drift_record;
pub mod invoice;
pub mod payment_method;
pub mod price;
pub mod product;
pub mod reconcile_run;
pub mod reconcile_state;
pub mod session;
pub mod stripe_customer;
pub mod subscription;
pub mod subscription_schedule;
pub mod user;
pub mod webhook_event;
