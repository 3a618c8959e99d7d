//! A closed incident leaves the engine's memory `closed_incident_memory_age` after it
//! closed, and the REST API serves it exactly as before: `GET /api/v1/incidents/{id}`
//! (timeline, alerts, delivery trail), the filtered and paged list, and the
//! notification trail.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

async fn get_json(sc: &TestServer, path: &str) -> Value {
    let r = sc.get(path, Some(&sc.admin)).await;
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.expect("JSON")
}

/// Everything the API answers about `id` and the lists it appears in.
async fn snapshot(sc: &TestServer, id: &str, number: u64) -> Value {
    let mut lists = Vec::new();
    for q in ["", "?state=closed", "?state=open,closed", "?service=api"] {
        let mut pages = Vec::new();
        let sep = if q.is_empty() { "?" } else { "&" };
        let mut path = format!("/api/v1/incidents{q}{sep}limit=1");
        loop {
            let page = get_json(sc, &path).await;
            let next = page["next"].as_str().map(str::to_string);
            pages.push(page);
            match next {
                Some(n) => path = format!("/api/v1/incidents{q}{sep}limit=1&cursor={n}"),
                None => break,
            }
        }
        lists.push(json!({"query": q, "pages": pages, "all": get_json(sc, &format!("/api/v1/incidents{q}")).await}));
    }
    json!({
        "detail": get_json(sc, &format!("/api/v1/incidents/{id}")).await,
        "by_number": get_json(sc, &format!("/api/v1/incidents/{number}")).await,
        "trail": get_json(sc, &format!("/api/v1/notifications/incident/{id}")).await,
        "lists": lists,
    })
}

#[tokio::test]
async fn an_evicted_incident_is_served_by_the_api_as_before() {
    let slack = SlackFake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = slack_route_toml(&slack, dir.path());
    let sc = start_in(dir, &toml, |c| {
        c.engine.closed_incident_memory_age = Some("3s".into());
    })
    .await;
    let engine = sc.server.state.engine.engine.clone();
    let alerts: Vec<Value> = (0..3)
        .map(|i| json!({"labels": {"alertname": format!("A{i}"), "service": "api"}}))
        .collect();
    let r = sc.post_json("/api/v2/alerts", None, &json!(alerts)).await;
    assert_eq!(r.status(), 200);
    let items = sc
        .wait_incidents(Duration::from_secs(10), "3 incidents", |i| i.len() == 3)
        .await;
    slack
        .wait(Duration::from_secs(10), "3 notifications", |c| c.len() >= 3)
        .await;
    let id = items[1]["id"].as_str().expect("id").to_string();
    let number = items[1]["number"].as_u64().expect("number");
    for (action, body) in [
        ("notes", json!({"text": "root cause found"})),
        ("resolve", json!({})),
        ("close", json!({})),
    ] {
        let r = sc
            .post_json(
                &format!("/api/v1/incidents/{id}/{action}"),
                Some(&sc.admin),
                &body,
            )
            .await;
        assert_eq!(r.status(), 200, "{action}");
    }
    // Settled (every notification of the close handed over) and still in memory.
    let mut before = snapshot(&sc, &id, number).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = snapshot(&sc, &id, number).await;
        if again == before {
            break;
        }
        before = again;
    }
    assert!(
        engine.get_incident(&id).is_ok(),
        "closed < 3 s ago: in memory"
    );
    assert_eq!(before["detail"]["incident"]["state"], "closed");
    assert!(
        before["trail"].as_array().is_some_and(|t| !t.is_empty()),
        "a delivery trail to compare: {before:#}"
    );

    // The run loop evicts it 3 s after it closed.
    let deadline = Instant::now() + Duration::from_secs(15);
    while engine.get_incident(&id).is_ok() {
        assert!(Instant::now() < deadline, "not evicted after 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(engine.with_core(|c| c.incident_count()), 2);
    let after = snapshot(&sc, &id, number).await;
    assert_eq!(after, before);
    // The engine holds the store: let go of it, so shutdown closes the file at once.
    drop(engine);
    sc.server.shutdown().await.expect("shutdown");
}
