//! Shared conformance suites every implementation of a seam runs
//! (enabled with the `testing` feature).
