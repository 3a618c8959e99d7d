//! Escalation configuration: bad input is a typed error naming the field; a full
//! configuration round-trips through JSON.

use signalcraft_core::CoreError;
use signalcraft_core::escalation::{Directory, DirectoryConfig};

fn path_of(r: Result<(), CoreError>) -> (String, String) {
    match r {
        Err(CoreError::InvalidConfig { path, message }) => (path, message),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

fn base() -> serde_json::Value {
    serde_json::json!({
        "users": [
            {"id": "ann", "name": "Ann", "time_zone": "Europe/Berlin",
             "contact_methods": [{"id": "p", "kind": "push", "address": "tok"},
                                 {"id": "v", "kind": "voice", "address": "+4930123456789"}],
             "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "p"},
                                             {"delay_minutes": 5, "contact_method": "v"}]}},
            {"id": "bob", "name": "Bob", "email": "bob@example.com"}
        ],
        "teams": [{"id": "sre", "name": "SRE", "members": [{"user": "ann", "role": "manager"}, {"user": "bob"}]}],
        "schedules": [{
            "id": "primary", "name": "Primary", "time_zone": "UTC",
            "layers": [{"name": "l", "rotation": {"participants": ["ann", "bob"],
                "shift_length": {"days": 1}, "start": "2026-01-01", "handoff_time": "09:00"}}]
        }],
        "escalation_policies": [
            {"id": "a", "name": "A", "levels": [
                {"targets": [{"type": "schedule", "id": "primary"}], "delay_minutes": 5},
                {"targets": [{"type": "team", "id": "sre"}, {"type": "policy", "id": "b"}], "delay_minutes": 10, "mode": "round_robin"}
            ], "repeat": 2},
            {"id": "b", "name": "B", "levels": [{"targets": [{"type": "user", "id": "bob"}], "delay_minutes": 5}]}
        ]
    })
}

fn validate(v: serde_json::Value) -> Result<(), CoreError> {
    let cfg: DirectoryConfig = serde_json::from_value(v).unwrap();
    cfg.validate()
}

#[test]
fn good_config_loads_and_round_trips() {
    let cfg: DirectoryConfig = serde_json::from_value(base()).unwrap();
    let dir = Directory::new(cfg.clone()).unwrap();
    assert_eq!(dir.policy("a").unwrap().repeat, 2);
    assert_eq!(
        dir.team("sre").unwrap().pageable().collect::<Vec<_>>(),
        ["ann", "bob"]
    );
    let back: DirectoryConfig =
        serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn level_with_no_targets() {
    let mut v = base();
    v["escalation_policies"][0]["levels"][1]["targets"] = serde_json::json!([]);
    assert_eq!(
        path_of(validate(v)).0,
        "escalation_policies[0].levels[1].targets"
    );
}

#[test]
fn escalation_loop_is_rejected() {
    let mut v = base();
    v["escalation_policies"][1]["levels"][0]["targets"] =
        serde_json::json!([{"type": "policy", "id": "c"}]);
    v["escalation_policies"].as_array_mut().unwrap().push(serde_json::json!(
        {"id": "c", "name": "C", "levels": [{"targets": [{"type": "policy", "id": "b"}], "delay_minutes": 5}]}
    ));
    let (path, message) = path_of(validate(v));
    assert_eq!(path, "escalation_policies[1].levels[0].targets[0]");
    assert!(message.contains("loop"), "{message}");
    // A policy naming itself.
    let mut v = base();
    v["escalation_policies"][1]["levels"][0]["targets"] =
        serde_json::json!([{"type": "policy", "id": "b"}]);
    assert_eq!(
        path_of(validate(v)).0,
        "escalation_policies[1].levels[0].targets[0]"
    );
}

#[test]
fn other_bad_policy_fields() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "/escalation_policies/0/levels/0/delay_minutes",
            serde_json::json!(0),
            "escalation_policies[0].levels[0].delay_minutes",
        ),
        (
            "/escalation_policies/0/levels/0/delay_minutes",
            serde_json::json!(-5),
            "escalation_policies[0].levels[0].delay_minutes",
        ),
        (
            "/escalation_policies/0/repeat",
            serde_json::json!(0),
            "escalation_policies[0].repeat",
        ),
        (
            "/escalation_policies/0/levels",
            serde_json::json!([]),
            "escalation_policies[0].levels",
        ),
        (
            "/escalation_policies/0/levels/0/targets/0/id",
            serde_json::json!("nope"),
            "escalation_policies[0].levels[0].targets[0]",
        ),
        (
            "/escalation_policies/1/id",
            serde_json::json!("a"),
            "escalation_policies[1].id",
        ),
        (
            "/users/0/notification_rules/high/1/contact_method",
            serde_json::json!("fax"),
            "users[0].notification_rules.high[1].contact_method",
        ),
        (
            "/users/0/notification_rules/high/1/delay_minutes",
            serde_json::json!(-1),
            "users[0].notification_rules.high[1].delay_minutes",
        ),
        (
            "/users/0/contact_methods/1/address",
            serde_json::json!("0301234"),
            "users[0].contact_methods[1].address",
        ),
        (
            "/users/1/email",
            serde_json::json!("not-an-email"),
            "users[1].email",
        ),
        (
            "/teams/0/members/1/user",
            serde_json::json!("zoe"),
            "teams[0].members[1].user",
        ),
        (
            "/schedules/0/layers/0/rotation/participants",
            serde_json::json!([]),
            "schedules[0].layers[0].rotation.participants",
        ),
    ];
    for (ptr, val, want) in cases {
        let mut v = base();
        *v.pointer_mut(ptr).unwrap() = val;
        assert_eq!(path_of(validate(v)).0, want, "{ptr}");
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let mut v = base();
    v["escalation_policies"][0]["levels"][0]["delay"] = serde_json::json!(5);
    assert!(serde_json::from_value::<DirectoryConfig>(v).is_err());
}

#[test]
fn targets_resolve_to_users_and_empty_schedules_are_reported() {
    use signalcraft_core::escalation::{
        EscalationTarget, IncidentView, PagingEffect, PagingEvent, PagingPlanner,
    };
    let mut v = base();
    // Restrict the schedule to 09:00-10:00 so most of the day nobody is on call.
    v["schedules"][0]["layers"][0]["restrictions"] =
        serde_json::json!([{"type": "time_of_day", "start": "09:00", "end": "10:00"}]);
    let dir = Directory::new(serde_json::from_value(v).unwrap()).unwrap();
    let at: jiff::Timestamp = "2026-01-01T09:30:00Z".parse().unwrap();
    let r = dir.resolve_target(&EscalationTarget::Team("sre".into()), at);
    assert_eq!(r.users, ["ann", "bob"]);
    let r = dir.resolve_target(&EscalationTarget::Policy("b".into()), at);
    assert_eq!(r.users, ["bob"]);
    let r = dir.resolve_target(&EscalationTarget::Schedule("primary".into()), at);
    assert_eq!(r.users, ["ann"]);
    let later: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
    let r = dir.resolve_target(&EscalationTarget::Schedule("primary".into()), later);
    assert!(r.users.is_empty());
    assert_eq!(r.empty_schedules, ["primary"]);
    // The planner reports the empty schedule and pages nobody at level 1.
    let view = IncidentView {
        id: "inc-1".into(),
        number: 1,
        title: "t".into(),
        urgency: signalcraft_core::incident::Urgency::High,
        acknowledged: false,
        resolved: false,
        policy_id: Some("a".into()),
        round_robin_cursor: 0,
        generation: 0,
    };
    let eff = PagingPlanner::new(&dir).on_incident_opened(&view, later);
    assert!(eff.iter().any(|e| matches!(e,
        PagingEffect::Event(PagingEvent::NoOneOnCall { schedule_id, level: 1 }) if schedule_id == "primary")));
    assert!(!eff.iter().any(|e| matches!(e, PagingEffect::Page(_))));
    // bob has neither notification rules nor contact methods: paging him directly
    // reports him unreachable.
    let eff = PagingPlanner::new(&dir)
        .page_user(&view, "bob", None, None, later)
        .unwrap();
    assert!(eff.iter().any(|e| matches!(e,
        PagingEffect::Event(PagingEvent::Unreachable { user }) if user == "bob")));
}
