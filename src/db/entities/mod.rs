//! SeaORM entities: one module per table. Rows stay on the server; they never `Serialize`.

pub mod session;
pub mod user;
