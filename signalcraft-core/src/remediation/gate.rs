//! Approval gating and audit for remediation runs — pure state, time passed in.
//!
//! Services and routes declare [`RemediationAction`]s with a [`ActionMode`]: `auto`
//! actions run when an incident opens; `approval` actions wait until a user whose
//! [`AccessRole`] is at least the plugin manifest's `approval_role` approves them.
//! The only way to obtain a [`RemediationRequest`] for a run is
//! [`RemediationGate::start`], which refuses runs that are not approved, so an
//! unapproved run never executes. Every decision (approve, refusal, reject, run) is
//! appended to the gate's audit buffer as an [`AuditEntry`]; every finished run
//! becomes a [`RemediationRecord`] for the incident timeline and the audit log.
//!
//! ```text
//!   request_run / on_incident_opened
//!        │ auto                 │ approval
//!        ▼                      ▼
//!     Approved ◄── approve ── PendingApproval ── reject ──► Rejected
//!        │ start (→ RemediationRequest)
//!        ▼
//!     Running ── complete(outcome | error) ──► Completed (+ RemediationRecord)
//! ```

use std::collections::{BTreeMap, VecDeque};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    FollowUp, RemediationError, RemediationOutcome, RemediationRequest, RemediationRunner,
};
use crate::clock::Clock;
use crate::incident::{Actor, AuditEntry, EntryKind};

/// Access roles, ordered `viewer < responder < manager < admin` (the server's RBAC
/// roles). A plugin manifest's `approval_role` names the least role that may approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessRole {
    /// Read-only.
    Viewer,
    /// On-call responder.
    Responder,
    /// Team manager.
    Manager,
    /// Administrator.
    Admin,
}

impl AccessRole {
    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(AccessRole::Viewer),
            "responder" => Some(AccessRole::Responder),
            "manager" => Some(AccessRole::Manager),
            "admin" => Some(AccessRole::Admin),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRole::Viewer => "viewer",
            AccessRole::Responder => "responder",
            AccessRole::Manager => "manager",
            AccessRole::Admin => "admin",
        }
    }
}

/// When an action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionMode {
    /// Runs when an incident opens (and whenever requested), without approval.
    Auto,
    /// Runs only after a user with the required role approves.
    Approval,
}

/// Where an action is declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum ActionScope {
    /// Incidents of this service id.
    Service(String),
    /// Incidents routed through this route id.
    Route(String),
}

/// A remediation action declared on a service or route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationAction {
    /// Unique action id, e.g. `api-restart`.
    pub id: String,
    /// Plugin to run.
    pub plugin: String,
    /// Where it is declared.
    pub scope: ActionScope,
    /// Auto or approval.
    pub mode: ActionMode,
    /// Parameters passed to the plugin (validated by the runner against its schema).
    #[serde(default)]
    pub params: serde_json::Value,
    /// Always run as a dry run (plan only).
    #[serde(default)]
    pub dry_run: bool,
    /// Least role that may approve: the plugin manifest's `approval_role`.
    pub approval_role: AccessRole,
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for a user to approve.
    PendingApproval,
    /// May start.
    Approved,
    /// Handed to the runner.
    Running,
    /// Finished (successfully or not); see its record.
    Completed,
    /// A user rejected it; it never runs.
    Rejected,
}

/// Who let a run go ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Approval {
    /// The action's mode is `auto`.
    Auto,
    /// A user approved.
    User {
        /// User id.
        id: String,
        /// The role they approved with.
        role: AccessRole,
        /// When.
        at: Timestamp,
    },
}

/// One requested run of an action on an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationRun {
    /// Run id (`rem-` + number).
    pub id: String,
    /// The action.
    pub action_id: String,
    /// The plugin.
    pub plugin: String,
    /// The incident it acts on (and the only one it may act on).
    pub incident_id: String,
    /// Who asked for it (`System` for auto runs on incident open).
    pub triggered_by: Actor,
    /// When.
    pub requested_at: Timestamp,
    /// Plan only.
    pub dry_run: bool,
    /// Parameters.
    pub params: serde_json::Value,
    /// State.
    pub state: RunState,
    /// Who approved, once approved.
    pub approval: Option<Approval>,
    /// Least role that may approve.
    pub approval_role: AccessRole,
    /// When it started running.
    pub started_at: Option<Timestamp>,
}

/// Incident data a run's request carries (the incident's JSON form, its alerts,
/// service and runbooks). The incident id always comes from the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentContext {
    /// Incident snapshot.
    pub incident: serde_json::Value,
    /// Its alerts.
    pub alerts: Vec<serde_json::Value>,
    /// Its service.
    pub service: Option<serde_json::Value>,
    /// Runbook URLs.
    pub runbooks: Vec<String>,
}

/// What a run produced, for the timeline and the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationRecord {
    /// Run id.
    pub run_id: String,
    /// Action id.
    pub action_id: String,
    /// Plugin.
    pub plugin: String,
    /// Incident.
    pub incident_id: String,
    /// Who triggered it.
    pub triggered_by: Actor,
    /// Who approved it (`Auto` for auto actions).
    pub approved_by: Approval,
    /// Plan only.
    pub dry_run: bool,
    /// Parameters the plugin got.
    pub inputs: serde_json::Value,
    /// When it was requested, started and finished.
    pub requested_at: Timestamp,
    /// Start.
    pub started_at: Timestamp,
    /// End.
    pub finished_at: Timestamp,
    /// `success`, `failure`, `noop` (from the plugin) or `error` (the run failed).
    pub outcome: String,
    /// The plugin's message, or the error.
    pub message: String,
    /// The plugin's structured details (null on error).
    pub details: serde_json::Value,
    /// The follow-up the engine should apply to `incident_id`, if any.
    pub follow_up: Option<FollowUp>,
    /// The typed error, when the run failed.
    pub error: Option<RemediationError>,
    /// Wall time in microseconds (runner-measured; 0 on error).
    pub duration_us: u64,
    /// Fuel consumed (0 on error).
    pub fuel_used: u64,
    /// Peak linear memory in bytes (0 on error).
    pub memory_peak: u64,
}

impl RemediationRecord {
    /// The incident timeline entry for this run.
    pub fn timeline_kind(&self) -> EntryKind {
        EntryKind::RemediationRun {
            plugin: self.plugin.clone(),
            status: self.outcome.clone(),
            message: self.message.clone(),
        }
    }
}

/// Why the gate refused something. Refusals of approval are audited.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateError {
    /// No such action.
    #[error("unknown remediation action {0:?}")]
    UnknownAction(String),
    /// No such run.
    #[error("unknown remediation run {0:?}")]
    UnknownRun(String),
    /// Two actions share an id.
    #[error("duplicate remediation action id {0:?}")]
    DuplicateAction(String),
    /// The user's role is below the plugin's `approval_role`.
    #[error("{user} has role {role:?} but approving {plugin} needs {required:?}")]
    Forbidden {
        /// User id.
        user: String,
        /// Their role.
        role: AccessRole,
        /// Required role.
        required: AccessRole,
        /// Plugin.
        plugin: String,
    },
    /// The run is not in a state that allows this (e.g. starting an unapproved run).
    #[error("run {run} is {state:?}; cannot {op}")]
    WrongState {
        /// Run id.
        run: String,
        /// Its state.
        state: RunState,
        /// What was attempted.
        op: &'static str,
    },
}

/// How many finished runs (completed or rejected) a [`RemediationGate`] keeps by
/// default ([`RemediationGate::keep_finished_runs`]).
pub const DEFAULT_FINISHED_RUNS_KEPT: usize = 10_000;

/// Declared actions, their runs, and the audit entries not yet drained.
///
/// Runs live in memory only. Every run waiting for approval, approved or running is
/// kept; of the finished ones (completed or rejected) only the most recently finished
/// [`DEFAULT_FINISHED_RUNS_KEPT`] are, so the gate stays bounded however many runs a
/// long-lived server sees. A forgotten run's request, decision and result stay in the
/// audit log and the incident timeline.
#[derive(Debug)]
pub struct RemediationGate {
    actions: BTreeMap<String, RemediationAction>,
    runs: BTreeMap<String, RemediationRun>,
    /// Ids of finished runs, oldest finish first.
    finished: VecDeque<String>,
    finished_kept: usize,
    audit: Vec<AuditEntry>,
    next_run: u64,
    next_audit: u64,
}

impl Default for RemediationGate {
    fn default() -> Self {
        RemediationGate {
            actions: BTreeMap::new(),
            runs: BTreeMap::new(),
            finished: VecDeque::new(),
            finished_kept: DEFAULT_FINISHED_RUNS_KEPT,
            audit: Vec::new(),
            next_run: 0,
            next_audit: 0,
        }
    }
}

impl RemediationGate {
    /// A gate with these declared actions.
    pub fn new(actions: Vec<RemediationAction>) -> Result<Self, GateError> {
        let mut gate = RemediationGate::default();
        for a in actions {
            if gate.actions.contains_key(&a.id) {
                return Err(GateError::DuplicateAction(a.id));
            }
            gate.actions.insert(a.id.clone(), a);
        }
        Ok(gate)
    }

    /// Actions declared for an incident of `service` routed through `route`.
    pub fn actions_for(
        &self,
        service: Option<&str>,
        route: Option<&str>,
    ) -> Vec<&RemediationAction> {
        self.actions
            .values()
            .filter(|a| match &a.scope {
                ActionScope::Service(s) => Some(s.as_str()) == service,
                ActionScope::Route(r) => Some(r.as_str()) == route,
            })
            .collect()
    }

    /// Keeps at most `n` finished runs in memory (the most recently finished; see
    /// the type's doc), forgetting older ones at once.
    pub fn keep_finished_runs(&mut self, n: usize) {
        self.finished_kept = n;
        self.forget_finished_beyond_limit();
    }

    /// Notes that a run finished (after its audit entry is recorded, which reads it).
    fn finished(&mut self, run_id: &str) {
        self.finished.push_back(run_id.to_string());
        self.forget_finished_beyond_limit();
    }

    fn forget_finished_beyond_limit(&mut self) {
        while self.finished.len() > self.finished_kept {
            if let Some(id) = self.finished.pop_front() {
                self.runs.remove(&id);
            }
        }
    }

    /// A run by id.
    pub fn run(&self, id: &str) -> Option<&RemediationRun> {
        self.runs.get(id)
    }

    /// Runs of an incident, oldest first.
    pub fn runs_for(&self, incident_id: &str) -> Vec<&RemediationRun> {
        self.runs
            .values()
            .filter(|r| r.incident_id == incident_id)
            .collect()
    }

    /// Takes the audit entries recorded since the last call (for the audit log).
    pub fn drain_audit(&mut self) -> Vec<AuditEntry> {
        std::mem::take(&mut self.audit)
    }

    /// An incident opened: creates a run per declared action — `Approved` for auto
    /// actions (start them now), `PendingApproval` for the others (offer them to
    /// approvers). Returns the run ids.
    pub fn on_incident_opened(
        &mut self,
        incident_id: &str,
        service: Option<&str>,
        route: Option<&str>,
        now: Timestamp,
    ) -> Vec<String> {
        let ids: Vec<String> = self
            .actions_for(service, route)
            .iter()
            .map(|a| a.id.clone())
            .collect();
        ids.iter()
            .filter_map(|a| {
                self.request_run(a, incident_id, Actor::System, false, now)
                    .ok()
            })
            .collect()
    }

    /// Requests a run of `action_id` on `incident_id`. Auto actions are approved at
    /// once; approval actions wait for [`RemediationGate::approve`]. `dry_run` asks
    /// for a plan only (the action's own `dry_run` forces it).
    pub fn request_run(
        &mut self,
        action_id: &str,
        incident_id: &str,
        triggered_by: Actor,
        dry_run: bool,
        now: Timestamp,
    ) -> Result<String, GateError> {
        let a = self
            .actions
            .get(action_id)
            .ok_or_else(|| GateError::UnknownAction(action_id.into()))?;
        self.next_run += 1;
        let id = format!("rem-{:010}", self.next_run);
        let (state, approval) = match a.mode {
            ActionMode::Auto => (RunState::Approved, Some(Approval::Auto)),
            ActionMode::Approval => (RunState::PendingApproval, None),
        };
        let run = RemediationRun {
            id: id.clone(),
            action_id: a.id.clone(),
            plugin: a.plugin.clone(),
            incident_id: incident_id.into(),
            triggered_by: triggered_by.clone(),
            requested_at: now,
            dry_run: dry_run || a.dry_run,
            params: a.params.clone(),
            state,
            approval,
            approval_role: a.approval_role,
            started_at: None,
        };
        let details = serde_json::json!({
            "run": id, "action": a.id, "plugin": a.plugin, "incident": incident_id,
            "mode": a.mode, "dry_run": run.dry_run,
        });
        self.runs.insert(id.clone(), run);
        self.record(now, triggered_by, "remediation.request", &id, details);
        Ok(id)
    }

    /// A user approves a pending run. Refused (and audited as
    /// `remediation.approve_denied`) when `role` is below the plugin's approval role.
    pub fn approve(
        &mut self,
        run_id: &str,
        user: &str,
        role: AccessRole,
        now: Timestamp,
    ) -> Result<&RemediationRun, GateError> {
        let run = self.decide(run_id, user, role, now, Decision::Approve)?;
        run.state = RunState::Approved;
        run.approval = Some(Approval::User {
            id: user.into(),
            role,
            at: now,
        });
        let details = serde_json::json!({
            "run": run_id, "plugin": run.plugin, "incident": run.incident_id, "role": role,
        });
        self.record(
            now,
            Actor::user(user),
            "remediation.approve",
            run_id,
            details,
        );
        self.runs
            .get(run_id)
            .ok_or_else(|| GateError::UnknownRun(run_id.into()))
    }

    /// A user rejects a pending run; it will never run. Needs the same role as
    /// approving; a refusal is audited as `remediation.reject_denied`.
    pub fn reject(
        &mut self,
        run_id: &str,
        user: &str,
        role: AccessRole,
        now: Timestamp,
    ) -> Result<(), GateError> {
        let run = self.decide(run_id, user, role, now, Decision::Reject)?;
        run.state = RunState::Rejected;
        let details =
            serde_json::json!({"run": run_id, "plugin": run.plugin, "incident": run.incident_id});
        self.record(
            now,
            Actor::user(user),
            "remediation.reject",
            run_id,
            details,
        );
        self.finished(run_id);
        Ok(())
    }

    /// What approving and rejecting both check: the run exists, is pending
    /// approval, and `role` meets its approval role. A refusal for the role is
    /// audited as `remediation.{approve,reject}_denied`; on success the run is
    /// returned for the caller to decide.
    fn decide(
        &mut self,
        run_id: &str,
        user: &str,
        role: AccessRole,
        now: Timestamp,
        decision: Decision,
    ) -> Result<&mut RemediationRun, GateError> {
        let run = self
            .runs
            .get(run_id)
            .ok_or_else(|| GateError::UnknownRun(run_id.into()))?;
        if run.state != RunState::PendingApproval {
            return Err(GateError::WrongState {
                run: run_id.into(),
                state: run.state,
                op: decision.op(),
            });
        }
        if role < run.approval_role {
            let err = GateError::Forbidden {
                user: user.into(),
                role,
                required: run.approval_role,
                plugin: run.plugin.clone(),
            };
            let details = serde_json::json!({
                "run": run_id, "plugin": run.plugin, "incident": run.incident_id,
                "role": role, "required": run.approval_role, "error": err.to_string(),
            });
            let action = match decision {
                Decision::Approve => "remediation.approve_denied",
                Decision::Reject => "remediation.reject_denied",
            };
            self.record(now, Actor::user(user), action, run_id, details);
            return Err(err);
        }
        self.runs
            .get_mut(run_id)
            .ok_or_else(|| GateError::UnknownRun(run_id.into()))
    }

    /// Starts an approved run and returns the request to hand to a
    /// [`RemediationRunner`]. Any other state is refused: this is the only way to get
    /// a request for a run, so an unapproved run never executes.
    pub fn start(
        &mut self,
        run_id: &str,
        ctx: IncidentContext,
        now: Timestamp,
    ) -> Result<RemediationRequest, GateError> {
        let run = self
            .runs
            .get_mut(run_id)
            .ok_or_else(|| GateError::UnknownRun(run_id.into()))?;
        if run.state != RunState::Approved {
            return Err(GateError::WrongState {
                run: run_id.into(),
                state: run.state,
                op: "start",
            });
        }
        run.state = RunState::Running;
        run.started_at = Some(now);
        Ok(RemediationRequest {
            plugin: run.plugin.clone(),
            incident_id: run.incident_id.clone(),
            incident: ctx.incident,
            alerts: ctx.alerts,
            service: ctx.service,
            runbooks: ctx.runbooks,
            params: run.params.clone(),
            dry_run: run.dry_run,
        })
    }

    /// Records the result of a started run; audits it as `remediation.run` and
    /// returns the record for the incident timeline.
    pub fn complete(
        &mut self,
        run_id: &str,
        result: Result<RemediationOutcome, RemediationError>,
        now: Timestamp,
    ) -> Result<RemediationRecord, GateError> {
        let run = self
            .runs
            .get_mut(run_id)
            .ok_or_else(|| GateError::UnknownRun(run_id.into()))?;
        if run.state != RunState::Running {
            return Err(GateError::WrongState {
                run: run_id.into(),
                state: run.state,
                op: "complete",
            });
        }
        run.state = RunState::Completed;
        let base = |outcome: String, message: String| RemediationRecord {
            run_id: run.id.clone(),
            action_id: run.action_id.clone(),
            plugin: run.plugin.clone(),
            incident_id: run.incident_id.clone(),
            triggered_by: run.triggered_by.clone(),
            approved_by: run.approval.clone().unwrap_or(Approval::Auto),
            dry_run: run.dry_run,
            inputs: run.params.clone(),
            requested_at: run.requested_at,
            started_at: run.started_at.unwrap_or(now),
            finished_at: now,
            outcome,
            message,
            details: serde_json::Value::Null,
            follow_up: None,
            error: None,
            duration_us: 0,
            fuel_used: 0,
            memory_peak: 0,
        };
        let record = match result {
            Ok(out) => {
                let status = serde_json::to_value(out.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                RemediationRecord {
                    details: out.details,
                    // A dry run must not change the incident either.
                    follow_up: if run.dry_run { None } else { out.follow_up },
                    duration_us: u64::try_from(out.duration.as_micros()).unwrap_or(u64::MAX),
                    fuel_used: out.fuel_used,
                    memory_peak: out.memory_peak,
                    ..base(status, out.message)
                }
            }
            Err(e) => RemediationRecord {
                error: Some(e.clone()),
                ..base("error".into(), e.to_string())
            },
        };
        let actor = Actor::Plugin {
            name: record.plugin.clone(),
        };
        let details = serde_json::to_value(&record).unwrap_or_default();
        self.record(now, actor, "remediation.run", run_id, details);
        self.finished(run_id);
        Ok(record)
    }

    fn record(
        &mut self,
        at: Timestamp,
        actor: Actor,
        action: &str,
        run_id: &str,
        details: serde_json::Value,
    ) {
        self.next_audit += 1;
        let incident = self
            .runs
            .get(run_id)
            .map(|r| r.incident_id.clone())
            .unwrap_or_default();
        self.audit.push(AuditEntry {
            id: format!("{}-{}", at.as_nanosecond().max(0), self.next_audit),
            at,
            actor,
            action: action.into(),
            target: format!("incident/{incident}"),
            details,
        });
    }
}

/// Starts an approved run, runs it on `runner` and records the result. The gate lock
/// is not held while the plugin runs.
pub async fn execute(
    gate: &parking_lot::Mutex<RemediationGate>,
    runner: &dyn RemediationRunner,
    clock: &dyn Clock,
    run_id: &str,
    ctx: IncidentContext,
) -> Result<RemediationRecord, GateError> {
    let req = gate.lock().start(run_id, ctx, clock.now())?;
    let result = runner.run(req).await;
    gate.lock().complete(run_id, result, clock.now())
}

/// A user's decision on a run pending approval.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// The operation's name in [`GateError::WrongState`].
    fn op(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::clock::ManualClock;
    use crate::remediation::RemediationStatus;

    /// Counts runs; echoes the request's incident id in details.
    #[derive(Default)]
    struct CountingRunner {
        runs: AtomicUsize,
    }

    #[async_trait]
    impl RemediationRunner for CountingRunner {
        async fn run(
            &self,
            req: RemediationRequest,
        ) -> Result<RemediationOutcome, RemediationError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if req.plugin == "fails" {
                return Err(RemediationError::OutOfFuel);
            }
            Ok(RemediationOutcome {
                status: RemediationStatus::Success,
                message: "restarted".into(),
                details: serde_json::json!({"incident": req.incident_id, "dry_run": req.dry_run}),
                follow_up: Some(FollowUp::Mitigate),
                fuel_used: 1234,
                memory_peak: 65536,
                duration: Duration::from_micros(42),
                logs: vec![],
            })
        }
        fn plugins(&self) -> Vec<String> {
            vec!["http-restart".into(), "fails".into()]
        }
    }

    fn action(id: &str, plugin: &str, mode: ActionMode) -> RemediationAction {
        RemediationAction {
            id: id.into(),
            plugin: plugin.into(),
            scope: ActionScope::Service("api".into()),
            mode,
            params: serde_json::json!({"service": "api"}),
            dry_run: false,
            approval_role: AccessRole::Manager,
        }
    }

    fn clock() -> ManualClock {
        ManualClock::new("2026-11-27T03:00:00Z".parse().unwrap())
    }

    #[tokio::test]
    async fn unapproved_run_never_executes_and_underprivileged_approval_is_refused_and_audited() {
        let c = clock();
        let runner = CountingRunner::default();
        let gate = parking_lot::Mutex::new(
            RemediationGate::new(vec![action(
                "restart",
                "http-restart",
                ActionMode::Approval,
            )])
            .unwrap(),
        );
        let run = gate
            .lock()
            .request_run("restart", "inc-1", Actor::user("alice"), false, c.now())
            .unwrap();

        let e = execute(&gate, &runner, &c, &run, IncidentContext::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                GateError::WrongState {
                    state: RunState::PendingApproval,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            runner.runs.load(Ordering::SeqCst),
            0,
            "unapproved run executed"
        );

        let e = gate
            .lock()
            .approve(&run, "bob", AccessRole::Responder, c.now())
            .unwrap_err();
        assert!(
            matches!(
                e,
                GateError::Forbidden {
                    required: AccessRole::Manager,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            gate.lock().run(&run).unwrap().state,
            RunState::PendingApproval
        );
        let audit = gate.lock().drain_audit();
        let denied = audit
            .iter()
            .find(|a| a.action == "remediation.approve_denied")
            .expect("refusal audited");
        assert_eq!(denied.actor, Actor::user("bob"));
        assert_eq!(denied.target, "incident/inc-1");
        assert_eq!(runner.runs.load(Ordering::SeqCst), 0);

        c.advance(Duration::from_secs(30));
        gate.lock()
            .approve(&run, "carol", AccessRole::Admin, c.now())
            .unwrap();
        c.advance(Duration::from_secs(1));
        let rec = execute(&gate, &runner, &c, &run, IncidentContext::default())
            .await
            .unwrap();
        assert_eq!(runner.runs.load(Ordering::SeqCst), 1);
        assert_eq!(rec.triggered_by, Actor::user("alice"));
        assert!(
            matches!(&rec.approved_by, Approval::User { id, role: AccessRole::Admin, .. } if id == "carol")
        );
        assert_eq!(rec.outcome, "success");
        assert_eq!(rec.details["incident"], "inc-1");
        assert_eq!(
            (rec.fuel_used, rec.memory_peak, rec.duration_us),
            (1234, 65536, 42)
        );
        assert_eq!(rec.inputs, serde_json::json!({"service": "api"}));
        assert_eq!(rec.follow_up, Some(FollowUp::Mitigate));
        assert!(
            matches!(rec.timeline_kind(), EntryKind::RemediationRun { ref status, .. } if status == "success")
        );
        let audit = gate.lock().drain_audit();
        let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(actions, ["remediation.approve", "remediation.run"]);
        assert_eq!(audit[1].details["approved_by"]["id"], "carol");

        // Completed runs cannot run again.
        let e = execute(&gate, &runner, &c, &run, IncidentContext::default())
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            GateError::WrongState {
                state: RunState::Completed,
                ..
            }
        ));
        assert_eq!(runner.runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn auto_actions_run_on_incident_open_and_errors_are_recorded() {
        let c = clock();
        let runner = Arc::new(CountingRunner::default());
        let mut fails = action("bad", "fails", ActionMode::Auto);
        fails.scope = ActionScope::Route("route.routes[0]".into());
        let gate = parking_lot::Mutex::new(
            RemediationGate::new(vec![
                action("auto", "http-restart", ActionMode::Auto),
                action("manual", "http-restart", ActionMode::Approval),
                fails,
                RemediationAction {
                    scope: ActionScope::Service("other".into()),
                    ..action("elsewhere", "http-restart", ActionMode::Auto)
                },
            ])
            .unwrap(),
        );
        let runs =
            gate.lock()
                .on_incident_opened("inc-7", Some("api"), Some("route.routes[0]"), c.now());
        assert_eq!(runs.len(), 3);
        let states: Vec<RunState> = runs
            .iter()
            .map(|r| gate.lock().run(r).unwrap().state)
            .collect();
        assert_eq!(
            states,
            [
                RunState::Approved,
                RunState::Approved,
                RunState::PendingApproval
            ]
        );
        let rec = execute(
            &gate,
            runner.as_ref(),
            &c,
            &runs[0],
            IncidentContext::default(),
        )
        .await
        .unwrap();
        assert_eq!(rec.approved_by, Approval::Auto);
        assert_eq!(rec.triggered_by, Actor::System);
        let rec = execute(
            &gate,
            runner.as_ref(),
            &c,
            &runs[1],
            IncidentContext::default(),
        )
        .await
        .unwrap();
        assert_eq!(rec.outcome, "error");
        assert_eq!(rec.error, Some(RemediationError::OutOfFuel));
        assert_eq!(runner.runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn dry_run_drops_follow_up_and_rejected_runs_never_start() {
        let c = clock();
        let runner = CountingRunner::default();
        let gate = parking_lot::Mutex::new(
            RemediationGate::new(vec![action(
                "restart",
                "http-restart",
                ActionMode::Approval,
            )])
            .unwrap(),
        );
        let run = gate
            .lock()
            .request_run("restart", "inc-1", Actor::user("alice"), true, c.now())
            .unwrap();
        gate.lock()
            .approve(&run, "m", AccessRole::Manager, c.now())
            .unwrap();
        let rec = execute(&gate, &runner, &c, &run, IncidentContext::default())
            .await
            .unwrap();
        assert!(rec.dry_run);
        assert_eq!(rec.details["dry_run"], true);
        assert_eq!(rec.follow_up, None);

        let run = gate
            .lock()
            .request_run("restart", "inc-1", Actor::user("alice"), false, c.now())
            .unwrap();
        assert!(
            gate.lock()
                .reject(&run, "v", AccessRole::Viewer, c.now())
                .is_err()
        );
        gate.lock()
            .reject(&run, "m", AccessRole::Manager, c.now())
            .unwrap();
        assert!(
            gate.lock()
                .approve(&run, "m", AccessRole::Manager, c.now())
                .is_err()
        );
        assert!(
            execute(&gate, &runner, &c, &run, IncidentContext::default())
                .await
                .is_err()
        );
        assert_eq!(runner.runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn rejecting_needs_the_approval_role_and_a_rejected_run_can_never_be_approved() {
        let c = clock();
        let mut gate = RemediationGate::new(vec![action(
            "restart",
            "http-restart",
            ActionMode::Approval,
        )])
        .unwrap();
        let run = gate
            .request_run("restart", "inc-1", Actor::user("alice"), false, c.now())
            .unwrap();
        let e = gate
            .reject(&run, "bob", AccessRole::Responder, c.now())
            .unwrap_err();
        assert!(
            matches!(
                e,
                GateError::Forbidden {
                    required: AccessRole::Manager,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(gate.run(&run).unwrap().state, RunState::PendingApproval);
        gate.reject(&run, "carol", AccessRole::Manager, c.now())
            .unwrap();
        assert_eq!(gate.run(&run).unwrap().state, RunState::Rejected);
        let e = gate
            .approve(&run, "dave", AccessRole::Admin, c.now())
            .unwrap_err();
        assert!(
            matches!(
                e,
                GateError::WrongState {
                    state: RunState::Rejected,
                    op: "approve",
                    ..
                }
            ),
            "{e}"
        );
        let e = gate
            .reject(&run, "carol", AccessRole::Manager, c.now())
            .unwrap_err();
        assert!(
            matches!(e, GateError::WrongState { op: "reject", .. }),
            "{e}"
        );
        let audit = gate.drain_audit();
        let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "remediation.request",
                "remediation.reject_denied",
                "remediation.reject"
            ]
        );
        assert_eq!(audit[1].actor, Actor::user("bob"));
        assert_eq!(
            audit[1].details["required"],
            serde_json::json!(AccessRole::Manager)
        );
    }

    /// Only the most recently finished runs are kept; pending runs always are, and a
    /// forgotten run's audit entries were recorded before it went.
    #[test]
    fn finished_runs_beyond_the_limit_are_forgotten_oldest_first() {
        let c = clock();
        let mut gate = RemediationGate::new(vec![action(
            "restart",
            "http-restart",
            ActionMode::Approval,
        )])
        .unwrap();
        gate.keep_finished_runs(2);
        let request = |gate: &mut RemediationGate, incident: &str| {
            gate.request_run("restart", incident, Actor::user("alice"), false, c.now())
                .unwrap()
        };
        let pending = request(&mut gate, "inc-0");
        let runs: Vec<String> = (1..=3)
            .map(|i| request(&mut gate, &format!("inc-{i}")))
            .collect();
        gate.reject(&runs[1], "carol", AccessRole::Manager, c.now())
            .unwrap();
        gate.reject(&runs[0], "carol", AccessRole::Manager, c.now())
            .unwrap();
        assert!(gate.run(&runs[1]).is_some() && gate.run(&runs[0]).is_some());
        gate.reject(&runs[2], "carol", AccessRole::Manager, c.now())
            .unwrap();
        // runs[1] finished first: it goes, the two later finishes stay.
        assert!(gate.run(&runs[1]).is_none());
        assert_eq!(gate.run(&runs[0]).unwrap().state, RunState::Rejected);
        assert_eq!(gate.run(&runs[2]).unwrap().state, RunState::Rejected);
        assert_eq!(gate.run(&pending).unwrap().state, RunState::PendingApproval);
        assert!(gate.runs_for("inc-2").is_empty());
        let rejected: Vec<String> = gate
            .drain_audit()
            .into_iter()
            .filter(|a| a.action == "remediation.reject")
            .map(|a| {
                a.details["incident"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(rejected, ["inc-2", "inc-1", "inc-3"]);
        gate.keep_finished_runs(0);
        assert!(gate.run(&runs[0]).is_none() && gate.run(&runs[2]).is_none());
        assert!(gate.run(&pending).is_some());
    }

    #[test]
    fn duplicate_actions_and_roles() {
        let a = action("x", "p", ActionMode::Auto);
        assert_eq!(
            RemediationGate::new(vec![a.clone(), a]).unwrap_err(),
            GateError::DuplicateAction("x".into())
        );
        assert!(AccessRole::Viewer < AccessRole::Responder);
        assert_eq!(AccessRole::parse("manager"), Some(AccessRole::Manager));
        assert_eq!(AccessRole::parse("root"), None);
    }
}
