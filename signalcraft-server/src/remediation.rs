//! Remediation in the server: declared actions (`[remediation]` in the config), the
//! approval gate, and running approved actions on a [`RemediationRunner`] — the WASM
//! plugin host when the server is built with the `remediation` cargo feature.
//!
//! Runs are requested through the API, or requested by the server itself when an
//! incident opens ([`OpenedIncidents`] → [`spawn_auto_runs`]): `auto` actions then run at
//! once, `approval` actions wait. Runs are approved by a token with the
//! `approve_remediation` permission and a role at least the plugin's `approval_role`,
//! and leave a `remediation_run` timeline entry
//! plus audit entries. A plugin's follow-up (resolve, acknowledge, mitigate, note) is
//! applied to its own incident only.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use signalcraft_core::clock::Clock;
use signalcraft_core::engine::IncidentAction;
use signalcraft_core::incident::Actor;
use signalcraft_core::remediation::gate::{
    AccessRole, GateError, IncidentContext, RemediationAction, RemediationGate, RemediationRecord,
};
use signalcraft_core::remediation::{FollowUp, RemediationRunner};
use signalcraft_core::store::{Table, WriteBatch};

use signalcraft_core::engine::{EngineEvent, EventSink};
use tokio::sync::mpsc;

use crate::auth::Role;
use crate::engine::EngineHandle;
use crate::error::ApiError;

/// `[remediation]`: plugins and the actions that run them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationSection {
    /// Plugin manifest files (TOML) to load at startup.
    pub plugins: Vec<PathBuf>,
    /// Declared actions (`id`, `plugin`, `scope`, `mode`, `params`, `dry_run`, `approval_role`).
    pub actions: Vec<RemediationAction>,
}

/// The gate plus the runner.
pub struct Remediation {
    gate: Mutex<RemediationGate>,
    runner: Arc<dyn RemediationRunner>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Remediation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remediation").finish_non_exhaustive()
    }
}

/// Maps a gate refusal to a problem.
pub fn gate_problem(e: GateError) -> ApiError {
    match &e {
        GateError::UnknownAction(a) => ApiError::not_found("remediation action", a),
        GateError::UnknownRun(r) => ApiError::not_found("remediation run", r),
        GateError::Forbidden { .. } => ApiError::forbidden(e.to_string()),
        GateError::WrongState { .. } => ApiError::conflict(e.to_string()),
        _ => ApiError::invalid("remediation", e.to_string()),
    }
}

/// The gate's role for a token role.
pub fn access_role(r: Role) -> AccessRole {
    match r {
        Role::Viewer => AccessRole::Viewer,
        Role::Responder => AccessRole::Responder,
        Role::Manager => AccessRole::Manager,
        Role::Admin => AccessRole::Admin,
    }
}

impl Remediation {
    /// A gate over `actions` running on `runner`.
    pub fn new(
        actions: Vec<RemediationAction>,
        runner: Arc<dyn RemediationRunner>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, GateError> {
        Ok(Remediation {
            gate: Mutex::new(RemediationGate::new(actions)?),
            runner,
            clock,
        })
    }

    /// Actions declared for an incident and its runs so far.
    pub fn for_incident(
        &self,
        incident_id: &str,
        service: Option<&str>,
        route: Option<&str>,
    ) -> (Vec<RemediationAction>, Vec<serde_json::Value>) {
        let g = self.gate.lock();
        let actions = g.actions_for(service, route).into_iter().cloned().collect();
        let runs = g
            .runs_for(incident_id)
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect();
        (actions, runs)
    }

    /// Requests a run; returns the run as JSON and whether it may start now (auto).
    pub fn request(
        &self,
        action: &str,
        incident_id: &str,
        actor: Actor,
        dry_run: bool,
    ) -> Result<(String, bool), ApiError> {
        let mut g = self.gate.lock();
        let id = g
            .request_run(action, incident_id, actor, dry_run, self.clock.now())
            .map_err(gate_problem)?;
        let approved = g
            .run(&id)
            .is_some_and(|r| r.state == signalcraft_core::remediation::gate::RunState::Approved);
        Ok((id, approved))
    }

    /// Approves a run as `user` with `role`.
    pub fn approve(&self, run_id: &str, user: &str, role: Role) -> Result<(), ApiError> {
        self.gate
            .lock()
            .approve(run_id, user, access_role(role), self.clock.now())
            .map(|_| ())
            .map_err(gate_problem)
    }

    /// Rejects a run as `user` with `role`.
    pub fn reject(&self, run_id: &str, user: &str, role: Role) -> Result<(), ApiError> {
        self.gate
            .lock()
            .reject(run_id, user, access_role(role), self.clock.now())
            .map_err(gate_problem)
    }

    /// The incident a run belongs to.
    pub fn run_incident(&self, run_id: &str) -> Option<String> {
        self.gate.lock().run(run_id).map(|r| r.incident_id.clone())
    }

    /// Runs an approved run, records it on the incident and applies its follow-up.
    pub async fn execute(
        &self,
        engine: &EngineHandle,
        run_id: &str,
    ) -> Result<RemediationRecord, ApiError> {
        let incident_id = self
            .run_incident(run_id)
            .ok_or_else(|| ApiError::not_found("remediation run", run_id))?;
        let e = &engine.engine;
        let inc = e.fetch_incident(&incident_id).await?;
        let alerts = e.incident_alerts(&incident_id).await.unwrap_or_default();
        let service = inc
            .service
            .as_deref()
            .and_then(|s| e.get_service(s).ok())
            .and_then(|s| serde_json::to_value(s).ok());
        let ctx = IncidentContext {
            incident: serde_json::to_value(&inc).unwrap_or_default(),
            alerts: alerts
                .iter()
                .filter_map(|a| serde_json::to_value(&a.alert).ok())
                .collect(),
            service,
            runbooks: inc.runbooks.iter().map(|l| l.href.clone()).collect(),
        };
        let record = signalcraft_core::remediation::gate::execute(
            &self.gate,
            self.runner.as_ref(),
            self.clock.as_ref(),
            run_id,
            ctx,
        )
        .await
        .map_err(gate_problem)?;
        let actor = Actor::Plugin {
            name: record.plugin.clone(),
        };
        engine
            .act(
                &incident_id,
                IncidentAction::Record(record.timeline_kind()),
                actor.clone(),
            )
            .await?;
        if !record.dry_run
            && let Some(f) = &record.follow_up
        {
            let action = match f {
                FollowUp::Resolve => IncidentAction::Resolve,
                FollowUp::Acknowledge => IncidentAction::Acknowledge,
                FollowUp::Mitigate => IncidentAction::Mitigate,
                FollowUp::Note { text } => IncidentAction::Note(text.clone()),
            };
            if let Err(err) = engine.act(&incident_id, action, actor).await {
                tracing::warn!(run = run_id, error = %err, "remediation follow-up not applied");
            }
        }
        self.flush_audit(engine).await?;
        Ok(record)
    }

    /// An incident opened: asks the gate for a run of every action declared for its
    /// service and route ([`RemediationGate::on_incident_opened`]), audits the requests,
    /// and executes the `auto` ones now, one after another (each leaves a
    /// `remediation_run` timeline entry and audit entries; see [`Remediation::execute`]).
    /// `approval` actions wait as `pending_approval` runs. Returns the auto runs'
    /// records; a run that fails to execute is logged and does not stop the others.
    pub async fn on_incident_opened(
        &self,
        engine: &EngineHandle,
        incident_id: &str,
    ) -> Result<Vec<RemediationRecord>, ApiError> {
        let inc = engine.engine.fetch_incident(incident_id).await?;
        let auto: Vec<String> = {
            let mut g = self.gate.lock();
            let runs = g.on_incident_opened(
                &inc.id,
                inc.service.as_deref(),
                Some(&inc.route),
                self.clock.now(),
            );
            runs.into_iter()
                .filter(|r| {
                    g.run(r).is_some_and(|r| {
                        r.state == signalcraft_core::remediation::gate::RunState::Approved
                    })
                })
                .collect()
        };
        self.flush_audit(engine).await?;
        let mut records = Vec::with_capacity(auto.len());
        for run in auto {
            match self.execute(engine, &run).await {
                Ok(r) => records.push(r),
                Err(e) => {
                    tracing::warn!(run = %run, incident = %inc.id, error = %e.detail, "auto remediation not executed");
                }
            }
        }
        Ok(records)
    }

    /// Writes the gate's audit entries (approvals, refusals, runs) to the audit log.
    pub async fn flush_audit(&self, engine: &EngineHandle) -> Result<(), ApiError> {
        let entries = self.gate.lock().drain_audit();
        if entries.is_empty() {
            return Ok(());
        }
        let mut b = WriteBatch::new();
        for e in &entries {
            b.put(Table::Audit, e.key(), e)?;
        }
        engine.store().commit(b).await?;
        Ok(())
    }
}

/// Builds the plugin host and loads the configured plugins.
#[cfg(feature = "remediation")]
pub fn build(
    section: &RemediationSection,
    clock: Arc<dyn Clock>,
) -> Result<Remediation, crate::error::ServerError> {
    use crate::error::ServerError;
    let host = signalcraft_plugins::PluginHost::new(
        signalcraft_plugins::HostConfig::default(),
        clock.clone(),
    )
    .map_err(|e| ServerError::Other(format!("remediation: plugin host: {e}")))?;
    for (i, p) in section.plugins.iter().enumerate() {
        host.load(p).map_err(|e| {
            ServerError::Other(format!("remediation.plugins[{i}] ({}): {e}", p.display()))
        })?;
    }
    Remediation::new(section.actions.clone(), Arc::new(host), clock)
        .map_err(|e| ServerError::Other(format!("remediation.actions: {e}")))
}

/// An [`EventSink`] that passes every event on to `next` and forwards the ids of
/// opened incidents to the remediation worker ([`spawn_auto_runs`]).
///
/// The engine emits events under its write lock, so this only queues the id
/// (an unbounded channel: an incident storm queues ids, it never blocks ingest or
/// drops a remediation).
pub struct OpenedIncidents {
    next: Arc<dyn EventSink>,
    tx: mpsc::UnboundedSender<String>,
}

impl OpenedIncidents {
    /// A sink in front of `next`, and the receiving end for [`spawn_auto_runs`].
    pub fn new(next: Arc<dyn EventSink>) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(OpenedIncidents { next, tx }), rx)
    }
}

impl EventSink for OpenedIncidents {
    fn emit(&self, event: &EngineEvent) {
        if let EngineEvent::IncidentOpened { incident_id } = event {
            // A closed receiver means the server is stopping; nothing to start then.
            let _ = self.tx.send(incident_id.clone());
        }
        self.next.emit(event);
    }
}

/// Starts the worker that runs remediations for every incident id `rx` yields
/// ([`Remediation::on_incident_opened`]), in the order the incidents opened. It ends
/// when the sending [`OpenedIncidents`] is dropped.
pub fn spawn_auto_runs(
    remediation: Arc<Remediation>,
    engine: Arc<EngineHandle>,
    mut rx: mpsc::UnboundedReceiver<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(id) = rx.recv().await {
            if let Err(e) = remediation.on_incident_opened(&engine, &id).await {
                tracing::warn!(incident = %id, error = %e.detail, "remediation on incident open failed");
            }
        }
    })
}
