//! What allsweep's tests and its load generator need to set up, written once: a fresh
//! Postgres database that disappears afterwards ([`ThrowawayPostgres`]) and a small
//! synthetic-data sweep spec ([`SyntheticSpec`]). A dev-only crate: it depends on no other
//! allsweep crate, so the coordinator's unit tests can use it too.

pub mod postgres;
pub mod spec;

pub use postgres::ThrowawayPostgres;
pub use spec::SyntheticSpec;
