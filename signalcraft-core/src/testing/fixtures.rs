//! Small fixtures the engine tests share.

use crate::model::{Alert, Event, Labels, Source};

/// A firing alert `{alertname=name, instance=instance}` from integration `prom`
/// (provider `test`), summary "`name` is firing".
pub fn firing_alert(name: &str, instance: &str) -> Event {
    let mut l = Labels::new();
    l.insert("alertname".into(), name.into());
    l.insert("instance".into(), instance.into());
    Event::Alert(Alert::firing(
        Source {
            provider: "test".into(),
            integration: "prom".into(),
        },
        format!("{name} is firing"),
        l,
    ))
}
