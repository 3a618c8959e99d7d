//! Expired silences leave the engine's memory and the Store `expired_silence_age` after
//! they ended (Alertmanager's `--data.retention` garbage collection); part of the
//! eviction suite, run over the same stores.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use signalcraft_core::CoreError;
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::engine::{Engine, EngineConfig};
use signalcraft_core::incident::Actor;
use signalcraft_core::memory::MemoryScheduler;
use signalcraft_core::model::Labels;
use signalcraft_core::routing::MatcherSpec;
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::silence::{Silence, SilenceSpec, SilenceState};
use signalcraft_core::store::{Store, Table};

use super::StoreFactory;

/// An engine on a manual clock and a store from the factory.
pub struct Rig {
    pub engine: Engine,
    pub clock: ManualClock,
    pub store: Arc<dyn Store>,
    scheduler: Arc<dyn Scheduler>,
    age: String,
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("time")
}

fn at(d: Duration) -> Timestamp {
    t0() + SignedDuration::try_from(d).expect("duration")
}

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const MS: Duration = Duration::from_millis(1);

impl Rig {
    /// A fresh engine at t0 (recovered from whatever the store holds).
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
        let config: EngineConfig =
            serde_json::from_value(json!({ "expired_silence_age": age })).expect("config");
        let store = stores.open();
        let engine = Engine::builder(config)
            .store(store.clone())
            .scheduler(scheduler.clone())
            .clock(Arc::new(clock.clone()))
            .build()
            .expect("engine");
        engine.recover().await.expect("recover");
        Rig {
            engine,
            clock,
            store,
            scheduler,
            age: age.into(),
        }
    }

    /// Drops this engine and its store, then starts a new engine on the same data and
    /// clock (what a server restart does).
    pub async fn restart(self, stores: &dyn StoreFactory) -> Rig {
        let Rig {
            engine,
            clock,
            store,
            scheduler,
            age,
        } = self;
        drop(engine);
        drop(store);
        Self::build(stores, &age, clock, scheduler).await
    }

    /// Moves the clock to `t` and runs what is due, as the run loop would.
    pub async fn run_at(&self, t: Timestamp) {
        let now = self.clock.now();
        assert!(t >= now, "the clock only moves forward");
        self.clock
            .advance(Duration::try_from(t.duration_since(now)).expect("forward"));
        self.engine.run_due_jobs().await.expect("run due jobs");
    }

    /// A silence of `team=<team>` from `starts` to `ends` (offsets from t0).
    pub async fn silence(&self, team: &str, starts: Duration, ends: Duration) -> Silence {
        let spec = SilenceSpec {
            id: None,
            matchers: vec![MatcherSpec::Text(format!("team={team}"))],
            starts_at: Some(at(starts)),
            ends_at: at(ends),
            created_by: "ann".into(),
            comment: "maintenance".into(),
        };
        self.engine
            .put_silence(spec, user())
            .await
            .expect("put silence")
    }

    /// Whether the engine lists the silence (and `get` finds it).
    pub fn listed(&self, id: &str) -> bool {
        let listed = self.engine.list_silences(None).iter().any(|s| s.id == id);
        let got = match self.engine.get_silence(id) {
            Ok(_) => true,
            Err(CoreError::NotFound { .. }) => false,
            Err(e) => panic!("get_silence({id}): {e}"),
        };
        assert_eq!(listed, got, "list and get agree for {id}");
        listed
    }

    /// Whether the Store holds the silence's record.
    pub async fn stored(&self, id: &str) -> bool {
        self.store
            .get(Table::Silences, id)
            .await
            .expect("store get")
            .is_some()
    }

    /// The engine's next wake-up.
    pub async fn next_wakeup(&self) -> Option<Timestamp> {
        self.engine.next_wakeup().await.expect("next wakeup")
    }
}

fn user() -> Actor {
    Actor::User { id: "ann".into() }
}

fn team(t: &str) -> Labels {
    [("team".to_string(), t.to_string())].into()
}

/// An expired silence is listed (and stored) until exactly `ends_at` + the age; the
/// sweep one millisecond later removes it from memory and deletes its record. Active
/// and pending silences stay, and go on muting.
pub async fn expired_silence_goes_after_the_age(stores: &dyn StoreFactory) {
    let rig = Rig::new(stores, "1h").await;
    let ended = rig.silence("db", Duration::ZERO, 10 * MIN).await;
    let active = rig.silence("web", Duration::ZERO, 30 * 24 * HOUR).await;
    let pending = rig.silence("api", 3 * HOUR, 5 * HOUR).await;
    // The run loop wakes for the sweep, not earlier.
    assert_eq!(rig.next_wakeup().await, Some(at(10 * MIN + HOUR + MS)));

    rig.run_at(at(10 * MIN)).await;
    assert_eq!(
        rig.engine
            .get_silence(&ended.id)
            .expect("get")
            .state(at(10 * MIN)),
        SilenceState::Expired
    );
    rig.run_at(at(10 * MIN + HOUR)).await;
    assert!(rig.listed(&ended.id), "listed until exactly the age");
    assert!(rig.stored(&ended.id).await);
    assert_eq!(rig.engine.list_silences(None).len(), 3);

    rig.run_at(at(10 * MIN + HOUR + MS)).await;
    assert!(!rig.listed(&ended.id), "gone one ms after the age");
    assert!(!rig.stored(&ended.id).await, "its record is deleted");
    for s in [&active, &pending] {
        assert!(rig.listed(&s.id), "{} kept", s.id);
        assert!(rig.stored(&s.id).await, "{} stored", s.id);
    }
    // Next sweep: when the pending one (ending first now) is an hour over.
    assert_eq!(rig.next_wakeup().await, Some(at(6 * HOUR + MS)));
    let now = rig.clock.now();
    rig.engine.with_core(|c| {
        assert_eq!(
            c.silences()
                .muted_by(&team("web"), now)
                .map(|s| s.id.clone()),
            Some(active.id.clone())
        );
        assert!(c.silences().muted_by(&team("db"), now).is_none());
        assert_eq!(c.silences().len(), 2);
    });
    rig.run_at(at(3 * HOUR + MIN)).await;
    let now = rig.clock.now();
    rig.engine.with_core(|c| {
        assert_eq!(
            c.silences()
                .muted_by(&team("api"), now)
                .map(|s| s.id.clone()),
            Some(pending.id.clone())
        );
    });
    // The once-pending silence goes an hour after it ended; the active one stays.
    rig.run_at(at(6 * HOUR + MS)).await;
    assert!(!rig.listed(&pending.id) && !rig.stored(&pending.id).await);
    assert!(rig.listed(&active.id) && rig.stored(&active.id).await);
}

/// A silence expired through the API counts from its new `ends_at`.
pub async fn expired_via_the_api_counts_from_the_new_end(stores: &dyn StoreFactory) {
    let rig = Rig::new(stores, "1h").await;
    let s = rig.silence("db", Duration::ZERO, 30 * 24 * HOUR).await;
    rig.run_at(at(5 * MIN)).await;
    let e = rig
        .engine
        .expire_silence(&s.id, user())
        .await
        .expect("expire");
    assert_eq!(e.ends_at, at(5 * MIN));
    assert_eq!(rig.next_wakeup().await, Some(at(5 * MIN + HOUR + MS)));
    rig.run_at(at(5 * MIN + HOUR)).await;
    assert!(rig.listed(&s.id) && rig.stored(&s.id).await);
    rig.run_at(at(5 * MIN + HOUR + MS)).await;
    assert!(!rig.listed(&s.id), "gone from memory");
    assert!(!rig.stored(&s.id).await, "gone from the store");
    assert!(rig.engine.list_silences(None).is_empty());
    assert_eq!(rig.next_wakeup().await, None, "nothing left to sweep");
}

/// With `0s`, an expired silence goes at the first sweep after it ended.
pub async fn zero_age_removes_at_the_next_sweep(stores: &dyn StoreFactory) {
    let rig = Rig::new(stores, "0s").await;
    let s = rig.silence("db", Duration::ZERO, 10 * MIN).await;
    rig.run_at(at(10 * MIN)).await;
    assert!(rig.listed(&s.id), "ended exactly now: still listed");
    rig.run_at(at(10 * MIN + MS)).await;
    assert!(!rig.listed(&s.id) && !rig.stored(&s.id).await);
}

/// After a restart, a silence that ended longer ago than the age is not loaded, and
/// the first sweep deletes its record; younger expired ones and active ones load.
pub async fn restart_leaves_old_expired_silences_out(stores: &dyn StoreFactory) {
    let rig = Rig::new(stores, "1h").await;
    let old = rig.silence("db", Duration::ZERO, 10 * MIN).await;
    let young = rig.silence("api", Duration::ZERO, 80 * MIN).await;
    let active = rig.silence("web", Duration::ZERO, 30 * 24 * HOUR).await;
    // The clock moves while the engine is down: no sweep ran.
    rig.clock.advance(2 * HOUR);
    let rig = rig.restart(stores).await;
    assert!(!rig.listed(&old.id), "not loaded");
    assert!(rig.listed(&young.id) && rig.listed(&active.id));
    // Its record is still there until the first sweep, which is due now.
    assert!(rig.stored(&old.id).await);
    assert_eq!(rig.next_wakeup().await, Some(at(2 * HOUR)));
    rig.run_at(at(2 * HOUR)).await;
    assert!(!rig.stored(&old.id).await, "the first sweep deleted it");
    assert!(rig.stored(&young.id).await && rig.stored(&active.id).await);
    assert!(rig.listed(&young.id), "ended 40 min ago: still listed");
    assert_eq!(rig.next_wakeup().await, Some(at(80 * MIN + HOUR + MS)));
    let now = rig.clock.now();
    rig.engine.with_core(|c| {
        assert_eq!(
            c.silences()
                .muted_by(&team("web"), now)
                .map(|s| s.id.clone()),
            Some(active.id.clone())
        );
    });
    // And it stays gone after another restart.
    let rig = rig.restart(stores).await;
    assert!(!rig.listed(&old.id));
    assert_eq!(rig.engine.list_silences(None).len(), 2);
}
