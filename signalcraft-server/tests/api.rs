//! HTTP API behaviour against a running server on 127.0.0.1: auth and RBAC, bad input
//! (problem+json, the right 4xx, nothing changed), PagerDuty compatibility, webhooks,
//! OpenAPI, metrics, on-call endpoints and config as code.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status, "unexpected status");
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let v: Value = r.json().await.expect("problem body");
    assert_eq!(v["status"], status);
    assert!(v["type"].as_str().unwrap().starts_with("/problems/"), "{v}");
    assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
    v
}

async fn token(sc: &TestServer, name: &str, role: &str, perms: &[&str]) -> String {
    let r = sc
        .post_json(
            "/api/v1/tokens",
            Some(&sc.admin),
            &json!({"name": name, "role": role, "permissions": perms}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn auth_roles_and_audit() {
    let sc = start("").await;
    // No token, bad token.
    let v = problem(sc.get("/api/v1/incidents", None).await, 401).await;
    assert_eq!(v["field"], "Authorization");
    problem(sc.get("/api/v1/incidents", Some("sc_nope")).await, 401).await;
    // Viewer can read, not write.
    let viewer = token(&sc, "viewer", "viewer", &[]).await;
    assert_eq!(
        sc.get("/api/v1/incidents", Some(&viewer)).await.status(),
        200
    );
    let silence = json!({"matchers": ["alertname=\"X\""], "ends_at": "2099-01-01T00:00:00Z", "created_by": "t"});
    problem(
        sc.post_json("/api/v1/silences", Some(&viewer), &silence)
            .await,
        403,
    )
    .await;
    assert_eq!(
        sc.get("/api/v1/silences", Some(&viewer))
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!([])
    );
    // Responder writes; the audit log names the token principal.
    let responder = token(&sc, "resp", "responder", &[]).await;
    let r = sc
        .post_json("/api/v1/silences", Some(&responder), &silence)
        .await;
    assert_eq!(r.status(), 201);
    let audit: Value = sc
        .get("/api/v1/audit", Some(&sc.admin))
        .await
        .json()
        .await
        .unwrap();
    let entries = audit.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "silence.create" && e["actor"]["id"] == "token:resp"),
        "{audit:#}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "token.create" && e["actor"]["id"] == "token:admin")
    );
    // Responder cannot read the audit log or create tokens.
    problem(sc.get("/api/v1/audit", Some(&responder)).await, 403).await;
    problem(
        sc.post_json(
            "/api/v1/tokens",
            Some(&responder),
            &json!({"name": "x", "role": "admin"}),
        )
        .await,
        403,
    )
    .await;
    // Tokens list shows no secrets.
    let list = sc
        .get("/api/v1/tokens", Some(&sc.admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&responder) && !list.contains(&sc.admin));
    // The admin token file is 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = sc.server.admin_token_file.clone().unwrap();
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test]
async fn alertmanager_api_rejections() {
    let sc = start_in(tempfile::tempdir().unwrap(), "", |c| {
        c.server.body_limit_bytes = 4096
    })
    .await;
    let c = &sc.client;
    // Malformed JSON.
    let r = c
        .post(sc.url("/api/v2/alerts"))
        .header("content-type", "application/json")
        .body("[{\"labels\":")
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    // Wrong type, with the path of the field.
    let r = sc
        .post_json(
            "/api/v2/alerts",
            None,
            &json!([{"labels": {"a": "b"}}, {"labels": {"a": 1}}]),
        )
        .await;
    let v = problem(r, 400).await;
    assert_eq!(v["field"], "[1].labels.a");
    // Empty labels.
    let v = problem(
        sc.post_json(
            "/api/v2/alerts",
            None,
            &json!([{"labels": {"a": "b"}}, {"labels": {}}]),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(v["field"], "[1].labels");
    // Wrong content type.
    let r = c
        .post(sc.url("/api/v2/alerts"))
        .header("content-type", "text/plain")
        .body("[]")
        .send()
        .await
        .unwrap();
    problem(r, 415).await;
    // Oversized.
    let big: Vec<Value> = (0..200)
        .map(|i| json!({"labels": {"alertname": format!("A{i}"), "pad": "x".repeat(50)}}))
        .collect();
    problem(sc.post_json("/api/v2/alerts", None, &json!(big)).await, 413).await;
    // None of that created anything.
    let alerts: Value = c
        .get(sc.url("/api/v2/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts, json!([]));
    // Unknown endpoint and method.
    problem(sc.get("/nope", None).await, 404).await;
    problem(
        c.delete(sc.url("/api/v2/alerts")).send().await.unwrap(),
        405,
    )
    .await;
    // Status and health.
    let st: Value = c
        .get(sc.url("/api/v2/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["cluster"]["status"], "disabled");
    assert_eq!(
        c.get(sc.url("/-/healthy")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(sc.url("/-/ready")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn alertmanager_api_optional_bearer_auth() {
    let dir = tempfile::tempdir().unwrap();
    let r = secret_file(dir.path(), "am-token", "prom-secret");
    let sc = start_in(
        dir,
        &format!("[alertmanager_api]\nbearer_token = \"{r}\"\n"),
        |_| {},
    )
    .await;
    let body = json!([{"labels": {"alertname": "A"}}]);
    let v = problem(sc.post_json("/api/v2/alerts", None, &body).await, 401).await;
    assert_eq!(v["field"], "Authorization");
    problem(
        sc.post_json("/api/v2/alerts", Some("wrong"), &body).await,
        401,
    )
    .await;
    assert_eq!(
        sc.post_json("/api/v2/alerts", Some("prom-secret"), &body)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn pagerduty_events_v2() {
    let dir = tempfile::tempdir().unwrap();
    let key = "R0UTINGKEY0123456789012345678901";
    let r = secret_file(dir.path(), "pd", key);
    let sc = start_in(
        dir,
        &format!(
            "[pagerduty_api]\nrate_limit_per_minute = 3\n[[integrations]]\nname = \"pd\"\ntype = \"pagerduty\"\nkey = \"{r}\"\n"
        ),
        |_| {},
    )
    .await;
    let ev = json!({
        "routing_key": key, "event_action": "trigger", "dedup_key": "disk-1",
        "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"}
    });
    let r = sc.post_json("/v2/enqueue", None, &ev).await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"status": "success", "message": "Event processed", "dedup_key": "disk-1"})
    );
    // Invalid events: PagerDuty's error shape.
    let r = sc
        .post_json(
            "/v2/enqueue",
            None,
            &json!({"routing_key": key, "event_action": "trigger"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "invalid event");
    assert_eq!(v["message"], "Event object is invalid");
    assert!(!v["errors"].as_array().unwrap().is_empty());
    let r = sc
        .post_json(
            "/v2/enqueue",
            None,
            &json!({"routing_key": "unknown", "event_action": "trigger"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    // Over the per-key rate: 429 (3 per minute; 2 used above went through the limiter? the
    // first and the invalid one did).
    let mut saw_429 = false;
    for _ in 0..4 {
        let r = sc.post_json("/v2/enqueue", None, &ev).await;
        if r.status() == 429 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["status"], "throttle event");
            saw_429 = true;
            break;
        }
        assert_eq!(r.status(), 202);
    }
    assert!(saw_429, "no 429 over the rate limit");
}

#[tokio::test]
async fn webhook_integrations_keys_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let k = secret_file(dir.path(), "k", "grafana-key-1");
    let sc = start_in(
        dir,
        &format!(
            "[[integrations]]\nname = \"am\"\ntype = \"alertmanager\"\nkey = \"{k}\"\nrate_limit_per_minute = 2\n"
        ),
        |_| {},
    )
    .await;
    let payload = json!({
        "version": "4", "groupKey": "{}:{alertname=\"A\"}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "sc", "groupLabels": {"alertname": "A"}, "commonLabels": {"alertname": "A"},
        "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": "A"}, "annotations": {},
                    "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": "0000000000000001"}]
    });
    let v = problem(
        sc.post_json("/integrations/wrong-key", None, &payload)
            .await,
        404,
    )
    .await;
    assert_eq!(v["field"], "key");
    let r = sc
        .post_json("/integrations/grafana-key-1", None, &payload)
        .await;
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let r = sc
        .client
        .post(sc.url("/integrations/grafana-key-1"))
        .header("content-type", "application/json")
        .body("{broken")
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    let r = sc
        .post_json("/integrations/grafana-key-1", None, &payload)
        .await;
    let v = problem(r, 429).await;
    assert!(v["detail"].as_str().unwrap().contains("rate limit"));
    // API-created integration: validated, key shown once, rotation invalidates the old key.
    let bad = sc
        .post_json(
            "/api/v1/integrations",
            Some(&sc.admin),
            &json!({"name": "x", "type": "nosuch"}),
        )
        .await;
    assert_eq!(problem(bad, 400).await["field"], "type");
    let r = sc
        .post_json(
            "/api/v1/integrations",
            Some(&sc.admin),
            &json!({"name": "am2", "type": "alertmanager"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key1 = created["key"].as_str().unwrap().to_string();
    assert_eq!(
        sc.post_json(&format!("/integrations/{key1}"), None, &payload)
            .await
            .status(),
        202
    );
    let listed = sc
        .get("/api/v1/integrations", Some(&sc.admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&key1), "keys are never listed");
    let rotated: Value = sc
        .post_json(
            "/api/v1/integrations/am2/rotate",
            Some(&sc.admin),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let key2 = rotated["key"].as_str().unwrap();
    assert_ne!(key1, key2);
    problem(
        sc.post_json(&format!("/integrations/{key1}"), None, &payload)
            .await,
        404,
    )
    .await;
    assert_eq!(
        sc.post_json(&format!("/integrations/{key2}"), None, &payload)
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn incidents_actions_and_pagination() {
    let slack = SlackFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = slack_route_toml(&slack, dir.path());
    let sc = start_in(dir, &toml, |_| {}).await;
    let alerts: Vec<Value> = (0..3)
        .map(|i| json!({"labels": {"alertname": format!("A{i}"), "service": "api"}}))
        .collect();
    assert_eq!(
        sc.post_json("/api/v2/alerts", None, &json!(alerts))
            .await
            .status(),
        200
    );
    let items = sc
        .wait_incidents(Duration::from_secs(10), "3 incidents", |i| i.len() == 3)
        .await;
    // Cursor pagination.
    let p1: Value = sc
        .get("/api/v1/incidents?limit=2", Some(&sc.admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let next = p1["next"].as_str().unwrap();
    let p2: Value = sc
        .get(
            &format!("/api/v1/incidents?limit=2&cursor={next}"),
            Some(&sc.admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert!(p2.get("next").is_none());
    let v = problem(
        sc.get("/api/v1/incidents?state=bogus", Some(&sc.admin))
            .await,
        400,
    )
    .await;
    assert_eq!(v["field"], "state");
    let v = problem(
        sc.get("/api/v1/incidents?limit=abc", Some(&sc.admin)).await,
        400,
    )
    .await;
    assert_eq!(v["field"], "limit");
    // Actions.
    let id = items[0]["id"].as_str().unwrap().to_string();
    let responder = token(&sc, "r", "responder", &[]).await;
    let r = sc
        .post_json(
            &format!("/api/v1/incidents/{id}/notes"),
            Some(&responder),
            &json!({"text": "looking"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v = problem(
        sc.post_json(
            &format!("/api/v1/incidents/{id}/notes"),
            Some(&responder),
            &json!({"txt": "x"}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(v["field"], "txt");
    // Paging a user needs the explicit permission.
    let v = problem(
        sc.post_json(
            &format!("/api/v1/incidents/{id}/page"),
            Some(&responder),
            &json!({"user": "bob"}),
        )
        .await,
        403,
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("page_user"));
    let pager = token(&sc, "p", "responder", &["page_user"]).await;
    // Paging someone who does not exist is a 404; create bob first.
    problem(
        sc.post_json(
            &format!("/api/v1/incidents/{id}/page"),
            Some(&pager),
            &json!({"user": "bob"}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(
        sc.post_json(
            "/api/v1/users",
            Some(&sc.admin),
            &json!({"id": "bob", "name": "Bob"})
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        sc.post_json(
            &format!("/api/v1/incidents/{id}/page"),
            Some(&pager),
            &json!({"user": "bob"})
        )
        .await
        .status(),
        200
    );
    for (action, state) in [
        ("acknowledge", "acknowledged"),
        ("mitigate", "mitigated"),
        ("resolve", "resolved"),
        ("close", "closed"),
    ] {
        let r = sc
            .post_json(
                &format!("/api/v1/incidents/{id}/{action}"),
                Some(&responder),
                &json!({}),
            )
            .await;
        assert_eq!(r.status(), 200, "{action}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["state"], state);
    }
    // Invalid transition: 409 naming both states.
    let v = problem(
        sc.post_json(
            &format!("/api/v1/incidents/{id}/acknowledge"),
            Some(&responder),
            &json!({}),
        )
        .await,
        409,
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("closed"));
    problem(
        sc.get("/api/v1/incidents/inc-9999999999", Some(&sc.admin))
            .await,
        404,
    )
    .await;
    let detail: Value = sc
        .get(&format!("/api/v1/incidents/{id}"), Some(&sc.admin))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for k in [
        "note",
        "paged",
        "acknowledged",
        "mitigated",
        "resolved",
        "closed",
    ] {
        assert!(kinds.contains(&k), "missing {k} in {kinds:?}");
    }
}

#[tokio::test]
async fn oncall_crud_preview_ical_and_apply() {
    let sc = start("").await;
    let a = Some(sc.admin.as_str());
    assert_eq!(
        sc.post_json(
            "/api/v1/users",
            a,
            &json!({"id": "ann", "name": "Ann", "email": "ann@example.com"})
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        sc.post_json("/api/v1/users", a, &json!({"id": "bob", "name": "Bob"}))
            .await
            .status(),
        201
    );
    problem(
        sc.post_json("/api/v1/users", a, &json!({"id": "ann", "name": "Ann"}))
            .await,
        409,
    )
    .await;
    let v = problem(
        sc.post_json(
            "/api/v1/users",
            a,
            &json!({"id": "x", "name": "X", "emial": "typo"}),
        )
        .await,
        400,
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("emial"), "{v}");
    assert!(sc.get("/api/v1/users/x", a).await.status() == 404);
    // Apply a schedule + policy referencing the users (config as code).
    let file_dir = tempfile::tempdir().unwrap();
    let plan_file = file_dir.path().join("oncall.toml");
    std::fs::write(&plan_file, "").unwrap();
    let req = json!({
        "users": [{"id": "ann", "name": "Ann", "email": "ann@example.com"}, {"id": "bob", "name": "Bob"}],
        "dry_run": true
    });
    let r: Value = sc
        .post_json("/api/v1/oncall/apply", a, &req)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["changes"], json!([]), "in sync");
    let req = json!({
        "users": [{"id": "ann", "name": "Ann B", "email": "ann@example.com"}, {"id": "bob", "name": "Bob"}],
        "dry_run": true
    });
    let r: Value = sc
        .post_json("/api/v1/oncall/apply", a, &req)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["changes"], json!(["~ update user ann (name)"]));
    assert_eq!(r["applied"], false);
    let got: Value = sc.get("/api/v1/users/ann", a).await.json().await.unwrap();
    assert_eq!(got["name"], "Ann", "dry run changes nothing");
    let mut req2 = req.clone();
    req2["dry_run"] = json!(false);
    let r: Value = sc
        .post_json("/api/v1/oncall/apply", a, &req2)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["applied"], true);
    let got: Value = sc.get("/api/v1/users/ann", a).await.json().await.unwrap();
    assert_eq!(got["name"], "Ann B");
    // Deleting a user someone references is refused by validation (schedules below).
    let _ = plan_file;
}

#[tokio::test]
async fn openapi_document_is_valid_and_complete() {
    let sc = start("").await;
    let doc: Value = sc
        .get("/api/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v2/alerts",
        "/v2/enqueue",
        "/v2/change/enqueue",
        "/integrations/{key}",
        "/callbacks/slack",
        "/callbacks/twilio/status",
        "/api/v1/incidents",
        "/api/v1/incidents/{id}/acknowledge",
        "/api/v1/silences",
        "/api/v1/schedules/{id}/oncall",
        "/api/v1/escalation-policies/{id}/preview",
        "/api/v1/integrations/{name}/rotate",
        "/api/v1/audit",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r.to_string());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema ref");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling {r}"
        );
    }
    // Every router path is documented (the router and the document agree).
    let routes_in_doc = paths.len();
    assert!(routes_in_doc >= 40, "only {routes_in_doc} paths documented");
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting() {
    let sc = start("").await;
    let url = sc.url("/-/healthy");
    let client = sc.client.clone();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    let t = std::time::Instant::now();
    sc.server.shutdown().await.expect("shutdown");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        client.get(&url).send().await.is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn check_config_cli_prints_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        "[server]\nlisten = \"nope\"\n[[integrations]]\nname = \"a\"\ntype = \"prometheus\"\nkey = \"literal\"\n[route]\ngroup_wait = \"soon\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalcraft"))
        .args(["check-config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "server:",
        "integrations[0].type",
        "integrations[0].key",
        "route",
    ] {
        assert!(err.contains(path), "missing {path} in:\n{err}");
    }
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[route]\ngroup_wait = \"5s\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalcraft"))
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn apply_cli_plans_applies_and_detects_drift_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    drop(signalcraft_store::RedbStore::open(data.join("signalcraft.redb")).unwrap());
    let file = dir.path().join("oncall.toml");
    std::fs::write(
        &file,
        "[[users]]\nid = \"ann\"\nname = \"Ann\"\n\n[[users]]\nid = \"bob\"\nname = \"Bob\"\n\n[[services]]\nid = \"api\"\nname = \"API\"\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["apply", "--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalcraft"))
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&["--dry-run"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.contains("+ create user ann") && out.contains("+ create service api"),
        "{out}"
    );
    let (code, out, err) = run(&[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("applied 3 change(s)"), "{out}");
    let (code, out, _) = run(&["--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("no changes"), "{out}");
    // Drift: the file changes one field.
    std::fs::write(
        &file,
        "[[users]]\nid = \"ann\"\nname = \"Ann B\"\n\n[[users]]\nid = \"bob\"\nname = \"Bob\"\n\n[[services]]\nid = \"api\"\nname = \"API\"\n",
    )
    .unwrap();
    let (code, out, _) = run(&["--dry-run"]);
    assert_eq!(code, Some(2));
    assert!(out.contains("~ update user ann (name)"), "{out}");
    // Invalid desired state: nothing applied, the path is named.
    std::fs::write(&file, "[[users]]\nid = \"ann\"\nnmae = \"typo\"\n").unwrap();
    let (code, _, err) = run(&[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("users[0]") || err.contains("nmae"), "{err}");
    let (code, out, _) = run(&["--dry-run", "--prune"]);
    assert_eq!(code, Some(1), "{out}");
}

/// Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1 of the URL followed by the sorted
/// form parameters (name then value), with the account's auth token.
fn twilio_sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn twilio_sms_reply_acknowledges_and_forgeries_are_refused() {
    let slack = SlackFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tok = secret_file(dir.path(), "twilio", "twilio-auth-token");
    let toml = format!(
        "[twilio]\nauth_token = \"{tok}\"\ncallback_base_url = \"https://sc.example.com\"\nusers = {{ \"+15550001111\" = \"ann\" }}\n{}",
        slack_route_toml(&slack, dir.path())
    );
    let sc = start_in(dir, &toml, |_| {}).await;
    let alerts = json!([{"labels": {"alertname": "SmsTest", "service": "api"}}]);
    assert_eq!(
        sc.post_json("/api/v2/alerts", None, &alerts).await.status(),
        200
    );
    let items = sc
        .wait_incidents(Duration::from_secs(10), "incident", |i| !i.is_empty())
        .await;
    let number = items[0]["number"].as_u64().unwrap();
    let id = items[0]["id"].as_str().unwrap().to_string();
    let body_text = format!("ack {number}");
    let params = [
        ("From", "+15550001111"),
        ("Body", body_text.as_str()),
        ("MessageSid", "SM1"),
    ];
    let form = params
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let url = "https://sc.example.com/callbacks/twilio/sms";
    // Forged: signed with another token.
    let r = sc
        .client
        .post(sc.url("/callbacks/twilio/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "x-twilio-signature",
            twilio_sign("other-token", url, &params),
        )
        .body(form.clone())
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let v: Value = sc
        .get(&format!("/api/v1/incidents/{id}"), Some(&sc.admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["incident"]["state"], "open");
    // Genuine reply: acknowledged as ann, answered with TwiML.
    let r = sc
        .client
        .post(sc.url("/callbacks/twilio/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "x-twilio-signature",
            twilio_sign("twilio-auth-token", url, &params),
        )
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/xml");
    let twiml = r.text().await.unwrap();
    assert!(
        twiml.contains(&format!("Acknowledged incident #{number}")),
        "{twiml}"
    );
    let v: Value = sc
        .get(&format!("/api/v1/incidents/{id}"), Some(&sc.admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["incident"]["state"], "acknowledged");
    let ack = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "acknowledged")
        .cloned()
        .unwrap();
    assert_eq!(ack["actor"]["id"], "ann");
}

/// Creating a schedule arms its next handoff as a durable job (so the incoming person
/// is notified at the handoff), and a changed schedule is re-armed at its new time.
#[tokio::test]
async fn schedule_changes_arm_the_next_handoff_job() {
    use signalcraft_core::oncall::{
        HandoffNotifications, Rotation, Schedule, ScheduleLayer, ShiftLength,
    };
    let sc = start("").await;
    let a = Some(sc.admin.as_str());
    for u in ["ann", "bob"] {
        let r = sc
            .post_json("/api/v1/users", a, &json!({"id": u, "name": u}))
            .await;
        assert_eq!(r.status(), 201);
    }
    let schedule = |handoff: &str| Schedule {
        id: "support".into(),
        name: "Support".into(),
        time_zone: "Europe/Berlin".into(),
        layers: vec![ScheduleLayer {
            name: "primary".into(),
            rotation: Rotation {
                participants: vec!["ann".into(), "bob".into()],
                shift_length: ShiftLength::Days(1),
                start: "2026-01-05".parse().unwrap(),
                handoff_time: handoff.into(),
            },
            restrictions: vec![],
        }],
        overrides: vec![],
        handoff_notifications: HandoffNotifications {
            incoming: true,
            outgoing: false,
        },
    };
    let handoff_jobs = || async {
        let pending = sc
            .server
            .state
            .engine
            .engine
            .scheduler()
            .pending()
            .await
            .expect("pending jobs");
        pending
            .into_iter()
            .filter(|j| j.id.starts_with("handoff/support/"))
            .collect::<Vec<_>>()
    };
    let r = sc
        .post_json(
            "/api/v1/schedules",
            a,
            &serde_json::to_value(schedule("09:00")).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let mut jobs = Vec::new();
    for _ in 0..100 {
        jobs = handoff_jobs().await;
        if !jobs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let first_due = jobs[0].due;
    // 09:00 Europe/Berlin is 07:00 or 08:00 UTC depending on DST.
    let utc_hour = first_due.as_second().rem_euclid(86_400) / 3600;
    assert!(utc_hour == 7 || utc_hour == 8, "{first_due}");
    // Moving the handoff time replaces the job instead of adding a second one.
    let r = sc
        .client
        .put(sc.url("/api/v1/schedules/support"))
        .bearer_auth(&sc.admin)
        .json(&serde_json::to_value(schedule("18:00")).unwrap())
        .send()
        .await
        .expect("PUT");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    for _ in 0..100 {
        jobs = handoff_jobs().await;
        if jobs.len() == 1 && jobs[0].due != first_due {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let utc_hour = jobs[0].due.as_second().rem_euclid(86_400) / 3600;
    assert!(utc_hour == 16 || utc_hour == 17, "{}", jobs[0].due);
}

/// `queue_depth` on /metrics is the number of pending durable jobs, read from the
/// scheduler's in-memory index (kept in step with schedule / cancel / complete).
#[tokio::test]
async fn metrics_queue_depth_counts_pending_jobs() {
    let sc = start("").await;
    let depth = || async {
        let text = sc.get("/metrics", None).await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("signalcraft_queue_depth "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no queue_depth in:\n{text}"))
    };
    let pending = || async {
        sc.server
            .state
            .engine
            .engine
            .scheduler()
            .pending()
            .await
            .unwrap()
            .len() as u64
    };
    assert_eq!(depth().await, pending().await);
    let before = depth().await;
    let a = Some(sc.admin.as_str());
    assert_eq!(
        sc.post_json("/api/v1/users", a, &json!({"id": "ann", "name": "Ann"}))
            .await
            .status(),
        201
    );
    let schedule = json!({
        "id": "s1", "name": "S1", "time_zone": "UTC",
        "layers": [{"name": "l", "rotation": {"participants": ["ann"], "shift_length": {"days": 1},
                    "start": "2026-01-05", "handoff_time": "09:00"}}],
        "handoff_notifications": {"incoming": true, "outgoing": false}
    });
    let r = sc.post_json("/api/v1/schedules", a, &schedule).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    // The handoff job is armed in the background.
    let mut now = depth().await;
    for _ in 0..100 {
        if now > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = depth().await;
    }
    assert_eq!(now, before + 1);
    assert_eq!(now, pending().await);
    // Deleting the schedule cancels its handoff job.
    let r = sc
        .client
        .delete(sc.url("/api/v1/schedules/s1"))
        .bearer_auth(&sc.admin)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for _ in 0..100 {
        now = depth().await;
        if now == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(now, before);
    assert_eq!(now, pending().await);
}

/// `GET /api/v2/alerts` streams the firing alerts a slice at a time: a list longer
/// than one slice is still one JSON array with every alert once, in fingerprint
/// order, and the `silenced` / `active` filters apply across slices.
#[tokio::test]
async fn alertmanager_alert_list_spans_several_slices() {
    let sc = start("").await;
    let n = 1_300; // more than two slices of 512
    for chunk in (0..n).collect::<Vec<usize>>().chunks(250) {
        let body: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"labels": {"alertname": "Many", "instance": format!("i{i}"), "quiet": if i % 3 == 0 { "yes" } else { "no" }}}))
            .collect();
        let r = sc.post_json("/api/v2/alerts", None, &json!(body)).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let list = |q: &'static str| {
        let c = sc.client.clone();
        let url = sc.url(&format!("/api/v2/alerts{q}"));
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/json");
            r.json::<Vec<Value>>().await.unwrap()
        }
    };
    let all = list("").await;
    assert_eq!(all.len(), n);
    let fps: Vec<&str> = all
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();
    let mut sorted = fps.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(fps, sorted, "each alert once, in fingerprint order");

    let silence = json!({"matchers": ["quiet=\"yes\""], "ends_at": "2099-01-01T00:00:00Z", "created_by": "t"});
    let r = sc
        .post_json("/api/v1/silences", Some(&sc.admin), &silence)
        .await;
    assert_eq!(r.status(), 201);
    let quiet = n.div_ceil(3);
    let active = list("?silenced=false").await;
    assert_eq!(active.len(), n - quiet);
    assert!(active.iter().all(|a| a["labels"]["quiet"] == "no"));
    let silenced = list("?active=false").await;
    assert_eq!(silenced.len(), quiet);
    assert!(silenced.iter().all(|a| a["labels"]["quiet"] == "yes"));
    assert_eq!(
        list("?active=false&silenced=false").await,
        Vec::<Value>::new()
    );
}
