//! Small fixtures the engine tests share.

use crate::escalation::{Directory, DirectoryConfig};
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

/// A paging directory with policy `db` of two levels: level 1 pages `ann` by SMS
/// (`+4915100000001`) at once, level 2 pages `bob` by email (`bob@example.com`)
/// 5 minutes later; each user's `high` rule notifies at once.
pub fn two_level_directory() -> Directory {
    let config: Result<DirectoryConfig, _> = serde_json::from_value(serde_json::json!({
        "users": [
            {"id": "ann", "name": "Ann", "contact_methods": [{"id": "s", "kind": "sms", "address": "+4915100000001"}],
             "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "s"}]}},
            {"id": "bob", "name": "Bob", "contact_methods": [{"id": "e", "kind": "email", "address": "bob@example.com"}],
             "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "e"}]}}
        ],
        "escalation_policies": [{"id": "db", "name": "DB", "levels": [
            {"targets": [{"type": "user", "id": "ann"}], "delay_minutes": 5},
            {"targets": [{"type": "user", "id": "bob"}], "delay_minutes": 5}
        ]}]
    }));
    match config.map(Directory::new) {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => panic!("two_level_directory: {e}"),
        Err(e) => panic!("two_level_directory config: {e}"),
    }
}
