//! The retention sweep's guard over a real engine (redb store, manual clock): an
//! incident counts as in use until the engine evicted it from memory, an alert until
//! the engine retired it; the sweep removes neither while in use, even with an age of
//! zero, and removes both once the engine let go.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use signalcraft_core::channel::{Channel, Delivered, DeliveryError, Notification};
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::engine::{ChannelNotifier, Engine, EngineConfig};
use signalcraft_core::incident::Actor;
use signalcraft_core::model::Event;
use signalcraft_core::store::{Store, Table};
use signalcraft_core::testing::fixtures::firing_alert;
use signalcraft_server::retention::EngineGuard;
use signalcraft_store::RedbStore;
use signalcraft_store::RetentionPolicy;
use signalcraft_store::retention::RetentionGuard;

struct Sink;

#[async_trait]
impl Channel for Sink {
    fn kind(&self) -> &str {
        "test"
    }
    fn name(&self) -> &str {
        "sink"
    }
    async fn deliver(&self, _n: &Notification) -> Result<Delivered, DeliveryError> {
        Ok(Delivered::default())
    }
}

/// An engine on `store` (group_wait 1 s, closed incidents leave memory after 1 h) on a
/// manual clock at 2026-01-01, notifying the sink, recovered.
async fn engine_on(store: Arc<dyn Store>) -> (Engine, ManualClock) {
    let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
        "route": {"group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
                  "repeat_interval": "4h", "notify": [{"channel": "sink", "target": "#ops"}]},
        "closed_incident_memory_age": "1h",
    }))
    .expect("config");
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse::<Timestamp>().expect("t"));
    let engine = Engine::builder(cfg)
        .store(store)
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(
            ChannelNotifier::new().with("sink", Arc::new(Sink)),
        ))
        .build()
        .expect("engine");
    engine.recover().await.expect("recover");
    (engine, clock)
}

#[tokio::test]
async fn nothing_the_engine_holds_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path().join("s.redb")).expect("open"));
    let (engine, clock) = engine_on(store.clone()).await;
    let guard = EngineGuard(engine.clone());
    // An age of zero: anything closed is due, only the guard keeps things.
    let policy = RetentionPolicy::for_engine(Duration::ZERO);
    let sweep = || async {
        policy
            .run_guarded::<_, std::io::Sink>(store.as_ref(), clock.now(), None, &guard)
            .await
            .expect("sweep")
    };

    let fire = |name: &str| firing_alert(name, "db-1:9100");
    let Event::Alert(first) = fire("First") else {
        panic!("an alert")
    };
    let fp = first.fingerprint().to_string();
    // Two incidents, so the one under test is not the highest-numbered (always kept).
    engine
        .ingest(vec![Event::Alert(first.clone())])
        .await
        .expect("ingest");
    clock.advance(Duration::from_secs(2));
    engine.run_due_jobs().await.expect("flush");
    engine.ingest(vec![fire("Second")]).await.expect("ingest");
    clock.advance(Duration::from_secs(2));
    engine.run_due_jobs().await.expect("flush");
    let id = signalcraft_core::incident::Incident::id_for(1);
    assert_eq!(engine.get_incident(&id).expect("open").number, 1);
    assert!(guard.incident_in_use(&id) && guard.alert_in_use(&fp));

    // Resolve the alert (retired at the next flush) and close the incident.
    let mut resolved = first.clone();
    resolved.status = signalcraft_core::model::AlertStatus::Resolved;
    engine
        .ingest(vec![Event::Alert(resolved)])
        .await
        .expect("ingest");
    clock.advance(Duration::from_secs(2));
    engine.run_due_jobs().await.expect("flush");
    if engine.get_incident(&id).expect("in memory").state
        != signalcraft_core::incident::IncidentState::Resolved
    {
        engine.resolve(&id, Actor::System).await.expect("resolve");
    }
    engine.close(&id, Actor::System).await.expect("close");
    assert!(!guard.alert_in_use(&fp), "retired: no longer in memory");
    assert!(guard.incident_in_use(&id), "closed, not evicted yet");
    clock.advance(Duration::from_secs(60));
    let report = sweep().await;
    assert_eq!(report.incidents, 0, "closed but in memory: {report:?}");
    assert!(
        store
            .get(Table::Incidents, &id)
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        store.get(Table::Alerts, &fp).await.expect("get").is_some(),
        "listed by an incident in use"
    );

    // The engine evicts it an hour after it closed; the next sweep removes it.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(engine.evict_closed_incidents().await, 1);
    assert!(!guard.incident_in_use(&id));
    let report = sweep().await;
    assert_eq!(report.incidents, 1, "{report:?}");
    assert_eq!(report.alerts, 1, "{report:?}");
    assert!(
        store
            .get(Table::Incidents, &id)
            .await
            .expect("get")
            .is_none()
    );
    assert!(store.get(Table::Alerts, &fp).await.expect("get").is_none());
    assert!(matches!(
        engine.fetch_incident(&id).await,
        Err(signalcraft_core::CoreError::NotFound { .. })
    ));
    // The second incident is open: it and its alert stay.
    let second = signalcraft_core::incident::Incident::id_for(2);
    assert!(guard.incident_in_use(&second));
    assert!(
        store
            .get(Table::Incidents, &second)
            .await
            .expect("get")
            .is_some()
    );
}

/// The server's sweep with `compact = true` over a real engine: 300 old closed
/// incidents go (the highest-numbered stays), their timelines land in the archive,
/// the metrics count them, and the file shrinks.
#[tokio::test]
async fn the_sweep_archives_counts_and_compacts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redb = Arc::new(RedbStore::open(dir.path().join("s.redb")).expect("open"));
    let store: Arc<dyn Store> = redb.clone();
    let (engine, clock) = engine_on(store.clone()).await;
    const N: usize = 301;
    let alerts: Vec<signalcraft_core::model::Alert> = (0..N)
        .map(|i| match firing_alert(&format!("Disk{i}"), "db-1:9100") {
            Event::Alert(a) => a,
            _ => panic!("an alert"),
        })
        .collect();
    engine
        .ingest(alerts.iter().cloned().map(Event::Alert).collect())
        .await
        .expect("ingest");
    clock.advance(Duration::from_secs(2));
    engine.run_due_jobs().await.expect("flush");
    let resolved: Vec<Event> = alerts
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a.status = signalcraft_core::model::AlertStatus::Resolved;
            Event::Alert(a)
        })
        .collect();
    engine.ingest(resolved).await.expect("ingest");
    clock.advance(Duration::from_secs(2));
    engine.run_due_jobs().await.expect("flush");
    for n in 1..=N as u64 {
        let id = signalcraft_core::incident::Incident::id_for(n);
        if engine.get_incident(&id).expect("in memory").state
            != signalcraft_core::incident::IncidentState::Resolved
        {
            engine.resolve(&id, Actor::System).await.expect("resolve");
        }
        engine.close(&id, Actor::System).await.expect("close");
    }
    clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(engine.evict_closed_incidents().await, N);
    clock.advance(Duration::from_secs(2 * 86_400));

    let archive = dir.path().join("archive");
    let section = signalcraft_server::config::RetentionSection {
        closed_incident_age: "1d".into(),
        archive_dir: Some(archive.clone()),
        compact: true,
        ..Default::default()
    };
    let metrics = Arc::new(signalcraft_server::metrics::Metrics::new());
    let sweeper = signalcraft_server::retention::Sweeper::new(
        &section,
        dir.path(),
        engine.clone(),
        Some(redb.clone()),
        Arc::new(clock.clone()),
        metrics.clone(),
    )
    .expect("sweeper")
    .expect("retention on");
    let before = redb.file_size().expect("size");
    let report = sweeper.sweep().await.expect("sweep");
    assert_eq!(report.incidents, N as u64 - 1, "{report:?}");
    assert_eq!(report.alerts, N as u64 - 1, "{report:?}");
    assert_eq!(store.count(Table::Incidents).await.expect("count"), 1);
    let after = redb.file_size().expect("size");
    assert!(after < before, "compacted: {before} -> {after} bytes");
    let day = clock.now().strftime("%Y-%m-%d").to_string();
    let text =
        std::fs::read_to_string(archive.join(format!("timeline-{day}.jsonl"))).expect("archive");
    let ids: std::collections::HashSet<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            assert!(v["entry"].is_object() || v["entry"].is_array(), "{l}");
            v["incident"].as_str().map(str::to_owned).expect("incident")
        })
        .collect();
    assert_eq!(ids.len(), N - 1);
    assert_eq!(report.archived as usize, text.lines().count());
    let m = metrics.encode();
    assert!(
        m.contains(&format!(
            "signalcraft_retention_removed_total{{kind=\"incidents\"}} {}",
            N - 1
        )),
        "{m}"
    );
    // Nothing left to do: the next sweep removes nothing.
    assert_eq!(sweeper.sweep().await.expect("sweep").incidents, 0);
}
