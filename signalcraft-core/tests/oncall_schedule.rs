//! On-call schedules: layers, restrictions, overrides, rendering, handoffs, gaps,
//! validation errors, and property tests.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use signalcraft_core::CoreError;
use signalcraft_core::escalation::DirectoryConfig;
use signalcraft_core::oncall::{
    CompiledSchedule, OnCallSource, Override, Restriction, Rotation, Schedule, ScheduleIndex,
    ScheduleLayer, Shift, ShiftLength, User, Weekday,
};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn rotation(people: &[&str], len: ShiftLength, start: &str, handoff: &str) -> Rotation {
    Rotation {
        participants: people.iter().map(|s| s.to_string()).collect(),
        shift_length: len,
        start: start.parse().unwrap(),
        handoff_time: handoff.into(),
    }
}

fn layer(name: &str, rotation: Rotation, restrictions: Vec<Restriction>) -> ScheduleLayer {
    ScheduleLayer {
        name: name.into(),
        rotation,
        restrictions,
    }
}

fn schedule(tz: &str, layers: Vec<ScheduleLayer>, overrides: Vec<Override>) -> Schedule {
    Schedule {
        id: "ops".into(),
        name: "Ops".into(),
        time_zone: tz.into(),
        layers,
        overrides,
        handoff_notifications: Default::default(),
    }
}

fn ov(user: &str, start: &str, end: &str) -> Override {
    Override {
        id: None,
        user: user.into(),
        start: ts(start),
        end: ts(end),
    }
}

/// Weekly primary (a, b, c) Mondays 09:00 Berlin, business-hours layer (d, e) on top,
/// weekend layer (f) on top of that.
fn three_layers(overrides: Vec<Override>) -> CompiledSchedule {
    CompiledSchedule::new(schedule(
        "Europe/Berlin",
        vec![
            layer(
                "primary",
                rotation(
                    &["a", "b", "c"],
                    ShiftLength::Weeks(1),
                    "2026-01-05",
                    "09:00",
                ),
                vec![],
            ),
            layer(
                "business hours",
                rotation(&["d", "e"], ShiftLength::Days(1), "2026-01-05", "09:00"),
                vec![Restriction::TimeOfDay {
                    start: "09:00".into(),
                    end: "17:00".into(),
                }],
            ),
            layer(
                "weekend",
                rotation(&["f"], ShiftLength::Weeks(1), "2026-01-05", "00:00"),
                vec![Restriction::Weekly {
                    start_day: Weekday::Saturday,
                    start: "10:00".into(),
                    end_day: Weekday::Sunday,
                    end: "18:00".into(),
                }],
            ),
        ],
        overrides,
    ))
    .unwrap()
}

#[test]
fn layers_stack_and_restrictions_let_lower_layers_show_through() {
    let s = three_layers(vec![]);
    // Monday 2026-01-05 08:00 Berlin (07:00Z): before the first shift.
    assert_eq!(s.who_is_on_call(ts("2026-01-05T07:59:59Z")), None);
    // Monday 10:00 Berlin: business hours layer, first day -> d.
    let oc = s.who_is_on_call(ts("2026-01-05T09:00:00Z")).unwrap();
    assert_eq!(
        (oc.user, oc.source),
        ("d", OnCallSource::Layer { index: 1 })
    );
    // Tuesday 10:00: e. Tuesday 18:00: primary a.
    assert_eq!(
        s.who_is_on_call(ts("2026-01-06T09:00:00Z")).unwrap().user,
        "e"
    );
    let oc = s.who_is_on_call(ts("2026-01-06T17:00:00Z")).unwrap();
    assert_eq!(
        (oc.user, oc.source),
        ("a", OnCallSource::Layer { index: 0 })
    );
    // Saturday 11:00: weekend layer f; Saturday 09:00: business hours (day 6 -> d).
    assert_eq!(
        s.who_is_on_call(ts("2026-01-10T10:00:00Z")).unwrap().user,
        "f"
    );
    assert_eq!(
        s.who_is_on_call(ts("2026-01-10T08:00:00Z")).unwrap().user,
        "e"
    );
    // Second week Monday 08:59 Berlin: still a; 09:00 handoff -> business layer, at 17:00 b.
    assert_eq!(
        s.who_is_on_call(ts("2026-01-12T07:59:00Z")).unwrap().user,
        "a"
    );
    assert_eq!(
        s.who_is_on_call(ts("2026-01-12T16:00:00Z")).unwrap().user,
        "b"
    );
    assert_eq!(s.source_name(OnCallSource::Layer { index: 2 }), "weekend");
}

#[test]
fn overrides_win_and_last_listed_wins_overlaps() {
    let s = three_layers(vec![
        ov("x", "2026-01-06T12:00:00Z", "2026-01-06T20:00:00Z"),
        ov("y", "2026-01-06T14:00:00Z", "2026-01-06T15:00:00Z"),
    ]);
    assert_eq!(
        s.who_is_on_call(ts("2026-01-06T11:59:59Z")).unwrap().user,
        "e"
    );
    let oc = s.who_is_on_call(ts("2026-01-06T12:00:00Z")).unwrap();
    assert_eq!(
        (oc.user, oc.source),
        ("x", OnCallSource::Override { index: 0 })
    );
    let oc = s.who_is_on_call(ts("2026-01-06T14:30:00Z")).unwrap();
    assert_eq!(
        (oc.user, oc.source),
        ("y", OnCallSource::Override { index: 1 })
    );
    assert_eq!(
        s.who_is_on_call(ts("2026-01-06T15:00:00Z")).unwrap().user,
        "x"
    );
    assert_eq!(
        s.who_is_on_call(ts("2026-01-06T20:00:00Z")).unwrap().user,
        "a"
    );
}

#[test]
fn render_handoffs_and_gaps_agree() {
    let s = three_layers(vec![ov(
        "x",
        "2026-01-06T12:00:00Z",
        "2026-01-06T20:00:00Z",
    )]);
    let from = ts("2026-01-05T00:00:00Z");
    let to = ts("2026-01-13T00:00:00Z");
    let shifts = s.render(from, to);
    // Before the 09:00 Berlin start nobody is on call: one gap, then full coverage.
    let gaps = s.gaps(from, to);
    assert_eq!(gaps.len(), 1);
    assert_eq!(
        (gaps[0].start, gaps[0].end),
        (from, ts("2026-01-05T08:00:00Z"))
    );
    assert_eq!(shifts[0].start, ts("2026-01-05T08:00:00Z"));
    for w in shifts.windows(2) {
        assert_eq!(w[0].end, w[1].start, "contiguous after the first shift");
        assert!(w[0].user != w[1].user || w[0].source != w[1].source);
    }
    // Every shift's user is who_is_on_call throughout it (sampled).
    for sh in &shifts {
        let mid = sh.start + SignedDuration::from_nanos((sh.end - sh.start).as_nanos() as i64 / 2);
        for t in [sh.start, mid, sh.end - SignedDuration::from_nanos(1)] {
            let oc = s.who_is_on_call(t).unwrap();
            assert_eq!((oc.user, oc.source), (sh.user.as_str(), sh.source));
        }
    }
    let handoffs = s.handoffs(from, to);
    assert_eq!(handoffs[0].incoming.as_deref(), Some("d"));
    assert_eq!(handoffs[0].outgoing, None);
    assert!(handoffs.iter().any(|h| h.at == ts("2026-01-06T12:00:00Z")
        && h.incoming.as_deref() == Some("x")
        && h.outgoing.as_deref() == Some("e")));
    // A change of source with the same person is not a handoff.
    for h in &handoffs {
        assert_ne!(h.incoming, h.outgoing);
    }
    let x: Vec<Shift> = s.render_user("x", from, to);
    assert_eq!(x.len(), 1);
    assert_eq!(
        (x[0].start, x[0].end),
        (ts("2026-01-06T12:00:00Z"), ts("2026-01-06T20:00:00Z"))
    );
}

#[test]
fn overnight_time_of_day_window_wraps_midnight() {
    let s = CompiledSchedule::new(schedule(
        "UTC",
        vec![layer(
            "night",
            rotation(&["n"], ShiftLength::Days(1), "2026-01-01", "00:00"),
            vec![Restriction::TimeOfDay {
                start: "22:00".into(),
                end: "06:00".into(),
            }],
        )],
        vec![],
    ))
    .unwrap();
    assert_eq!(
        s.who_is_on_call(ts("2026-01-02T23:00:00Z")).unwrap().user,
        "n"
    );
    assert_eq!(
        s.who_is_on_call(ts("2026-01-03T05:59:00Z")).unwrap().user,
        "n"
    );
    assert_eq!(s.who_is_on_call(ts("2026-01-03T06:00:00Z")), None);
    assert_eq!(s.who_is_on_call(ts("2026-01-03T21:59:00Z")), None);
    let gaps = s.gaps(ts("2026-01-02T00:00:00Z"), ts("2026-01-03T00:00:00Z"));
    assert_eq!(gaps.len(), 1);
    assert_eq!(
        (gaps[0].start, gaps[0].end),
        (ts("2026-01-02T06:00:00Z"), ts("2026-01-02T22:00:00Z"))
    );
}

#[test]
fn hour_and_custom_shift_lengths() {
    let s = CompiledSchedule::new(schedule(
        "UTC",
        vec![layer(
            "l",
            rotation(
                &["a", "b", "c"],
                ShiftLength::Minutes(90),
                "2026-01-01",
                "00:00",
            ),
            vec![],
        )],
        vec![],
    ))
    .unwrap();
    assert_eq!(
        s.who_is_on_call(ts("2026-01-01T01:29:00Z")).unwrap().user,
        "a"
    );
    assert_eq!(
        s.who_is_on_call(ts("2026-01-01T01:30:00Z")).unwrap().user,
        "b"
    );
    assert_eq!(
        s.who_is_on_call(ts("2026-01-01T04:30:00Z")).unwrap().user,
        "a"
    );
}

fn err_path(r: Result<impl std::fmt::Debug, CoreError>) -> String {
    match r {
        Err(CoreError::InvalidConfig { path, .. }) => path,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

fn users(ids: &[&str]) -> Vec<User> {
    ids.iter()
        .map(|i| User::new(*i, i.to_uppercase()))
        .collect()
}

#[test]
fn bad_schedules_are_typed_errors_naming_the_field() {
    let good = || {
        schedule(
            "Europe/Berlin",
            vec![
                layer(
                    "a",
                    rotation(&["a"], ShiftLength::Days(1), "2026-01-01", "09:00"),
                    vec![],
                ),
                layer(
                    "b",
                    rotation(&["b"], ShiftLength::Days(1), "2026-01-01", "09:00"),
                    vec![],
                ),
            ],
            vec![ov("a", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z")],
        )
    };
    let cfg = |s: Schedule| DirectoryConfig {
        users: users(&["a", "b"]),
        schedules: vec![s],
        ..Default::default()
    };
    assert!(cfg(good()).validate().is_ok());

    let mut s = good();
    s.layers[1].rotation.participants.clear();
    assert_eq!(
        err_path(cfg(s).validate()),
        "schedules[0].layers[1].rotation.participants"
    );

    for len in [
        ShiftLength::Hours(0),
        ShiftLength::Days(-1),
        ShiftLength::Minutes(-30),
    ] {
        let mut s = good();
        s.layers[0].rotation.shift_length = len;
        assert_eq!(
            err_path(cfg(s).validate()),
            "schedules[0].layers[0].rotation.shift_length"
        );
    }

    let mut s = good();
    s.time_zone = "Mars/Olympus_Mons".into();
    assert_eq!(err_path(cfg(s).validate()), "schedules[0].time_zone");

    let mut s = good();
    let o = &mut s.overrides[0];
    std::mem::swap(&mut o.start, &mut o.end);
    assert_eq!(err_path(cfg(s).validate()), "schedules[0].overrides[0].end");

    let mut s = good();
    s.layers[0].rotation.participants.push("ghost".into());
    assert_eq!(
        err_path(cfg(s).validate()),
        "schedules[0].layers[0].rotation.participants[1]"
    );

    let mut s = good();
    s.layers[1].rotation.handoff_time = "25:00".into();
    assert_eq!(
        err_path(cfg(s).validate()),
        "schedules[0].layers[1].rotation.handoff_time"
    );

    let mut s = good();
    s.layers[0].restrictions.push(Restriction::TimeOfDay {
        start: "9am".into(),
        end: "17:00".into(),
    });
    assert_eq!(
        err_path(cfg(s).validate()),
        "schedules[0].layers[0].restrictions[0].start"
    );

    let mut u = users(&["a", "b"]);
    u[1].time_zone = "Europe/Nowhere".into();
    let c = DirectoryConfig {
        users: u,
        ..Default::default()
    };
    assert_eq!(err_path(c.validate()), "users[1].time_zone");
}

#[test]
fn config_round_trips_through_json_and_rejects_unknown_fields() {
    let json = r#"{
        "id": "ops", "name": "Ops", "time_zone": "America/New_York",
        "layers": [{
            "name": "primary",
            "rotation": {"participants": ["a", "b"], "shift_length": {"weeks": 1},
                         "start": "2026-01-05", "handoff_time": "09:00"},
            "restrictions": [{"type": "weekly", "start_day": "friday", "start": "18:00",
                              "end_day": "monday", "end": "09:00"}]
        }],
        "overrides": [{"user": "b", "start": "2026-01-06T00:00:00Z", "end": "2026-01-07T00:00:00Z"}]
    }"#;
    let s: Schedule = serde_json::from_str(json).unwrap();
    assert!(s.validate().is_ok());
    let back: Schedule = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    let bad = json.replace("\"handoff_time\"", "\"handof_time\"");
    assert!(serde_json::from_str::<Schedule>(&bad).is_err());
}

// ---------- property tests ----------

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Adelaide",
];

fn arb_len() -> impl Strategy<Value = ShiftLength> {
    prop_oneof![
        (1i64..48).prop_map(ShiftLength::Hours),
        (1i64..10).prop_map(ShiftLength::Days),
        (1i64..3).prop_map(ShiftLength::Weeks),
        (1i64..3000).prop_map(ShiftLength::Minutes),
    ]
}

/// 2025-06-01 .. 2028-01-01 in seconds.
fn arb_instant() -> impl Strategy<Value = Timestamp> {
    (1_748_736_000i64..1_830_297_600).prop_map(|s| Timestamp::from_second(s).unwrap())
}

fn arb_rotation_schedule() -> impl Strategy<Value = CompiledSchedule> {
    (
        0usize..ZONES.len(),
        1usize..5,
        arb_len(),
        0u32..1440,
        0i64..60,
    )
        .prop_map(|(z, n, len, hm, day)| {
            let people: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
            let start = jiff::civil::date(2025, 6, 1) + SignedDuration::from_hours(24 * day);
            let s = Schedule {
                id: "p".into(),
                name: "P".into(),
                time_zone: ZONES[z].into(),
                layers: vec![ScheduleLayer {
                    name: "l".into(),
                    rotation: Rotation {
                        participants: people,
                        shift_length: len,
                        start,
                        handoff_time: format!("{:02}:{:02}", hm / 60, hm % 60),
                    },
                    restrictions: vec![],
                }],
                overrides: vec![],
                handoff_notifications: Default::default(),
            };
            CompiledSchedule::new(s).unwrap()
        })
}

fn start_of(s: &CompiledSchedule) -> Timestamp {
    // The first rendered instant is the layer start.
    s.render(ts("2025-01-01T00:00:00Z"), ts("2026-01-01T00:00:00Z"))
        .first()
        .map(|s| s.start)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With ≥ 1 participant and no restrictions, exactly one person is on call at every
    /// instant after the rotation starts: rendering covers the range without gaps or
    /// overlaps, and the answer at every sampled instant is that shift's user.
    #[test]
    fn exactly_one_on_call(s in arb_rotation_schedule(), t in arb_instant(), span in 1i64..(20 * 86400)) {
        let start = start_of(&s);
        let from = t.max(start);
        let to = from + SignedDuration::from_secs(span);
        let shifts = s.render(from, to);
        prop_assert!(!shifts.is_empty());
        prop_assert_eq!(shifts[0].start, from);
        prop_assert_eq!(shifts.last().unwrap().end, to);
        for w in shifts.windows(2) {
            prop_assert_eq!(w[0].end, w[1].start);
        }
        for sh in &shifts {
            prop_assert!(sh.start < sh.end);
            prop_assert_eq!(s.who_is_on_call(sh.start).map(|o| o.user.to_string()), Some(sh.user.clone()));
            prop_assert_eq!(
                s.who_is_on_call(sh.end - SignedDuration::from_nanos(1)).map(|o| o.user.to_string()),
                Some(sh.user.clone())
            );
        }
        prop_assert!(s.who_is_on_call(t).is_some() || t < start);
    }

    /// Handoffs happen exactly at rotation shift boundaries: with distinct participants
    /// every boundary is a handoff and nothing else is.
    #[test]
    fn handoffs_at_shift_boundaries(s in arb_rotation_schedule(), t in arb_instant()) {
        let from = t.max(start_of(&s));
        let to = from + SignedDuration::from_hours(24 * 21);
        let shifts = s.render(from, to);
        let handoffs = s.handoffs(from, to);
        let n = s.config().layers[0].rotation.participants.len();
        let boundaries: Vec<Timestamp> = shifts.iter().skip(1).map(|sh| sh.start).collect();
        let at: Vec<Timestamp> = handoffs.iter().map(|h| h.at).filter(|a| *a > from).collect();
        if n > 1 {
            prop_assert_eq!(at, boundaries);
        } else {
            prop_assert!(at.is_empty());
        }
        for h in &handoffs {
            let before = s.who_is_on_call(h.at - SignedDuration::from_nanos(1)).map(|o| o.user.to_string());
            let after = s.who_is_on_call(h.at).map(|o| o.user.to_string());
            prop_assert_eq!(&h.outgoing, &before);
            prop_assert_eq!(&h.incoming, &after);
        }
    }

    /// An override wins everywhere inside its window and nowhere outside it.
    #[test]
    fn override_wins_inside_only(
        s in arb_rotation_schedule(),
        t in arb_instant(),
        len in 60i64..(5 * 86400),
        probe in -86400i64..(6 * 86400),
    ) {
        let mut cfg = s.config().clone();
        let (o_start, o_end) = (t, t + SignedDuration::from_secs(len));
        cfg.overrides.push(Override { id: Some("o".into()), user: "zed".into(), start: o_start, end: o_end });
        let with = CompiledSchedule::new(cfg).unwrap();
        let p = t + SignedDuration::from_secs(probe);
        let got = with.who_is_on_call(p);
        if o_start <= p && p < o_end {
            prop_assert_eq!(got.map(|o| o.user), Some("zed"));
            prop_assert_eq!(got.map(|o| o.source), Some(OnCallSource::Override { index: 0 }));
        } else {
            prop_assert_eq!(got.map(|o| o.user.to_string()), s.who_is_on_call(p).map(|o| o.user.to_string()));
        }
    }

    /// render [a, c) equals render [a, b) followed by render [b, c), with the shift
    /// that spans b joined back together.
    #[test]
    fn render_splits_at_any_point(
        s in arb_rotation_schedule(),
        a in arb_instant(),
        ab in 0i64..(10 * 86400),
        bc in 1i64..(10 * 86400),
        with_override in any::<bool>(),
    ) {
        let s = if with_override {
            let mut cfg = s.config().clone();
            cfg.overrides.push(Override { id: None, user: "zed".into(), start: a + SignedDuration::from_secs(ab / 2), end: a + SignedDuration::from_secs(ab + bc / 2) });
            CompiledSchedule::new(cfg).unwrap()
        } else { s };
        let b = a + SignedDuration::from_secs(ab);
        let c = b + SignedDuration::from_secs(bc);
        let whole = s.render(a, c);
        let mut joined = s.render(a, b);
        for sh in s.render(b, c) {
            match joined.last_mut() {
                Some(last) if last.end == sh.start && last.user == sh.user && last.source == sh.source => last.end = sh.end,
                _ => joined.push(sh),
            }
        }
        prop_assert_eq!(whole, joined);
    }

    /// The index answers exactly like the direct computation, for a layered schedule
    /// with restrictions and overrides.
    #[test]
    fn index_matches_direct(offsets in proptest::collection::vec(0i64..(60 * 86400), 1..50)) {
        let mut ovs = Vec::new();
        for (i, o) in offsets.iter().enumerate().take(20) {
            let st = ts("2026-01-05T00:00:00Z") + SignedDuration::from_secs(*o);
            ovs.push(Override { id: None, user: format!("o{i}"), start: st, end: st + SignedDuration::from_hours(5) });
        }
        let s = three_layers(ovs);
        let from = ts("2026-01-01T00:00:00Z");
        let to = ts("2026-03-15T00:00:00Z");
        let idx = ScheduleIndex::build(&s, from, to);
        for o in &offsets {
            let t = from + SignedDuration::from_secs(*o + 7);
            prop_assert_eq!(idx.who_is_on_call(t), s.who_is_on_call(t));
        }
    }
}
