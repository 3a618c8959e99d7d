//! The OpenAPI document describes the core types the API returns (incidents,
//! timeline entries, alerts, delivery records, audit entries) with real schemas, and
//! real responses of a running server validate against them (JSON Schema 2020-12, with
//! Python's `jsonschema`, which schemathesis brings; skipped when it is missing).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn have_jsonschema() -> bool {
    Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Validates `instance` against `schema` (which may `$ref` the document's
/// components) with Python's jsonschema; returns the errors.
fn validate(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    let mut root = schema.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["components"] = doc["components"].clone();
    let input = json!({"schema": root, "instance": instance}).to_string();
    let script = r#"
import json, sys, jsonschema
d = json.load(sys.stdin)
v = jsonschema.Draft202012Validator(d["schema"])
for e in v.iter_errors(d["instance"]):
    print("/".join(str(p) for p in e.absolute_path) + ": " + e.message)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The JSON schema of `method path`'s 200/201 response.
fn response_schema(doc: &Value, path: &str, method: &str, status: &str) -> Value {
    let s =
        &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    assert!(!s.is_null(), "no schema for {method} {path} {status}");
    s.clone()
}

#[test]
fn core_types_have_real_schemas() {
    let doc = serde_json::to_value(signalcraft_server::api::openapi::document()).unwrap();
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Incident",
        "TimelineEntry",
        "AlertRecord",
        "Alert",
        "DeliveryRecord",
        "AuditEntry",
        "Actor",
        "Link",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    let inc = &schemas["Incident"];
    assert!(
        inc["required"]
            .as_array()
            .unwrap()
            .contains(&json!("state")),
        "{inc:#}"
    );
    assert_eq!(
        schemas["IncidentState"]["enum"],
        json!(["open", "acknowledged", "mitigated", "resolved", "closed"])
    );
    let detail = response_schema(&doc, "/api/v1/incidents/{id}", "get", "200");
    assert_eq!(detail["$ref"], "#/components/schemas/IncidentDetail");
    assert_eq!(
        schemas["IncidentDetail"]["properties"]["incident"]["$ref"],
        "#/components/schemas/Incident"
    );
    let ack = response_schema(&doc, "/api/v1/incidents/{id}/acknowledge", "post", "200");
    assert_eq!(ack["$ref"], "#/components/schemas/Incident");
}

#[tokio::test]
async fn real_responses_validate_against_the_documented_schemas() {
    if !have_jsonschema() {
        eprintln!("SKIP: python3 jsonschema not installed (schemathesis brings it)");
        return;
    }
    let slack = SlackFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = slack_route_toml(&slack, dir.path());
    let sc = start_in(dir, &toml, |_| {}).await;
    let a = Some(sc.admin.as_str());
    let alerts = json!([{
        "labels": {"alertname": "DiskFull", "service": "api", "severity": "critical"},
        "annotations": {"summary": "disk full", "runbook_url": "https://runbooks.example/disk"},
        "generatorURL": "http://127.0.0.1:9090/graph"
    }]);
    assert_eq!(
        sc.post_json("/api/v2/alerts", None, &alerts).await.status(),
        200
    );
    let items = sc
        .wait_incidents(Duration::from_secs(10), "incident", |i| !i.is_empty())
        .await;
    let id = items[0]["id"].as_str().unwrap().to_string();
    slack
        .wait(Duration::from_secs(10), "slack notification", |c| {
            !c.is_empty()
        })
        .await;
    let r = sc
        .post_json(
            &format!("/api/v1/incidents/{id}/notes"),
            a,
            &json!({"text": "looking"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let ack = sc
        .post_json(
            &format!("/api/v1/incidents/{id}/acknowledge"),
            a,
            &json!({}),
        )
        .await;
    assert_eq!(ack.status(), 200);
    let ack: Value = ack.json().await.unwrap();

    // Wait until the delivery trail has a record (the Slack delivery is logged).
    let deadline = Instant::now() + Duration::from_secs(10);
    let detail = loop {
        let d: Value = sc
            .get(&format!("/api/v1/incidents/{id}"), a)
            .await
            .json()
            .await
            .unwrap();
        if d["delivery_trail"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
        {
            break d;
        }
        assert!(Instant::now() < deadline, "no delivery record: {d:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(detail["timeline"].as_array().unwrap().len() >= 3);
    assert!(!detail["alerts"].as_array().unwrap().is_empty());

    let doc: Value = sc
        .get("/api/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    let get = |p: &str| {
        let sc = &sc;
        let p = p.to_string();
        async move { sc.get(&p, a).await.json::<Value>().await.unwrap() }
    };
    let cases = vec![
        ("/api/v1/incidents/{id}", "get", detail.clone()),
        ("/api/v1/incidents/{id}/acknowledge", "post", ack),
        ("/api/v1/incidents", "get", get("/api/v1/incidents").await),
        ("/api/v1/alerts", "get", get("/api/v1/alerts").await),
        ("/api/v1/audit", "get", get("/api/v1/audit").await),
        (
            "/api/v1/notifications",
            "get",
            get("/api/v1/notifications").await,
        ),
        (
            "/api/v1/notifications/incident/{id}",
            "get",
            get(&format!("/api/v1/notifications/incident/{id}")).await,
        ),
    ];
    for (path, method, body) in cases {
        let schema = response_schema(&doc, path, method, "200");
        let errors = validate(&doc, &schema, &body);
        assert!(
            errors.is_empty(),
            "{method} {path} does not match its schema:\n{}\n{body:#}",
            errors.join("\n")
        );
    }
    // The validator does catch a mismatch.
    let mut broken = detail;
    broken["incident"]["state"] = json!("sleeping");
    broken["timeline"][0]["seq"] = json!("zero");
    let schema = response_schema(&doc, "/api/v1/incidents/{id}", "get", "200");
    assert_eq!(validate(&doc, &schema, &broken).len(), 2);
}
