//! Shared conformance suites every implementation of a seam runs
//! (enabled with the `testing` feature).

pub mod channel;
pub mod scheduler;
pub mod store;
