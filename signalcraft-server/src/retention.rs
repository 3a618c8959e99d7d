//! The `[retention]` sweep: every `interval`, closed incidents older than
//! `closed_incident_age` are removed from the store with their alerts, timeline and
//! notification-log trail ([`signalcraft_store::RetentionPolicy::for_engine`]), their
//! timelines appended to the day's JSON Lines archive first when `archive_dir` is set;
//! silences that ended before the same cutoff go with them; audit entries older than
//! `audit_age` and change events older than `change_age` go too (not archived). The sweep runs when any of the ages is set.
//!
//! Consistent with the engine's eviction (`closed_incident_memory_age`): nothing the
//! engine still holds in memory is removed ([`EngineGuard`]), so an incident always
//! leaves memory before, never after, it leaves the store; the config refuses an age
//! below the memory age. Time is the server's clock (a manual clock in tests).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use signalcraft_core::clock::Clock;
use signalcraft_core::engine::Engine;
use signalcraft_core::model::Fingerprint;
use signalcraft_core::store::Store;
use signalcraft_store::retention::RetentionGuard;
use signalcraft_store::{RedbStore, RetentionPolicy, RetentionReport};
use tokio::sync::watch;

use crate::config::{ConfigError, RetentionSection};
use crate::error::ServerError;
use crate::metrics::Metrics;

/// First sweep after start: at most this long, so a server restarted more often than
/// `interval` still sweeps.
const FIRST_SWEEP_AFTER: Duration = Duration::from_secs(60);

/// Keeps what the engine holds in memory: incidents not evicted yet (open ones and
/// closed ones younger than `closed_incident_memory_age`) and alerts still active.
pub struct EngineGuard(pub Engine);

impl RetentionGuard for EngineGuard {
    fn incident_in_use(&self, id: &str) -> bool {
        self.0.get_incident(id).is_ok()
    }

    fn alert_in_use(&self, key: &str) -> bool {
        match serde_json::from_value::<Fingerprint>(serde_json::Value::String(key.into())) {
            Ok(fp) => self.0.with_core(|c| c.alert_record(fp).is_some()),
            // Not a key the engine writes: keep it.
            Err(_) => true,
        }
    }
}

/// One configured sweep over the server's store.
pub struct Sweeper {
    policy: RetentionPolicy,
    archive_dir: Option<PathBuf>,
    compact: Option<Arc<RedbStore>>,
    store: Arc<dyn Store>,
    guard: EngineGuard,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper")
            .field("max_age", &self.policy.max_age)
            .field("archive_dir", &self.archive_dir)
            .finish_non_exhaustive()
    }
}

impl Sweeper {
    /// The sweep `section` configures, or `None` when `closed_incident_age`,
    /// `audit_age` and `change_age` are all `off`. Creates the archive directory (`archive_dir`, else
    /// `<data_dir>/archive`; none when `archive = false` or incidents are kept) and
    /// checks it is writable; `redb` is the store to compact when
    /// `compact` is on (`None`: a store passed in by an embedder, never compacted).
    pub fn new(
        section: &RetentionSection,
        data_dir: &Path,
        engine: Engine,
        redb: Option<Arc<RedbStore>>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Self>, ServerError> {
        let age = section.max_age().map_err(|m| {
            ServerError::Config(vec![ConfigError {
                path: "retention.closed_incident_age".into(),
                message: m,
            }])
        })?;
        let audit_age = section.audit_max_age().map_err(|m| {
            ServerError::Config(vec![ConfigError {
                path: "retention.audit_age".into(),
                message: m,
            }])
        })?;
        let change_window = engine.with_core(|c| c.config().change_window);
        let change_age = section.change_max_age(change_window).map_err(|m| {
            ServerError::Config(vec![ConfigError {
                path: "retention.change_age".into(),
                message: m,
            }])
        })?;
        if age.is_none() && audit_age.is_none() && change_age.is_none() {
            return Ok(None);
        }
        let archive_dir = age.and_then(|_| section.archive_dir_in(data_dir));
        if let Some(dir) = &archive_dir {
            crate::bootstrap::create_private_dir(dir).map_err(|e| archive_dir_error(dir, &e))?;
            check_writable(dir).map_err(|e| archive_dir_error(dir, &e))?;
        }
        // The engine deletes a silence `expired_silence_age` after it ended; the
        // store's own pass (ended before the incident cutoff) only cleans strays, and
        // must not remove a silence the engine still lists when that age is longer.
        let silence_age = engine.with_core(|c| c.config().expired_silence_age);
        let policy = RetentionPolicy::for_engine(age.unwrap_or(Duration::MAX));
        Ok(Some(Sweeper {
            policy: RetentionPolicy {
                remove_incidents: age.is_some(),
                audit_age,
                change_age,
                expired_silences: policy.expired_silences && age.is_some_and(|a| silence_age <= a),
                ..policy
            },
            archive_dir,
            compact: redb.filter(|_| section.compact),
            store: engine.store().clone(),
            guard: EngineGuard(engine),
            clock,
            metrics,
        }))
    }

    /// Runs one sweep now: removes what is due, logs and counts it, compacts when
    /// configured and something was removed.
    pub async fn sweep(&self) -> Result<RetentionReport, ServerError> {
        let now = self.clock.now();
        let result = match &self.archive_dir {
            Some(dir) => {
                let mut archive = DayArchive::new(dir, now);
                self.policy
                    .run_guarded(self.store.as_ref(), now, Some(&mut archive), &self.guard)
                    .await
            }
            None => {
                self.policy
                    .run_guarded::<_, std::io::Sink>(self.store.as_ref(), now, None, &self.guard)
                    .await
            }
        };
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                self.metrics.retention_failed();
                tracing::warn!(error = %e, "retention sweep failed");
                return Err(ServerError::Other(format!("retention sweep: {e}")));
            }
        };
        self.metrics.retention_swept(&report);
        if report.incidents > 0
            || report.alerts > 0
            || report.notification_log > 0
            || report.audit > 0
            || report.changes > 0
            || report.silences > 0
        {
            tracing::info!(
                incidents = report.incidents,
                alerts = report.alerts,
                timeline_entries = report.timeline_entries,
                archived = report.archived,
                notification_log = report.notification_log,
                abandoned_notifications = report.abandoned_notifications,
                audit = report.audit,
                changes = report.changes,
                silences = report.silences,
                raced = report.raced,
                "retention: removed closed incidents (with their notification-log trail) older than {}, audit entries older than {}, change events older than {}",
                age_text(self.policy.remove_incidents.then_some(self.policy.max_age)),
                age_text(self.policy.audit_age),
                age_text(self.policy.change_age)
            );
            if let Some(redb) = &self.compact {
                match redb.compact().await {
                    Ok(done) => tracing::info!(compacted = done, "retention: store compaction"),
                    Err(e) => tracing::warn!(error = %e, "retention: store compaction failed"),
                }
            }
        } else {
            tracing::debug!("retention: nothing to remove");
        }
        Ok(report)
    }

    /// Sweeps every `interval` (the first one after at most a minute) until
    /// `shutdown` turns true. A sweep cut short by the shutdown removed whole
    /// incidents only.
    pub fn spawn(
        self,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let first = tokio::time::Instant::now() + interval.min(FIRST_SWEEP_AFTER);
            let mut ticks = tokio::time::interval_at(first, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.wait_for(|v| *v) => return,
                    _ = ticks.tick() => {}
                }
                tokio::select! {
                    _ = shutdown.wait_for(|v| *v) => return,
                    // Failures are logged and counted; the next tick tries again.
                    _ = self.sweep() => {}
                }
            }
        })
    }
}

/// An age for the log, or `off`.
fn age_text(age: Option<Duration>) -> String {
    age.map_or_else(
        || "off".to_owned(),
        signalcraft_core::duration::format_duration,
    )
}

fn archive_dir_error(dir: &Path, e: &std::io::Error) -> ServerError {
    ServerError::Config(vec![ConfigError {
        path: "retention.archive_dir".into(),
        message: format!("{}: {e}", dir.display()),
    }])
}

/// Creates and removes a probe file in `dir`.
pub fn check_writable(dir: &Path) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Err(std::io::Error::other("not a directory"));
    }
    let probe = dir.join(format!(".signalcraft-write-check-{}", std::process::id()));
    File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// The day's archive file (`timeline-YYYY-MM-DD.jsonl`, UTC; created mode 0600 on
/// Unix), opened for appending on the first line written; `flush` makes the lines durable (fsync) before the
/// store commits their removal.
struct DayArchive {
    path: PathBuf,
    file: Option<File>,
}

impl DayArchive {
    fn new(dir: &Path, now: Timestamp) -> Self {
        let day = now.strftime("%Y-%m-%d");
        DayArchive {
            path: dir.join(format!("timeline-{day}.jsonl")),
            file: None,
        }
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let mut opts = OpenOptions::new();
            opts.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let f = opts.open(&self.path)?;
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("archive file not open"))
    }
}

impl Write for DayArchive {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let path = self.path.clone();
        self.file()?
            .write(buf)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => {
                f.flush()?;
                f.sync_data()
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signalcraft_core::clock::ManualClock;
    use signalcraft_core::engine::EngineConfig;
    use signalcraft_core::incident::{Actor, AuditQuery};
    use signalcraft_core::memory::MemoryStore;

    /// An engine on a manual clock at `t0` over `store`, a directory and metrics for
    /// a [`Sweeper`].
    fn sweep_rig(
        t0: Timestamp,
        store: Arc<MemoryStore>,
    ) -> (ManualClock, Engine, tempfile::TempDir, Arc<Metrics>) {
        let clock = ManualClock::new(t0);
        let engine = Engine::builder(EngineConfig::default())
            .store(store)
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        (
            clock,
            engine,
            tempfile::tempdir().unwrap(),
            Arc::new(Metrics::new()),
        )
    }

    /// The sweep `section` configures over `engine`, without a redb store to compact.
    fn sweeper_for(
        section: &RetentionSection,
        data_dir: &Path,
        engine: &Engine,
        clock: &ManualClock,
        metrics: &Arc<Metrics>,
    ) -> Option<Sweeper> {
        Sweeper::new(
            section,
            data_dir,
            engine.clone(),
            None,
            Arc::new(clock.clone()),
            metrics.clone(),
        )
        .unwrap()
    }

    /// The `[retention]` section of a config text.
    fn section(text: &str) -> RetentionSection {
        crate::config::parse(text).unwrap().retention
    }

    /// With incidents kept (`closed_incident_age = "off"`) and an `audit_age`, the
    /// sweep still runs, removes only the old audit entries and counts them; with both
    /// off there is no sweep.
    #[tokio::test]
    async fn audit_age_alone_runs_the_sweep() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let (clock, engine, dir, metrics) = sweep_rig(t0, Arc::new(MemoryStore::new()));
        let off = section(
            "[retention]\nclosed_incident_age = \"off\"\naudit_age = \"off\"\nchange_age = \"off\"\n",
        );
        let none = sweeper_for(&off, dir.path(), &engine, &clock, &metrics);
        assert!(none.is_none());

        let s = section(
            "[retention]\nclosed_incident_age = \"off\"\naudit_age = \"30d\"\nchange_age = \"off\"\n",
        );
        let sweeper = sweeper_for(&s, dir.path(), &engine, &clock, &metrics)
            .expect("a sweep for the audit log");
        assert!(
            !dir.path().join("archive").exists(),
            "no timeline archive when incidents are kept"
        );
        engine
            .audit_write(
                Actor::user("ana"),
                "service.put",
                "service/a",
                serde_json::Value::Null,
            )
            .await
            .unwrap();
        clock.advance(Duration::from_secs(20 * 86_400));
        engine
            .audit_write(
                Actor::user("bo"),
                "service.put",
                "service/b",
                serde_json::Value::Null,
            )
            .await
            .unwrap();
        clock.advance(Duration::from_secs(11 * 86_400));
        let report = sweeper.sweep().await.unwrap();
        assert_eq!((report.audit, report.incidents), (1, 0), "{report:?}");
        let left = engine.audit(&AuditQuery::default()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].target, "service/b");
        let text = metrics.encode();
        assert!(
            text.contains("signalcraft_retention_removed_total{kind=\"audit\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("signalcraft_retention_removed_total{kind=\"notification_log\"} 0"),
            "{text}"
        );
    }

    fn change(summary: &str, at: Timestamp) -> signalcraft_core::model::Event {
        signalcraft_core::model::Event::Change(signalcraft_core::model::ChangeEvent {
            source: signalcraft_core::model::Source {
                provider: "github".into(),
                integration: "gh".into(),
            },
            summary: summary.into(),
            timestamp: at,
            service: Some("api".into()),
            repository: None,
            labels: Default::default(),
            links: vec![],
            details: serde_json::Value::Null,
            raw: Default::default(),
        })
    }

    /// The store's silence pass runs only when the engine's `expired_silence_age` is
    /// not longer than `closed_incident_age`: it never removes a silence the engine
    /// still lists.
    #[tokio::test]
    async fn the_store_silence_pass_defers_to_a_longer_engine_silence_age() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = ManualClock::new(t0);
        let sweeper_with = |silence_age: &str| {
            let config: EngineConfig =
                serde_json::from_value(serde_json::json!({"expired_silence_age": silence_age}))
                    .unwrap();
            let engine = Engine::builder(config)
                .store(Arc::new(MemoryStore::new()))
                .clock(Arc::new(clock.clone()))
                .build()
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let s = section("[retention]\nclosed_incident_age = \"90d\"\narchive = false\n");
            sweeper_for(&s, dir.path(), &engine, &clock, &Arc::new(Metrics::new()))
                .expect("a sweep")
        };
        assert!(sweeper_with("120h").policy.expired_silences);
        assert!(sweeper_with("90d").policy.expired_silences);
        assert!(!sweeper_with("91d").policy.expired_silences);
    }

    /// `change_age` alone runs the sweep: change events the engine stored, older (by
    /// their own timestamp) than the age, go; younger ones and the engine's window
    /// stay; the metric counts them under `changes`. The default (unset) follows the
    /// engine's `change_window` when that is longer than 30 days.
    #[tokio::test]
    async fn change_age_removes_old_change_events() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let store = Arc::new(MemoryStore::new());
        let (clock, engine, dir, metrics) = sweep_rig(t0, store.clone());
        let s = section(
            "[retention]\nclosed_incident_age = \"off\"\naudit_age = \"off\"\nchange_age = \"10d\"\n",
        );
        let sweeper = sweeper_for(&s, dir.path(), &engine, &clock, &metrics)
            .expect("a sweep for change events");
        let day = Duration::from_secs(86_400);
        for d in 0..20u64 {
            let at = clock.now();
            engine
                .ingest(vec![change(&format!("deploy {d}"), at)])
                .await
                .unwrap();
            clock.advance(day);
        }
        use signalcraft_core::store::Store as _;
        assert_eq!(
            store
                .count(signalcraft_core::store::Table::Changes)
                .await
                .unwrap(),
            20
        );
        // Now t0 + 20d: the cutoff is t0 + 10d; deploys 0..=9 are older.
        let report = sweeper.sweep().await.unwrap();
        assert_eq!(report.changes, 10, "{report:?}");
        let left = store
            .scan(
                signalcraft_core::store::Table::Changes,
                signalcraft_core::store::Scan::all(),
            )
            .await
            .unwrap();
        assert_eq!(left.len(), 10);
        for (_, v) in &left {
            let c: signalcraft_core::model::ChangeEvent = serde_json::from_slice(v).unwrap();
            assert!(
                c.timestamp >= t0 + jiff::SignedDuration::from_hours(240),
                "{c:?}"
            );
        }
        assert!(
            metrics
                .encode()
                .contains("signalcraft_retention_removed_total{kind=\"changes\"} 10")
        );
        // A second sweep finds nothing more.
        assert_eq!(sweeper.sweep().await.unwrap().changes, 0);

        // Unset change_age with a change_window of 60 days: 60 days, not 30.
        let long = Engine::builder(EngineConfig {
            change_window: Some("60d".into()),
            ..EngineConfig::default()
        })
        .store(Arc::new(MemoryStore::new()))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
        let d = section("[retention]\nclosed_incident_age = \"off\"\naudit_age = \"off\"\n");
        let sw = sweeper_for(&d, dir.path(), &long, &clock, &metrics)
            .expect("the default change age runs the sweep");
        assert_eq!(sw.policy.change_age, Some(60 * day));
    }
}
