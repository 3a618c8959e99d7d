//! Closed incidents leave the engine's memory `closed_incident_memory_age` after they
//! closed and are still served, from the Store: one suite, run over the in-memory store
//! (signalcraft-core/tests/closed_incident_eviction.rs) and redb
//! (signalcraft-store/tests/closed_incident_eviction.rs, which includes this file).
//!
//! Every check compares whole JSON: what the engine answered before the eviction (or
//! before a restart) against what it answers after. [`silences`]: expired silences
//! leaving memory and the Store, over the same stores.

#![allow(dead_code)]

pub mod silences;

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use signalcraft_core::CoreError;
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::engine::{ChannelNotifier, Engine, EngineConfig};
use signalcraft_core::incident::{Actor, IncidentFilter, IncidentState, Role, Urgency};
use signalcraft_core::memory::MemoryScheduler;
use signalcraft_core::model::{AlertStatus, ChangeEvent, Event, Source};
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::store::{Store, Table};
use signalcraft_core::testing::channel::ScriptedChannel;
use signalcraft_core::testing::fixtures::firing_alert;

/// Opens the store under test; called again after the previous engine (and store) were
/// dropped, it reopens the same data.
pub trait StoreFactory {
    /// The store (the same data on every call).
    fn open(&self) -> Arc<dyn Store>;
}

/// An engine on a manual clock, a store from the factory and a scheduler that outlives
/// the engine (restarts).
pub struct Rig {
    pub engine: Engine,
    pub clock: ManualClock,
    pub scheduler: Arc<dyn Scheduler>,
    age: String,
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("time")
}

fn config(age: &str) -> EngineConfig {
    serde_json::from_value(json!({
        "route": {
            "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
            "repeat_interval": "4h", "notify": [{"channel": "rec", "target": "#ops"}],
            "escalation_policy": "primary",
            "routes": [{"matchers": ["alertname=~Api.*"], "service": "api", "urgency": "low"}]
        },
        "services": [{"id": "api", "name": "Public API"}],
        "closed_incident_memory_age": age,
    }))
    .expect("config")
}

impl Rig {
    /// A fresh engine (recovered from whatever the store holds).
    pub async fn new(stores: &dyn StoreFactory, age: &str) -> Rig {
        Self::build(
            stores,
            age,
            ManualClock::new(t0()),
            Arc::new(MemoryScheduler::new()),
        )
        .await
    }

    async fn build(
        stores: &dyn StoreFactory,
        age: &str,
        clock: ManualClock,
        scheduler: Arc<dyn Scheduler>,
    ) -> Rig {
        let engine = Engine::builder(config(age))
            .store(stores.open())
            .scheduler(scheduler.clone())
            .clock(Arc::new(clock.clone()))
            .notifier(Arc::new(
                ChannelNotifier::new().with("rec", ScriptedChannel::new("test", "rec")),
            ))
            .build()
            .expect("engine");
        engine.recover().await.expect("recover");
        Rig {
            engine,
            clock,
            scheduler,
            age: age.into(),
        }
    }

    /// Drops this engine and its store, then starts a new engine on the same data,
    /// clock and scheduler (what a server restart does).
    pub async fn restart(self, stores: &dyn StoreFactory) -> Rig {
        let Rig {
            engine,
            clock,
            scheduler,
            age,
        } = self;
        drop(engine);
        Self::build(stores, &age, clock, scheduler).await
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves the clock forward and runs what is due, as the run loop would.
    pub async fn advance(&self, d: Duration) {
        self.clock.advance(d);
        self.engine.run_due_jobs().await.expect("run due jobs");
    }

    pub fn in_memory(&self) -> usize {
        self.engine.with_core(|c| c.incident_count())
    }

    /// Fires one alert per name and flushes: one incident per name (names starting
    /// with `Api` route to the `api` service). Returns their ids in the order of the
    /// names.
    pub async fn open(&self, names: &[String]) -> Vec<String> {
        let events = names.iter().map(|n| firing_alert(n, "1")).collect();
        self.engine.ingest(events).await.expect("ingest");
        self.advance(Duration::from_secs(1)).await;
        let page = self
            .engine
            .list_incidents(&IncidentFilter {
                limit: 500,
                ..Default::default()
            })
            .items;
        names
            .iter()
            .map(|n| {
                page.iter()
                    .find(|i| {
                        // The fixture's summary, which becomes the title.
                        i.state == IncidentState::Open && i.title == format!("{n} is firing")
                    })
                    .map(|i| i.id.clone())
                    .expect("an open incident per name")
            })
            .collect()
    }

    /// Resolves the named alerts (as their source would) and flushes: their incidents
    /// resolve.
    pub async fn resolve_alerts(&self, names: &[String]) {
        let events = names
            .iter()
            .map(|n| {
                let Event::Alert(mut a) = firing_alert(n, "1") else {
                    unreachable!("an alert")
                };
                a.status = AlertStatus::Resolved;
                Event::Alert(a)
            })
            .collect();
        self.engine.ingest(events).await.expect("ingest resolved");
        self.advance(Duration::from_secs(1)).await;
    }

    /// Closes incidents (resolving those the flush did not).
    pub async fn close(&self, ids: &[String]) {
        for id in ids {
            let inc = self.engine.get_incident(id).expect("in memory");
            if inc.state != IncidentState::Resolved {
                self.engine
                    .resolve(id, Actor::user("ann"))
                    .await
                    .expect("resolve");
            }
            self.engine
                .close(id, Actor::user("ann"))
                .await
                .expect("close");
        }
    }

    /// Everything the engine answers about one incident, as JSON.
    pub async fn detail(&self, id: &str) -> Value {
        let e = &self.engine;
        let inc = e.fetch_incident(id).await.expect("incident");
        json!({
            "incident": inc,
            "by_number": e.fetch_incident(&inc.number.to_string()).await.expect("by number"),
            "timeline": e.timeline(id).await.expect("timeline"),
            "alerts": e.incident_alerts(id).await.expect("alerts"),
            "recent_changes": e.recent_changes_of(&inc, None),
        })
    }

    /// Every page of every filter in [`filters`], paged with small page sizes and
    /// followed to the end by the `next` cursor, as JSON.
    pub async fn listings(&self) -> Value {
        let mut out = Vec::new();
        for f in filters() {
            let mut pages = Vec::new();
            let mut f = f.clone();
            loop {
                let page = self.engine.fetch_incidents(&f).await.expect("list");
                let next = page.next.clone();
                pages.push(serde_json::to_value(&page).expect("json"));
                match next {
                    Some(n) => f.before = Some(n),
                    None => break,
                }
                assert!(pages.len() < 1000, "pagination ends");
            }
            out.push(json!({"filter": f, "pages": pages}));
        }
        Value::Array(out)
    }
}

/// Filters the listings compare: states, service, urgency, user, page sizes, a cursor.
fn filters() -> Vec<IncidentFilter> {
    let with = |f: IncidentFilter, limit: usize| IncidentFilter { limit, ..f };
    let mut out = Vec::new();
    for limit in [0, 1, 2, 3] {
        out.push(with(IncidentFilter::default(), limit));
        out.push(with(
            IncidentFilter {
                states: vec![IncidentState::Closed],
                ..Default::default()
            },
            limit,
        ));
        out.push(with(
            IncidentFilter {
                states: vec![IncidentState::Open, IncidentState::Closed],
                ..Default::default()
            },
            limit,
        ));
        out.push(with(
            IncidentFilter {
                states: vec![IncidentState::Open, IncidentState::Acknowledged],
                ..Default::default()
            },
            limit,
        ));
        out.push(with(
            IncidentFilter {
                service: Some("api".into()),
                ..Default::default()
            },
            limit,
        ));
        out.push(with(
            IncidentFilter {
                urgency: Some(Urgency::High),
                ..Default::default()
            },
            limit,
        ));
        out.push(with(
            IncidentFilter {
                user: Some("bob".into()),
                ..Default::default()
            },
            limit,
        ));
        out.push(with(
            IncidentFilter {
                before: Some("inc-0000000005".into()),
                ..Default::default()
            },
            limit,
        ));
    }
    out
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A mix: closed incidents with notes, roles and a recent change on their service, an
/// acknowledged one, an open one; returns (closed, still active) ids.
async fn mixed(r: &Rig) -> (Vec<String>, Vec<String>) {
    let change = ChangeEvent {
        source: Source {
            provider: "github".into(),
            integration: "gh".into(),
        },
        summary: "deploy v2".into(),
        timestamp: r.now(),
        service: Some("api".into()),
        repository: None,
        labels: Default::default(),
        links: vec![],
        details: Value::Null,
        raw: Default::default(),
    };
    r.engine
        .ingest(vec![Event::Change(change)])
        .await
        .expect("change");
    let api = names("Api", 3);
    let other = names("Db", 3);
    let api_ids = r.open(&api).await;
    let other_ids = r.open(&other).await;
    let e = &r.engine;
    for id in api_ids.iter().chain(&other_ids) {
        e.add_note(id, Actor::user("ann"), format!("looking at {id}"))
            .await
            .expect("note");
    }
    e.assign_role(&api_ids[1], Actor::user("ann"), Role::Commander, "bob")
        .await
        .expect("role");
    e.assign_role(&other_ids[0], Actor::user("ann"), Role::Scribe, "bob")
        .await
        .expect("role");
    r.resolve_alerts(&api[..2]).await;
    r.resolve_alerts(&other[..2]).await;
    let closed: Vec<String> = vec![
        api_ids[0].clone(),
        api_ids[1].clone(),
        other_ids[0].clone(),
        other_ids[1].clone(),
    ];
    r.close(&closed).await;
    e.acknowledge(&other_ids[2], Actor::user("ann"))
        .await
        .expect("ack");
    (closed, vec![api_ids[2].clone(), other_ids[2].clone()])
}

// ----- the suite -------------------------------------------------------------------

/// Eviction happens once the age has passed on the clock, not a moment before; the run
/// loop's next wake-up is the moment it is due.
pub async fn eviction_waits_for_the_age(stores: &dyn StoreFactory) {
    let r = Rig::new(stores, "10m").await;
    let ids = r.open(&names("A", 1)).await;
    r.resolve_alerts(&names("A", 1)).await;
    r.close(&ids).await;
    let closed_at = r
        .engine
        .get_incident(&ids[0])
        .expect("in memory")
        .closed_at
        .expect("closed");
    let due = closed_at + SignedDuration::from_mins(10);
    // The group's last flush (its alert resolved) comes first.
    while let Some(t) = r.engine.next_wakeup().await.expect("wakeup") {
        if t >= due {
            break;
        }
        r.clock.set(t.max(r.now()));
        r.engine.run_due_jobs().await.expect("run");
    }
    assert_eq!(
        r.engine.next_wakeup().await.expect("wakeup"),
        Some(due),
        "the run loop wakes when the eviction is due"
    );
    // An incident that stays open across the eviction.
    let open = r.open(&names("B", 1)).await;
    assert_eq!(r.in_memory(), 2);

    // Step through every wake-up up to just before the age.
    let just_before = due - SignedDuration::from_millis(1);
    while let Some(t) = r.engine.next_wakeup().await.expect("wakeup") {
        assert!(t <= due, "never sleeps past the eviction");
        if t > just_before {
            break;
        }
        r.clock.set(t.max(r.now()));
        r.engine.run_due_jobs().await.expect("run");
    }
    r.clock.set(just_before);
    r.engine.run_due_jobs().await.expect("run");
    assert_eq!(r.in_memory(), 2, "not before the age");
    assert!(r.engine.get_incident(&ids[0]).is_ok());

    r.clock.set(due);
    r.engine.run_due_jobs().await.expect("run");
    assert_eq!(r.in_memory(), 1, "evicted at the age");
    assert!(matches!(
        r.engine.get_incident(&ids[0]),
        Err(CoreError::NotFound { .. })
    ));
    assert!(r.engine.get_incident(&open[0]).is_ok(), "open one stays");
    assert!(
        r.engine
            .next_wakeup()
            .await
            .expect("wakeup")
            .is_none_or(|t| t > due),
        "nothing left due"
    );
}

/// get and list answer the same, whole JSON, before and after the eviction; before it
/// the merged listing is exactly the in-memory one.
pub async fn reads_are_unchanged_by_eviction(stores: &dyn StoreFactory) {
    let r = Rig::new(stores, "1h").await;
    let (closed, active) = mixed(&r).await;
    let all: Vec<String> = closed.iter().chain(&active).cloned().collect();
    let mut before = Vec::new();
    for id in &all {
        before.push(r.detail(id).await);
    }
    let listed_before = r.listings().await;
    // What there is to compare: a closed incident of the api service with a recent
    // change, a note and a role holder; its alerts and timeline.
    let api = &before[1];
    assert_eq!(api["incident"]["state"], "closed");
    assert_eq!(api["incident"]["service"], "api");
    assert_eq!(api["incident"]["roles"]["commander"], "bob");
    assert_eq!(api["incident"]["notes"].as_array().map(Vec::len), Some(1));
    assert_eq!(api["recent_changes"].as_array().map(Vec::len), Some(1));
    assert_eq!(api["alerts"].as_array().map(Vec::len), Some(1));
    assert!(api["timeline"].as_array().is_some_and(|t| t.len() > 5));
    for f in filters() {
        let mut f = f.clone();
        loop {
            let merged = r.engine.fetch_incidents(&f).await.expect("list");
            assert_eq!(merged, r.engine.list_incidents(&f), "{f:?}");
            match merged.next {
                Some(n) => f.before = Some(n),
                None => break,
            }
        }
    }

    r.advance(Duration::from_secs(3600)).await;
    assert_eq!(r.in_memory(), active.len(), "the closed ones left");
    for (id, want) in all.iter().zip(&before) {
        assert_eq!(&r.detail(id).await, want, "{id}");
    }
    assert_eq!(r.listings().await, listed_before);
    assert_eq!(r.in_memory(), active.len(), "reads load nothing back");
}

/// An action on an evicted incident loads it back, applies, and it leaves again at
/// the next sweep; its note is stored and served.
pub async fn an_action_on_an_evicted_incident(stores: &dyn StoreFactory) {
    let r = Rig::new(stores, "0s").await;
    let ids = r.open(&names("A", 1)).await;
    r.resolve_alerts(&names("A", 1)).await;
    r.close(&ids).await;
    r.advance(Duration::from_millis(1)).await;
    assert_eq!(r.in_memory(), 0, "age 0: evicted at the next sweep");
    let inc = r
        .engine
        .add_note(&ids[0], Actor::user("ann"), "postmortem linked")
        .await
        .expect("note on an evicted incident");
    assert_eq!(inc.state, IncidentState::Closed);
    assert_eq!(
        inc.notes.last().map(|n| n.text.as_str()),
        Some("postmortem linked")
    );
    let err = r
        .engine
        .acknowledge(&ids[0], Actor::user("ann"))
        .await
        .expect_err("closed is terminal");
    assert!(matches!(err, CoreError::InvalidTransition { .. }), "{err}");
    r.advance(Duration::from_millis(1)).await;
    assert_eq!(r.in_memory(), 0, "left again");
    let stored = r.engine.fetch_incident(&ids[0]).await.expect("stored");
    assert_eq!(stored, inc);
    let tl = r.engine.timeline(&ids[0]).await.expect("timeline");
    assert_eq!(tl.last().map(|e| e.kind.type_name()), Some("note"));
}

/// A group that fires again after its incident closed gets a new incident (evicted or
/// not), numbered after it; a resolved incident re-opens as before.
pub async fn a_new_alert_after_close_opens_a_new_incident(stores: &dyn StoreFactory) {
    let r = Rig::new(stores, "0s").await;
    let a = names("A", 1);
    let b = names("B", 1);
    let first_a = r.open(&a).await;
    let first_b = r.open(&b).await;
    r.resolve_alerts(&a).await;
    r.resolve_alerts(&b).await;
    r.close(&first_a).await;
    r.advance(Duration::from_millis(1)).await;
    assert!(r.engine.get_incident(&first_a[0]).is_err(), "evicted");
    assert_eq!(
        r.engine.get_incident(&first_b[0]).expect("b").state,
        IncidentState::Resolved
    );

    let again_a = r.open(&a).await;
    assert_ne!(again_a, first_a, "closed: a new incident");
    let again_b = r.open(&b).await;
    assert_eq!(again_b, first_b, "resolved: re-opened");
    let n = |id: &str| {
        id.trim_start_matches("inc-")
            .parse::<u64>()
            .expect("number")
    };
    assert_eq!(n(&again_a[0]), n(&first_b[0]) + 1);
    assert_eq!(
        r.engine
            .fetch_incident(&first_a[0])
            .await
            .expect("old")
            .state,
        IncidentState::Closed
    );
}

/// After a restart, incidents closed longer than the age are not loaded, yet served
/// exactly as before; recent closed ones and active ones are loaded; numbering goes on.
pub async fn restart_leaves_old_closed_incidents_in_the_store(stores: &dyn StoreFactory) {
    let r = Rig::new(stores, "1h").await;
    let (closed, active) = mixed(&r).await;
    // Closed later: still young at the restart.
    let young = r.open(&names("Young", 1)).await;
    r.advance(Duration::from_secs(1800)).await;
    r.resolve_alerts(&names("Young", 1)).await;
    r.close(&young).await;
    // Taken while every incident is in memory.
    assert_eq!(r.in_memory(), closed.len() + active.len() + young.len());
    let all: Vec<String> = closed
        .iter()
        .chain(&active)
        .chain(&young)
        .cloned()
        .collect();
    let mut before = Vec::new();
    for id in &all {
        before.push(r.detail(id).await);
    }
    let listed_before = r.listings().await;
    r.advance(Duration::from_secs(1900)).await;

    let r = r.restart(stores).await;
    assert_eq!(
        r.in_memory(),
        active.len() + young.len(),
        "old closed incidents are not loaded"
    );
    for id in &closed {
        assert!(r.engine.get_incident(id).is_err(), "{id} not in memory");
    }
    for (id, want) in all.iter().zip(&before) {
        assert_eq!(&r.detail(id).await, want, "{id}");
    }
    assert_eq!(r.listings().await, listed_before);
    // The young one leaves at its age, after the restart too.
    r.advance(Duration::from_secs(1800)).await;
    assert_eq!(r.in_memory(), active.len());
    let next = r.open(&names("After", 1)).await;
    let max = all.iter().max().expect("some").clone();
    assert!(next[0] > max, "{} after {max}", next[0]);
}

/// 1,000 incidents opened and closed: the engine holds at most one round's worth at a
/// time, every one is in the Store and listed, and the last one is served whole.
pub async fn memory_stays_bounded(stores: &dyn StoreFactory, incidents: usize, round: usize) {
    let r = Rig::new(stores, "0s").await;
    let mut peak = 0;
    let mut last = String::new();
    for k in 0..incidents.div_ceil(round) {
        let n: Vec<String> = (0..round)
            .map(|i| k * round + i)
            .take_while(|i| *i < incidents)
            .map(|i| format!("N{i}"))
            .collect();
        let ids = r.open(&n).await;
        peak = peak.max(r.in_memory());
        r.resolve_alerts(&n).await;
        r.close(&ids).await;
        peak = peak.max(r.in_memory());
        r.advance(Duration::from_millis(1)).await;
        assert_eq!(r.in_memory(), 0, "round {k}: all evicted");
        last = ids.last().cloned().unwrap_or_default();
    }
    assert!(peak <= round, "peak {peak} > {round}");
    let store = r.engine.store().clone();
    assert_eq!(
        store.count(Table::Incidents).await.expect("count"),
        incidents as u64
    );
    let mut f = IncidentFilter {
        states: vec![IncidentState::Closed],
        limit: 500,
        ..Default::default()
    };
    let mut listed = 0;
    loop {
        let page = r.engine.fetch_incidents(&f).await.expect("list");
        listed += page.items.len();
        match page.next {
            Some(n) => f.before = Some(n),
            None => break,
        }
    }
    assert_eq!(listed, incidents);
    assert_eq!(r.in_memory(), 0, "listing loads nothing back");
    let d = r.detail(&last).await;
    assert_eq!(d["incident"]["state"], "closed");
    assert!(d["timeline"].as_array().is_some_and(|t| t.len() >= 4));
}

/// The newest incident, left in the store at a restart, still counts: the next incident
/// gets the next number (no id is reused) and the next round-robin cursor.
pub async fn counters_continue_past_incidents_left_in_the_store(stores: &dyn StoreFactory) {
    let r = Rig::new(stores, "1h").await;
    let kept = r.open(&names("Kept", 1)).await;
    let gone = r.open(&names("Gone", 1)).await;
    r.resolve_alerts(&names("Gone", 1)).await;
    r.close(&gone).await;
    let newest = r.engine.get_incident(&gone[0]).expect("in memory");
    assert!(newest.id > kept[0]);
    assert_eq!(newest.escalation_policy.as_deref(), Some("primary"));
    r.advance(Duration::from_secs(3700)).await;
    let r = r.restart(stores).await;
    assert_eq!(r.in_memory(), 1, "only the open one is loaded");
    let next = r.open(&names("Next", 1)).await;
    let next = r.engine.get_incident(&next[0]).expect("new");
    assert_eq!(next.number, newest.number + 1);
    assert_eq!(next.round_robin_cursor, newest.round_robin_cursor + 1);
    assert_eq!(
        r.engine.fetch_incident(&gone[0]).await.expect("stored"),
        newest,
        "the stored one is untouched"
    );
}
