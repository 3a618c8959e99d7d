//! [`EngineHandle`]: the server's assembly of the core [`Engine`] with delivery, and
//! the ingest batcher.
//!
//! # Why a batcher
//! The engine commits every `ingest` call durably before returning and serialises
//! writers, so one fsync per HTTP request would cap throughput at fsyncs/s × batch
//! size. Concurrent ingest requests are therefore queued and coalesced: one worker
//! takes everything waiting (up to [`MAX_COALESCED_EVENTS`]), ingests it in one engine
//! call (one durable commit), and answers every request in the batch. A request still
//! returns only after its events are durable; a failed commit fails every request in
//! that batch and changes nothing. Event order within and across requests is kept.
//!
//! The worker decides batch N+1 while batch N commits ([`Engine::ingest_begin`]):
//! the engine commits batches in the order they were decided, and a task per batch
//! waits for its commit and answers its requests.
//!
//! # Journaled ingest
//! With a journal (`[server] journal`, the default with the embedded store) the
//! batcher is not used: [`EngineHandle::ingest`] returns once the events are durable
//! in the journal ([`Engine::submit`]) and the engine applies them in the
//! background. [`EngineHandle::settled`] lets every other request first wait until
//! everything acknowledged before it is applied, so reads see acknowledged writes.

use std::sync::Arc;

use signalcraft_core::delivery::{DeliveryPipeline, ProviderStatus};
use signalcraft_core::engine::{Engine, IncidentAction};
use signalcraft_core::incident::{Actor, Incident};
use signalcraft_core::model::{Alert, Event, Fingerprint};
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::store::Store;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// Most events one coalesced engine call takes.
pub const MAX_COALESCED_EVENTS: usize = 20_000;

/// Longest a request waits for acknowledged ingest to be applied before it reads.
pub const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

struct Pending {
    events: Vec<Event>,
    done: oneshot::Sender<Result<(), ApiError>>,
}

/// A firing alert as the alert listings show it: the alert, the receivers of its
/// groups' incidents, and the ids of the silences muting it.
pub type ListedAlert = (Alert, Vec<String>, Vec<String>);

/// The engine as the HTTP layer uses it.
pub struct EngineHandle {
    /// The core engine.
    pub engine: Engine,
    /// The delivery pipeline, when channels are configured.
    pub delivery: Option<Arc<DeliveryPipeline>>,
    scheduler: Arc<dyn Scheduler>,
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

impl EngineHandle {
    /// Wraps an engine and starts the ingest batcher on the current tokio runtime.
    pub fn new(
        engine: Engine,
        delivery: Option<Arc<DeliveryPipeline>>,
        scheduler: Arc<dyn Scheduler>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>(4096);
        tokio::spawn(batcher(engine.clone(), rx));
        EngineHandle {
            engine,
            delivery,
            scheduler,
            tx,
        }
    }

    /// Ingests events; returns once they are durable (in the journal, or committed
    /// to the store coalesced with concurrent calls).
    pub async fn ingest(&self, events: Vec<Event>) -> Result<(), ApiError> {
        if self.journaled() {
            return self
                .engine
                .submit(events)
                .await
                .map(|_| ())
                .map_err(ApiError::from);
        }
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Pending { events, done })
            .await
            .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
        rx.await
            .map_err(|_| ApiError::unavailable("the server is shutting down"))?
    }

    /// Whether ingest goes through the journal.
    pub fn journaled(&self) -> bool {
        self.engine.journal_applied_seq().is_some()
    }

    /// Waits (at most [`SETTLE_WAIT`]) until every ingest acknowledged so far is
    /// applied, so the caller reads what was acknowledged. Immediate without a
    /// journal or when the engine is caught up; past the bound the caller goes on
    /// with what is applied.
    pub async fn settled(&self) {
        if self.journaled() {
            let _ = tokio::time::timeout(SETTLE_WAIT, self.engine.journal_settled()).await;
        }
    }

    /// Waits until every acknowledged ingest is applied (no bound; the caller bounds it).
    pub async fn settled_for_shutdown(&self) -> Result<(), ApiError> {
        if self.journaled() {
            self.engine.journal_settled().await?;
        }
        Ok(())
    }

    /// Applies an action to an incident (by id or number).
    pub async fn act(
        &self,
        id: &str,
        action: IncidentAction,
        actor: Actor,
    ) -> Result<Incident, ApiError> {
        let e = &self.engine;
        let r = match action {
            IncidentAction::Acknowledge => e.acknowledge(id, actor).await,
            IncidentAction::Mitigate => e.mitigate(id, actor).await,
            IncidentAction::Resolve => e.resolve(id, actor).await,
            IncidentAction::Close => e.close(id, actor).await,
            IncidentAction::Reassign {
                escalation_policy,
                assignees,
            } => e.reassign(id, actor, escalation_policy, assignees).await,
            IncidentAction::Note(t) => e.add_note(id, actor, t).await,
            IncidentAction::AssignRole(role, user) => e.assign_role(id, actor, role, user).await,
            IncidentAction::PageUser { user, message } => {
                e.page_user(id, actor, user, message).await
            }
            IncidentAction::Record(kind) => e.record_entry(id, actor, kind).await,
        };
        r.map_err(ApiError::from)
    }

    /// Pending jobs: durable ones (escalations, retries, handoffs) and group flushes.
    pub async fn queue_depth(&self) -> u64 {
        let durable = self
            .scheduler
            .pending()
            .await
            .map(|p| p.len() as u64)
            .unwrap_or(0);
        durable + self.engine.pending_flushes().await as u64
    }

    /// Firing alerts with their receivers and the silences muting them.
    pub async fn firing_alerts(&self) -> Vec<ListedAlert> {
        let fps = self.firing_fingerprints();
        list_firing(&self.engine, &fps)
    }

    /// The fingerprints of the firing alerts, in order (see [`list_firing`], which
    /// builds them a slice at a time, so a list of every alert never is in memory at
    /// once).
    pub fn firing_fingerprints(&self) -> Vec<Fingerprint> {
        let mut fps: Vec<Fingerprint> = self
            .engine
            .with_core(|core| core.firing_alert_records().map(|r| r.fingerprint).collect());
        // Stable order: by fingerprint (the store's key order, 16 hex digits).
        fps.sort_unstable();
        fps
    }

    /// Applies a provider delivery report (Twilio status callback).
    pub async fn record_provider_status(&self, sid: &str, status: ProviderStatus) {
        if let Some(d) = &self.delivery
            && let Err(e) = d.record_provider_status(sid, status).await
        {
            tracing::warn!(error = %e, "recording a provider delivery status failed");
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }
}

async fn batcher(engine: Engine, mut rx: mpsc::Receiver<Pending>) {
    let mut waiting: Vec<oneshot::Sender<Result<(), ApiError>>> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    while let Some(first) = rx.recv().await {
        events.extend(first.events);
        waiting.push(first.done);
        while events.len() < MAX_COALESCED_EVENTS {
            match rx.try_recv() {
                Ok(p) => {
                    events.extend(p.events);
                    waiting.push(p.done);
                }
                Err(_) => break,
            }
        }
        let batch = std::mem::take(&mut events);
        let answer = std::mem::take(&mut waiting);
        match engine.ingest_begin(batch).await {
            Ok(pending) => {
                tokio::spawn(async move {
                    let result = pending.wait().await.map(|_| ()).map_err(ApiError::from);
                    for w in answer {
                        let _ = w.send(result.clone());
                    }
                });
            }
            Err(e) => {
                let result = Err(ApiError::from(e));
                for w in answer {
                    let _ = w.send(result.clone());
                }
            }
        }
    }
}

/// The alerts of `fps` that are firing now, with their receivers and the silences
/// muting them, in the order of `fps` (one look at the core; alerts resolved or gone
/// since `fps` was taken are left out).
pub fn list_firing(engine: &Engine, fps: &[Fingerprint]) -> Vec<ListedAlert> {
    let now = engine.now();
    engine.with_core(|core| {
        fps.iter()
            .filter_map(|fp| core.alert_record(*fp))
            .filter(|r| {
                r.alert.status == signalcraft_core::model::AlertStatus::Firing
                    && r.resolved_at.is_none()
            })
            .map(|r| {
                let mut receivers: Vec<String> = r
                    .groups
                    .iter()
                    .filter_map(|g| core.group(g))
                    .filter_map(|g| {
                        g.incident
                            .as_deref()
                            .and_then(|i| core.incident(i))
                            .map(|i| i.receiver.clone())
                    })
                    .collect();
                receivers.sort();
                receivers.dedup();
                let silenced: Vec<String> = core
                    .silences()
                    .muted_by(&r.alert.labels, now)
                    .map(|s| vec![s.id.clone()])
                    .unwrap_or_default();
                (r.alert, receivers, silenced)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
    use signalcraft_core::model::AlertStatus;
    use signalcraft_core::model::{Labels, Source};
    use signalcraft_core::store::{StoreExt, Table};

    fn alert(i: usize) -> Alert {
        let mut l = Labels::new();
        l.insert("alertname".into(), format!("A{}", i % 7));
        l.insert("instance".into(), format!("i{i}"));
        Alert::firing(
            Source {
                provider: "test".into(),
                integration: "t".into(),
            },
            "s",
            l,
        )
    }

    /// Concurrent requests are coalesced and their commits pipelined; each request
    /// still returns only once its own alerts are in the store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_request_returns_after_its_alerts_are_durable() {
        let store = Arc::new(MemoryStore::new());
        let scheduler: Arc<dyn Scheduler> = Arc::new(MemoryScheduler::new());
        let cfg = serde_json::from_value(serde_json::json!({"route": {
            "group_by": ["alertname"], "group_wait": "30s", "notify": []
        }}))
        .expect("config");
        let engine = Engine::builder(cfg)
            .store(store.clone() as Arc<dyn Store>)
            .scheduler(scheduler.clone())
            .in_memory_flush_timers(true)
            .build()
            .expect("engine");
        let handle = Arc::new(EngineHandle::new(engine, None, scheduler));
        let mut tasks = Vec::new();
        for r in 0..64 {
            let (handle, store) = (handle.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                let alerts: Vec<Alert> = (r * 10..r * 10 + 10).map(alert).collect();
                let fps: Vec<String> = alerts.iter().map(|a| a.fingerprint().to_string()).collect();
                handle
                    .ingest(alerts.into_iter().map(Event::Alert).collect())
                    .await
                    .expect("ingest");
                for fp in fps {
                    assert!(
                        store.get(Table::Alerts, &fp).await.expect("get").is_some(),
                        "alert {fp} acknowledged before it was durable"
                    );
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(store.count(Table::Alerts).await.expect("count"), 640);
        assert_eq!(handle.engine.pending_flushes().await, 7);
    }

    /// `GET /api/v2/alerts` is served from the engine's memory: firing alerts only,
    /// in fingerprint order, the same set the store holds as firing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn firing_alerts_come_from_memory_and_skip_resolved() {
        let store = Arc::new(MemoryStore::new());
        let scheduler: Arc<dyn Scheduler> = Arc::new(MemoryScheduler::new());
        let cfg = serde_json::from_value(serde_json::json!({"route": {
            "group_by": ["alertname"], "group_wait": "30s", "notify": []
        }}))
        .expect("config");
        let engine = Engine::builder(cfg)
            .store(store.clone() as Arc<dyn Store>)
            .scheduler(scheduler.clone())
            .build()
            .expect("engine");
        let handle = EngineHandle::new(engine, None, scheduler);
        let alerts: Vec<Alert> = (0..20).map(alert).collect();
        let mut resolved = alerts[3].clone();
        resolved.status = AlertStatus::Resolved;
        handle
            .ingest(alerts.iter().cloned().map(Event::Alert).collect())
            .await
            .expect("ingest");
        handle
            .ingest(vec![Event::Alert(resolved.clone())])
            .await
            .expect("resolve");

        let listed = handle.firing_alerts().await;
        let fps: Vec<Fingerprint> = listed.iter().map(|(a, _, _)| a.fingerprint()).collect();
        let mut want: Vec<Fingerprint> = alerts
            .iter()
            .map(Alert::fingerprint)
            .filter(|fp| *fp != resolved.fingerprint())
            .collect();
        want.sort_unstable();
        assert_eq!(
            fps, want,
            "all firing alerts, sorted, without the resolved one"
        );

        // The same set the store records as firing.
        let stored: Vec<(String, signalcraft_core::engine::AlertRecord)> = store
            .scan_json(Table::Alerts, signalcraft_core::store::Scan::all())
            .await
            .expect("scan");
        let stored_firing = stored
            .iter()
            .filter(|(_, r)| r.alert.status == AlertStatus::Firing && r.resolved_at.is_none())
            .count();
        assert_eq!(stored_firing, listed.len());
    }
}
