//! The example plugins, built from source (C via clang-15, AssemblyScript via asc),
//! run against a fake deploy API on 127.0.0.1.

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use common::*;
use signalcraft_core::clock::ManualClock;
use signalcraft_core::remediation::{
    FollowUp, RemediationError, RemediationRunner, RemediationStatus,
};
use signalcraft_plugins::{HostConfig, Manifest, PluginError, PluginHost};

struct World {
    host: PluginHost,
    api: FakeDeployApi,
}

const START: &str = "2026-11-27T03:00:00Z";

/// One host per binary with the three examples loaded, allowlisted to the fake API.
fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let api = FakeDeployApi::start();
        let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
        let host = PluginHost::new(HostConfig::default(), clock).unwrap();
        for name in ["http-restart", "annotate", "scale-up"] {
            let mut m = Manifest::from_file(&examples().join(name).join("plugin.toml"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            m.capabilities.allowed_hosts = vec![format!("127.0.0.1:{}", api.port)];
            host.load_manifest(m)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        World { host, api }
    })
}

fn params(service: &str) -> serde_json::Value {
    serde_json::json!({"endpoint": world().api.endpoint(), "service": service})
}

#[test]
fn http_restart_posts_to_the_deploy_api() {
    let w = world();
    let out = w
        .host
        .invoke(&request("http-restart", params("api")))
        .unwrap();
    assert_eq!(out.status, RemediationStatus::Success, "{out:?}");
    assert_eq!(out.follow_up, Some(FollowUp::Mitigate));
    assert_eq!(out.details["http_status"], 202);
    assert_eq!(out.logs, vec!["requesting restart".to_string()]);
    let seen = w.api.seen();
    let post = seen
        .iter()
        .find(|s| s.path == "/v1/services/api/restart")
        .expect("restart request reached the API");
    assert_eq!(post.method, "POST");
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["incident_id"], "inc-1");
}

#[test]
fn http_restart_reports_api_failure() {
    let out = world()
        .host
        .invoke(&request("http-restart", params("broken")))
        .unwrap();
    assert_eq!(out.status, RemediationStatus::Failure);
    assert_eq!(out.details["http_status"], 500);
    assert_eq!(out.follow_up, None);
}

#[test]
fn http_restart_dry_run_sends_nothing() {
    let w = world();
    let mut req = request("http-restart", params("dry-svc"));
    req.dry_run = true;
    let out = w.host.invoke(&req).unwrap();
    assert_eq!(out.status, RemediationStatus::Noop);
    assert_eq!(
        out.details["url"],
        format!("{}/v1/services/dry-svc/restart", w.api.endpoint())
    );
    assert!(w.api.seen().iter().all(|s| !s.path.contains("dry-svc")));
}

#[test]
fn http_restart_outside_allowlist_is_denied() {
    // Another host, same module, allowlisted only to a port nobody listens on.
    let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
    let host = PluginHost::new(HostConfig::default(), clock).unwrap();
    let mut m = Manifest::from_file(&examples().join("http-restart/plugin.toml")).unwrap();
    m.capabilities.allowed_hosts = vec!["127.0.0.1:1".into()];
    host.load_manifest(m).unwrap();
    let e = host
        .invoke(&request("http-restart", params("api")))
        .unwrap_err();
    assert!(matches!(e, PluginError::Denied { .. }), "{e}");
}

#[test]
fn missing_required_param_is_refused_before_running() {
    let e = world()
        .host
        .invoke(&request(
            "http-restart",
            serde_json::json!({"service": "api"}),
        ))
        .unwrap_err();
    assert!(
        matches!(&e, PluginError::InvalidParams { field, .. } if field == "endpoint"),
        "{e}"
    );
}

#[test]
fn annotate_adds_a_note_with_facts_and_counts_in_kv() {
    let w = world();
    let first = w.host.invoke(&request("annotate", params("api"))).unwrap();
    assert_eq!(first.status, RemediationStatus::Success, "{first:?}");
    match &first.follow_up {
        Some(FollowUp::Note { text }) => {
            assert!(text.contains("facts for api"), "{text}");
            assert!(text.contains("1.4.2"), "{text}");
        }
        other => panic!("expected a note, got {other:?}"),
    }
    let start: jiff::Timestamp = START.parse().unwrap();
    assert_eq!(first.details["gathered_at_ms"], start.as_millisecond());
    let second = w.host.invoke(&request("annotate", params("api"))).unwrap();
    let n1 = first.details["notes_added"].as_i64().unwrap();
    let n2 = second.details["notes_added"].as_i64().unwrap();
    assert_eq!(n2, n1 + 1, "kv keeps state across runs");
}

#[test]
fn scale_up_in_assemblyscript_scales_then_respects_cooldown_and_max() {
    let w = world();
    *w.api.replicas.lock().unwrap() = 2;
    let p = |extra: serde_json::Value| {
        let mut v = params("web");
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let mut dry = request("scale-up", p(serde_json::json!({"step": 2})));
    dry.dry_run = true;
    let out = w.host.invoke(&dry).unwrap();
    assert_eq!(out.status, RemediationStatus::Noop, "{out:?}");
    assert_eq!(out.details, serde_json::json!({"from": 2, "to": 4}));
    assert_eq!(
        *w.api.replicas.lock().unwrap(),
        2,
        "dry run changed nothing"
    );

    let out = w
        .host
        .invoke(&request(
            "scale-up",
            p(serde_json::json!({"step": 2, "cooldown_ms": 60000})),
        ))
        .unwrap();
    assert_eq!(out.status, RemediationStatus::Success, "{out:?}");
    assert_eq!(out.details, serde_json::json!({"from": 2, "to": 4}));
    assert_eq!(*w.api.replicas.lock().unwrap(), 4);
    assert!(matches!(&out.follow_up, Some(FollowUp::Note { text }) if text.contains("web")));

    // Within the cooldown (the clock has not moved): nothing happens.
    let out = w
        .host
        .invoke(&request(
            "scale-up",
            p(serde_json::json!({"cooldown_ms": 60000})),
        ))
        .unwrap();
    assert_eq!(out.status, RemediationStatus::Noop, "{out:?}");
    assert!(out.message.contains("cooldown"), "{}", out.message);

    // Capped at max_replicas.
    let out = w
        .host
        .invoke(&request(
            "scale-up",
            p(serde_json::json!({"step": 10, "max_replicas": 5})),
        ))
        .unwrap();
    assert_eq!(out.details, serde_json::json!({"from": 4, "to": 5}));
    assert_eq!(*w.api.replicas.lock().unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_through_the_core_runner_trait() {
    let runner: Arc<dyn RemediationRunner> = Arc::new(world().host.clone());
    assert!(runner.plugins().contains(&"annotate".to_string()));
    let out = runner
        .run(request("annotate", params("api")))
        .await
        .unwrap();
    assert_eq!(out.status, RemediationStatus::Success);
    let e = runner
        .run(request("missing", params("api")))
        .await
        .unwrap_err();
    assert_eq!(e, RemediationError::UnknownPlugin("missing".into()));
}

#[test]
fn precompiled_cache_is_used_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let config = HostConfig {
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    };
    let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
    let host = PluginHost::new(config, clock).unwrap();
    let manifest = examples().join("annotate/plugin.toml");
    host.load(&manifest).unwrap();
    let files = cache_files(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let first = std::fs::read(&files[0]).unwrap();

    host.load(&manifest).unwrap(); // from the cache: the file is untouched
    assert_eq!(std::fs::read(&files[0]).unwrap(), first);

    // Corrupt one byte of the payload: the SHA-256 check refuses it, the module is
    // recompiled, and a good file replaces the bad one.
    let mut bad = first.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&files[0], &bad).unwrap();
    host.load(&manifest).unwrap();
    assert_eq!(std::fs::read(&files[0]).unwrap().len(), first.len());
    assert_ne!(std::fs::read(&files[0]).unwrap(), bad);
    assert!(host.plugins().contains(&"annotate".to_string()));
}

fn cache_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_gate_keeps_unapproved_runs_away_from_the_deploy_api() {
    use signalcraft_core::clock::Clock;
    use signalcraft_core::incident::Actor;
    use signalcraft_core::remediation::gate::{
        AccessRole, ActionMode, ActionScope, Approval, GateError, IncidentContext,
        RemediationAction, RemediationGate, execute,
    };

    let w = world();
    let role = w
        .host
        .plugin("http-restart")
        .unwrap()
        .manifest()
        .approval_role();
    assert_eq!(role, AccessRole::Responder);
    let gate = parking_lot::Mutex::new(
        RemediationGate::new(vec![RemediationAction {
            id: "restart-gated".into(),
            plugin: "http-restart".into(),
            scope: ActionScope::Service("gated".into()),
            mode: ActionMode::Approval,
            params: params("gated"),
            dry_run: false,
            approval_role: role,
        }])
        .unwrap(),
    );
    let clock = ManualClock::new(START.parse().unwrap());
    let runs = gate
        .lock()
        .on_incident_opened("inc-9", Some("gated"), None, clock.now());
    let [run] = runs.as_slice() else {
        panic!("{runs:?}")
    };
    let hits = || {
        w.api
            .seen()
            .iter()
            .filter(|s| s.path.contains("/gated/"))
            .count()
    };

    let e = execute(&gate, &w.host, &clock, run, IncidentContext::default())
        .await
        .unwrap_err();
    assert!(matches!(e, GateError::WrongState { .. }), "{e}");
    let e = gate
        .lock()
        .approve(run, "viewer-vic", AccessRole::Viewer, clock.now())
        .unwrap_err();
    assert!(matches!(e, GateError::Forbidden { .. }), "{e}");
    assert_eq!(hits(), 0, "nothing reached the deploy API before approval");
    assert!(
        gate.lock()
            .drain_audit()
            .iter()
            .any(|a| a.action == "remediation.approve_denied"
                && a.actor == Actor::user("viewer-vic"))
    );

    gate.lock()
        .approve(run, "resp-rita", AccessRole::Responder, clock.now())
        .unwrap();
    let rec = execute(&gate, &w.host, &clock, run, IncidentContext::default())
        .await
        .unwrap();
    assert_eq!(hits(), 1);
    assert_eq!(rec.outcome, "success");
    assert_eq!(rec.incident_id, "inc-9");
    assert!(matches!(rec.approved_by, Approval::User { ref id, .. } if id == "resp-rita"));
    assert!(rec.fuel_used > 0 && rec.memory_peak > 0);
    let audit = gate.lock().drain_audit();
    let run_entry = audit
        .iter()
        .find(|a| a.action == "remediation.run")
        .unwrap();
    assert_eq!(run_entry.target, "incident/inc-9");
    assert_eq!(run_entry.details["outcome"], "success");
}
