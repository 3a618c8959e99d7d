//! The OpenAPI document describes the core types the API returns (incidents,
//! timeline entries, alerts, delivery records, audit entries) with real schemas, and
//! real responses of a running server validate against them (JSON Schema 2020-12, with
//! Python's `jsonschema`, which schemathesis brings; skipped when it is missing).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

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
    // Silences: create, get, list.
    let spec = json!({"matchers": ["alertname=\"DiskFull\"", {"name": "service", "op": "=~", "value": "api|web"}],
                      "ends_at": "2099-01-01T00:00:00Z", "created_by": "ann", "comment": "maintenance"});
    let r = sc.post_json("/api/v1/silences", a, &spec).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let sid = created["id"].as_str().unwrap().to_string();
    for (path, method, status, body) in [
        ("/api/v1/silences", "post", "201", created.clone()),
        (
            "/api/v1/silences/{id}",
            "get",
            "200",
            get(&format!("/api/v1/silences/{sid}")).await,
        ),
        (
            "/api/v1/silences",
            "get",
            "200",
            get("/api/v1/silences").await,
        ),
    ] {
        let schema = response_schema(&doc, path, method, status);
        let errors = validate(&doc, &schema, &body);
        assert!(
            errors.is_empty(),
            "{method} {path}: {}\n{body:#}",
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
