//! Remediation over HTTP against a running server built with the `remediation` feature:
//! a real WASM module (WAT compiled with the `wat` crate, pinned by its SHA-256 in a
//! plugin manifest) runs on the wasmtime plugin host when an incident opens, its run
//! shows in the incident timeline and the audit log, and approval-mode runs need the
//! explicit `approve_remediation` permission plus the plugin's approval role.
#![cfg(feature = "remediation")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The plugin's output document (ABI v1): success, with a note follow-up.
const OUTPUT: &str = r#"{"status":"success","message":"restarted api","details":{"restarts":1},"follow_up":{"type":"note","text":"api restarted by remediation"}}"#;

/// A guest that ignores its input and returns [`OUTPUT`]: memory, a bump `alloc`
/// above the output, and `remediate` returning `(ptr << 32) | len`.
fn plugin_wasm() -> Vec<u8> {
    let escaped = OUTPUT.replace('\\', "\\\\").replace('"', "\\\"");
    let text = format!(
        r#"(module
  (memory (export "memory") 2)
  (global $top (mut i32) (i32.const 4096))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $top))
    (global.set $top (i32.add (global.get $top) (local.get $n)))
    (block $ok
      (br_if $ok (i32.le_u (global.get $top) (i32.mul (memory.size) (i32.const 65536))))
      (drop (memory.grow (i32.add (i32.const 1)
        (i32.div_u (i32.sub (global.get $top) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536))))))
    (local.get $p))
  (data (i32.const 16) "{escaped}")
  (func (export "remediate") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {len}))))"#,
        len = OUTPUT.len()
    );
    wat::parse_str(&text).expect("valid WAT")
}

/// A server with plugin `restart` and two actions on the root route: `auto-restart`
/// (auto) and `manual-restart` (approval by a manager).
async fn server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let wasm = plugin_wasm();
    std::fs::write(dir.path().join("restart.wasm"), &wasm).unwrap();
    let manifest = format!(
        r#"name = "restart"
version = "1.0.0"
module = "restart.wasm"
sha256 = "{}"
approval_role = "manager"

[limits]
fuel = 10_000_000
memory_bytes = 1_048_576
timeout_ms = 5000
"#,
        hex::encode(Sha256::digest(&wasm))
    );
    std::fs::write(dir.path().join("restart.toml"), manifest).unwrap();
    let toml = r#"
[features]
remediation = true

[remediation]
plugins = ["{dir}/restart.toml"]

[[remediation.actions]]
id = "auto-restart"
plugin = "restart"
scope = { kind = "route", name = "route" }
mode = "auto"
approval_role = "manager"

[[remediation.actions]]
id = "manual-restart"
plugin = "restart"
scope = { kind = "route", name = "route" }
mode = "approval"
approval_role = "manager"

[route]
receiver = "oncall"
group_by = ["alertname"]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"
"#;
    start_in(dir, toml, |_| {}).await
}

async fn token(sc: &TestServer, name: &str, role: &str, perms: &[&str]) -> String {
    let r = sc
        .post_json(
            "/api/v1/tokens",
            Some(&sc.admin),
            &json!({"name": name, "role": role, "permissions": perms, "user": name}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

async fn detail(sc: &TestServer, id: &str) -> Value {
    sc.get(&format!("/api/v1/incidents/{id}"), Some(&sc.admin))
        .await
        .json()
        .await
        .unwrap()
}

fn entries<'a>(d: &'a Value, kind: &str) -> Vec<&'a Value> {
    d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

async fn audit_actions(sc: &TestServer) -> Vec<(String, Value)> {
    let v: Value = sc
        .get("/api/v1/audit?limit=500", Some(&sc.admin))
        .await
        .json()
        .await
        .unwrap();
    let items = v["items"]
        .as_array()
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default();
    items
        .into_iter()
        .map(|e| (e["action"].as_str().unwrap_or("").to_string(), e))
        .collect()
}

async fn open_incident(sc: &TestServer) -> String {
    let alerts = json!([{"labels": {"alertname": "ApiDown", "service": "api"}}]);
    assert_eq!(
        sc.post_json("/api/v2/alerts", None, &alerts).await.status(),
        200
    );
    let items = sc
        .wait_incidents(Duration::from_secs(10), "incident", |i| !i.is_empty())
        .await;
    items[0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn auto_remediation_runs_when_an_incident_opens_and_shows_in_the_timeline() {
    let sc = server().await;
    let id = open_incident(&sc).await;
    // The auto action runs on its own: its run and its note follow-up appear.
    let deadline = Instant::now() + Duration::from_secs(15);
    let d = loop {
        let d = detail(&sc, &id).await;
        if !entries(&d, "remediation_run").is_empty() && !entries(&d, "note").is_empty() {
            break d;
        }
        assert!(Instant::now() < deadline, "no remediation run: {d:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let runs = entries(&d, "remediation_run");
    assert_eq!(runs.len(), 1, "only the auto action runs: {d:#}");
    assert_eq!(runs[0]["plugin"], "restart");
    assert_eq!(runs[0]["status"], "success");
    assert_eq!(runs[0]["message"], "restarted api");
    assert_eq!(runs[0]["actor"]["name"], "restart");
    let note = entries(&d, "note")[0];
    assert_eq!(note["text"], "api restarted by remediation");
    assert_eq!(note["actor"]["name"], "restart");

    // The API lists both actions: the auto run completed, the approval run waits.
    let v: Value = sc
        .get(
            &format!("/api/v1/incidents/{id}/remediations"),
            Some(&sc.admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["actions"].as_array().unwrap().len(), 2, "{v:#}");
    let state_of = |action: &str| -> Vec<String> {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action_id"] == action)
            .map(|r| r["state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(state_of("auto-restart"), ["completed"]);
    assert_eq!(state_of("manual-restart"), ["pending_approval"]);
    if have_jsonschema() {
        let doc: Value = sc
            .get("/api/openapi.json", None)
            .await
            .json()
            .await
            .unwrap();
        let schema = response_schema(&doc, "/api/v1/incidents/{id}/remediations", "get", "200");
        let errors = validate(&doc, &schema, &v);
        assert!(errors.is_empty(), "{}\n{v:#}", errors.join("\n"));
    }

    // Audit: both requests (by the system) and the run with its record.
    let audit = audit_actions(&sc).await;
    let requests = audit
        .iter()
        .filter(|(a, _)| a == "remediation.request")
        .count();
    assert_eq!(requests, 2, "{audit:#?}");
    let run = audit
        .iter()
        .find(|(a, _)| a == "remediation.run")
        .map(|(_, e)| e.clone())
        .expect("remediation.run audited");
    assert_eq!(run["details"]["outcome"], "success");
    assert_eq!(run["details"]["approved_by"]["type"], "auto");
    assert!(run["details"]["fuel_used"].as_u64().unwrap() > 0, "{run:#}");
    assert_eq!(run["target"], format!("incident/{id}"));
}

#[tokio::test]
async fn approving_needs_the_permission_and_the_plugins_role() {
    let sc = server().await;
    let id = open_incident(&sc).await;
    // Wait for the runs created on open.
    let deadline = Instant::now() + Duration::from_secs(15);
    let pending = loop {
        let v: Value = sc
            .get(
                &format!("/api/v1/incidents/{id}/remediations"),
                Some(&sc.admin),
            )
            .await
            .json()
            .await
            .unwrap();
        let found = v["runs"].as_array().and_then(|runs| {
            runs.iter()
                .find(|r| r["action_id"] == "manual-restart")
                .map(|r| r["id"].as_str().unwrap().to_string())
        });
        if let Some(run) = found {
            break run;
        }
        assert!(Instant::now() < deadline, "no pending run: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let approve = format!("/api/v1/remediations/{pending}/approve");

    // Unauthenticated, an admin without the permission, a viewer: refused, nothing runs.
    assert_eq!(sc.post_json(&approve, None, &json!({})).await.status(), 401);
    let admin_without = token(&sc, "adam", "admin", &[]).await;
    let r = sc
        .post_json(&approve, Some(&admin_without), &json!({}))
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let viewer = token(&sc, "vera", "viewer", &["approve_remediation"]).await;
    assert_eq!(
        sc.post_json(&approve, Some(&viewer), &json!({}))
            .await
            .status(),
        403
    );
    // A responder with the permission is below the plugin's approval role (manager):
    // refused by the gate, and the refusal is audited.
    let responder = token(&sc, "rita", "responder", &["approve_remediation"]).await;
    let r = sc.post_json(&approve, Some(&responder), &json!({})).await;
    assert_eq!(r.status(), 403);
    let p: Value = r.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("Manager"), "{p:#}");
    let audit = audit_actions(&sc).await;
    let denied = audit
        .iter()
        .find(|(a, _)| a == "remediation.approve_denied")
        .map(|(_, e)| e.clone())
        .expect("refusal audited");
    assert_eq!(denied["actor"]["id"], "rita");
    let d = detail(&sc, &id).await;
    let runs_before = entries(&d, "remediation_run").len();

    // A manager with the permission approves: it runs and is recorded.
    let manager = token(&sc, "max", "manager", &["approve_remediation"]).await;
    let r = sc.post_json(&approve, Some(&manager), &json!({})).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "completed");
    assert_eq!(v["record"]["outcome"], "success");
    assert_eq!(v["record"]["approved_by"]["id"], "max");
    assert_eq!(v["record"]["triggered_by"]["type"], "system");
    if have_jsonschema() {
        let doc: Value = sc
            .get("/api/openapi.json", None)
            .await
            .json()
            .await
            .unwrap();
        let schema = response_schema(&doc, "/api/v1/remediations/{run}/approve", "post", "200");
        let errors = validate(&doc, &schema, &v);
        assert!(errors.is_empty(), "{}\n{v:#}", errors.join("\n"));
    }
    let d = detail(&sc, &id).await;
    assert_eq!(entries(&d, "remediation_run").len(), runs_before + 1);
    // Approving again: 409, no second run.
    let r = sc.post_json(&approve, Some(&manager), &json!({})).await;
    assert_eq!(r.status(), 409);

    // A run requested by a responder can be rejected (with the permission) and then
    // never runs.
    let r = sc
        .post_json(
            &format!("/api/v1/incidents/{id}/remediations"),
            Some(&responder),
            &json!({"action": "manual-restart"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "pending_approval");
    let run = v["run"].as_str().unwrap().to_string();
    let reject = format!("/api/v1/remediations/{run}/reject");
    assert_eq!(
        sc.post_json(&reject, Some(&admin_without), &json!({}))
            .await
            .status(),
        403
    );
    assert_eq!(
        sc.post_json(&reject, Some(&manager), &json!({}))
            .await
            .status(),
        204
    );
    let r = sc
        .post_json(
            &format!("/api/v1/remediations/{run}/approve"),
            Some(&manager),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        entries(&detail(&sc, &id).await, "remediation_run").len(),
        runs_before + 1
    );
    // Unknown action and unknown run: 404.
    let r = sc
        .post_json(
            &format!("/api/v1/incidents/{id}/remediations"),
            Some(&responder),
            &json!({"action": "nope"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = sc
        .post_json(
            "/api/v1/remediations/rem-9999999999/approve",
            Some(&manager),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 404);
    let audit = audit_actions(&sc).await;
    for action in ["remediation.approve", "remediation.reject"] {
        assert!(
            audit.iter().any(|(a, _)| a == action),
            "{action} not audited"
        );
    }
}
