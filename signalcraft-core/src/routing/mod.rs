//! Routing: label matchers, the route tree and named time intervals.
//!
//! * [`matcher`]: `=`, `!=`, `=~`, `!~` matchers, string and structured forms.
//! * [`route`]: [`RouteConfig`] and the compiled [`RouteTree`].
//! * [`time_interval`]: named time intervals in IANA time zones.

pub mod matcher;
pub mod route;
pub mod time_interval;

pub use matcher::{MatchOp, Matcher, MatcherSpec};
pub use route::{GroupBy, NotifyTarget, Route, RouteConfig, RouteTree};
pub use time_interval::{TimeInterval, TimeIntervalConfig};
