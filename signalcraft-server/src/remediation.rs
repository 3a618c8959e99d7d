//! Remediation in the server: declared actions (`[remediation]` in the config), the
//! approval gate, and running approved actions on a [`RemediationRunner`] — the WASM
//! plugin host when the server is built with the `remediation` cargo feature.
//!
//! Runs are requested through the API (or start on their own for `auto` actions when
//! requested), approved by a token with the `approve_remediation` permission and a role
//! at least the plugin's `approval_role`, and leave a `remediation_run` timeline entry
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
        let inc = e.get_incident(&incident_id)?;
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
