//! Shared conformance suites every implementation of a seam runs, and the fixtures
//! the engine tests share (enabled with the `testing` feature).

pub mod channel;
pub mod fixtures;
pub mod scheduler;
pub mod store;
