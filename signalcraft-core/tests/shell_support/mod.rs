//! What the engine-shell tests share: one route grouping by `alertname` to the
//! recording channel `rec`, firing alerts by name and instance, and instants after a
//! fixed start.

use jiff::{SignedDuration, Timestamp};
use signalcraft_core::engine::EngineConfig;
use signalcraft_core::model::Event;

/// The start of every test's clock.
pub const T0: &str = "2026-03-02T10:00:00Z";

/// group_by alertname, group_wait 30s, group_interval 5m, repeat 4h, to `rec`.
pub fn config() -> EngineConfig {
    serde_json::from_value(serde_json::json!({"route": {
        "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m",
        "repeat_interval": "4h", "notify": [{"channel": "rec", "target": "#ops"}]
    }}))
    .expect("config")
}

/// A firing alert `{alertname=name, instance=instance}` from integration `prom`.
pub fn alert(name: &str, instance: &str) -> Event {
    signalcraft_core::testing::fixtures::firing_alert(name, instance)
}

/// `secs` seconds after [`T0`].
pub fn at(secs: i64) -> Timestamp {
    T0.parse::<Timestamp>().expect("T0") + SignedDuration::from_secs(secs)
}
