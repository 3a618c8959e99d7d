//! End to end with the real Alertmanager (Debian `prometheus-alertmanager`):
//! alerts posted to Alertmanager → its webhook receiver → SignalCraft
//! `/integrations/{key}` → incident → Slack (local fake of the Web API) → a signed
//! "Acknowledge" click → acknowledged → alerts resolved in Alertmanager → incident
//! resolved → resolved notification.
//!
//! A second test posts straight to SignalCraft's `/api/v2/alerts` as Prometheus does.
//! Group timers are 1 s on both sides so each test takes a few seconds.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn alertmanager_binary() -> Option<String> {
    let b = std::env::var("ALERTMANAGER_BIN").unwrap_or_else(|_| "prometheus-alertmanager".into());
    Command::new(&b)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| b)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Alertmanager {
    child: Child,
    url: String,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_alertmanager(bin: &str, dir: &std::path::Path, webhook: &str) -> Alertmanager {
    let cfg = format!(
        r#"route:
  receiver: signalcraft
  group_by: ['alertname', 'service']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: signalcraft
    webhook_configs:
      - url: '{webhook}'
        send_resolved: true
"#
    );
    let cfg_path = dir.join("am.yml");
    std::fs::write(&cfg_path, cfg).expect("am config");
    let port = free_port();
    let log = std::fs::File::create(dir.join("am.log")).expect("am log");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg_path.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start alertmanager");
    let am = Alertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = client.get(format!("{}/-/ready", am.url)).send().await
            && r.status().is_success()
        {
            return am;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_resolved_message(c: &SlackCall) -> bool {
    let text = c.body.to_string().to_lowercase();
    text.contains("resolved")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alertmanager_to_slack_ack_and_resolve() {
    let Some(bin) = alertmanager_binary() else {
        eprintln!("SKIP: prometheus-alertmanager not installed (.ci/install-deps installs it)");
        return;
    };
    let slack = SlackFake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = "am-key-0123456789";
    let key_ref = secret_file(dir.path(), "am-key", key);
    let signing_ref = secret_file(dir.path(), "slack-signing", SIGNING_SECRET);
    let toml = format!(
        r#"
[slack]
signing_secret = "{signing_ref}"
users = {{ U0ANN = "ann" }}

[[integrations]]
name = "alertmanager"
type = "alertmanager"
key = "{key_ref}"

# Pages to contact methods of kind slack_dm go through the channel named slack_dm.
[[channels]]
name = "slack_dm"
type = "slack"
token = "{dm_token}"
api_url = "{api}"
{route}"#,
        route = slack_route_toml(&slack, dir.path()),
        dm_token = secret_file(dir.path(), "dm-token", &slack.token),
        api = slack.api_url(),
    );
    let am_dir = tempfile::tempdir().expect("am dir");
    let sc = start_in(dir, &toml, |c| {
        c.engine.route.escalation_policy = Some("primary".into());
    })
    .await;
    // On call: level 1 pages ann by Slack DM at once; level 2 would page her again 5 min later.
    let r = sc
        .post_json(
            "/api/v1/users",
            Some(&sc.admin),
            &json!({"id": "ann", "name": "Ann", "slack_id": "U0ANN",
                    "contact_methods": [{"id": "dm", "kind": "slack_dm", "address": "D0ANN"}]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = sc
        .post_json(
            "/api/v1/escalation-policies",
            Some(&sc.admin),
            &json!({"id": "primary", "name": "Primary", "repeat": 1, "levels": [
                {"targets": [{"type": "user", "id": "ann"}], "delay_minutes": 5},
                {"targets": [{"type": "user", "id": "ann"}], "delay_minutes": 5}]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let am = start_alertmanager(
        &bin,
        am_dir.path(),
        &sc.url(&format!("/integrations/{key}")),
    )
    .await;
    let client = reqwest::Client::new();
    let alerts = json!([
        {"labels": {"alertname": "HighLatency", "service": "api", "severity": "critical", "instance": "a"},
         "annotations": {"summary": "p99 latency above 2s"}},
        {"labels": {"alertname": "HighLatency", "service": "api", "severity": "critical", "instance": "b"},
         "annotations": {"summary": "p99 latency above 2s"}}
    ]);
    let r = client
        .post(format!("{}/api/v2/alerts", am.url))
        .json(&alerts)
        .send()
        .await
        .expect("post to alertmanager");
    assert!(
        r.status().is_success(),
        "alertmanager refused: {}",
        r.status()
    );

    // Incident opened and notified to Slack with an Acknowledge button.
    let calls = slack
        .wait(Duration::from_secs(15), "first Slack message", |c| {
            c.iter()
                .any(|c| ack_value(c).is_some() && c.body["channel"] == "C0OPS")
        })
        .await;
    let first = calls
        .iter()
        .find(|c| ack_value(c).is_some() && c.body["channel"] == "C0OPS")
        .expect("message");
    assert_eq!(first.method, "chat.postMessage");
    assert_eq!(first.body["channel"], "C0OPS");
    let value = ack_value(first).expect("ack button");
    let incident_id = value.strip_prefix("ack:").expect("ack:<id>").to_string();
    // Level 1 paged ann by Slack DM, and level 2 is armed.
    slack
        .wait(Duration::from_secs(10), "page to ann's DM", |c| {
            c.iter().any(|c| c.body["channel"] == "D0ANN")
        })
        .await;
    let pending = sc
        .server
        .state
        .engine
        .engine
        .scheduler()
        .pending()
        .await
        .expect("pending jobs");
    assert!(
        pending
            .iter()
            .any(|j| j.id.starts_with(&format!("page/{incident_id}/"))),
        "no escalation job armed: {pending:#?}"
    );
    let items = sc
        .wait_incidents(Duration::from_secs(5), "open incident", |i| {
            i.iter()
                .any(|x| x["id"] == incident_id.as_str() && x["state"] == "open")
        })
        .await;
    let inc = items
        .iter()
        .find(|x| x["id"] == incident_id.as_str())
        .expect("incident");
    assert_eq!(inc["alerts"].as_array().map(Vec::len), Some(2), "{inc:#?}");

    // A forged click is refused and changes nothing.
    let body = slack_click_body("signalcraft_ack", &value, "U0ANN");
    let now = jiff::Timestamp::now().as_second();
    let forged = client
        .post(sc.url("/callbacks/slack"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", slack_sign("wrong-secret", now, &body))
        .body(body.clone())
        .send()
        .await
        .expect("forged click");
    assert_eq!(forged.status(), 401);
    let v: Value = sc
        .get(&format!("/api/v1/incidents/{incident_id}"), Some(&sc.admin))
        .await
        .json()
        .await
        .expect("incident json");
    assert_eq!(v["incident"]["state"], "open");

    // The signed click acknowledges, attributed to the mapped user.
    let click = client
        .post(sc.url("/callbacks/slack"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", slack_sign(SIGNING_SECRET, now, &body))
        .body(body)
        .send()
        .await
        .expect("click");
    assert_eq!(click.status(), 200, "{:?}", click.text().await);
    let v: Value = sc
        .get(&format!("/api/v1/incidents/{incident_id}"), Some(&sc.admin))
        .await
        .json()
        .await
        .expect("incident json");
    assert_eq!(v["incident"]["state"], "acknowledged");
    let ack_entry = v["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["type"] == "acknowledged")
        .cloned()
        .expect("acknowledged entry");
    assert_eq!(ack_entry["actor"]["id"], "ann");
    assert!(
        !v["delivery_trail"].as_array().expect("trail").is_empty(),
        "delivery trail recorded"
    );
    // Escalation stopped: no paging job of this incident is left.
    let pending = sc
        .server
        .state
        .engine
        .engine
        .scheduler()
        .pending()
        .await
        .expect("pending jobs");
    let paging: Vec<_> = pending
        .iter()
        .filter(|j| j.id.starts_with(&format!("page/{incident_id}/")))
        .collect();
    assert!(paging.is_empty(), "paging jobs left after ack: {paging:#?}");
    let before_resolve = slack.calls().len();

    // Resolve in Alertmanager: it sends the resolved webhook; SignalCraft resolves
    // the incident and notifies the resolution.
    let mut resolved = alerts.clone();
    let ended = jiff::Timestamp::now().to_string();
    for a in resolved.as_array_mut().expect("array") {
        a["endsAt"] = Value::String(ended.clone());
    }
    let r = client
        .post(format!("{}/api/v2/alerts", am.url))
        .json(&resolved)
        .send()
        .await
        .expect("resolve in alertmanager");
    assert!(r.status().is_success());
    sc.wait_incidents(Duration::from_secs(15), "resolved incident", |i| {
        i.iter()
            .any(|x| x["id"] == incident_id.as_str() && x["state"] == "resolved")
    })
    .await;
    slack
        .wait(Duration::from_secs(10), "resolved notification", |c| {
            c[before_resolve..].iter().any(is_resolved_message)
        })
        .await;
    sc.server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_style_post_to_api_v2_alerts() {
    let slack = SlackFake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = slack_route_toml(&slack, dir.path());
    let sc = start_in(dir, &toml, |_| {}).await;
    let client = reqwest::Client::new();
    let alerts = json!([
        {"labels": {"alertname": "DiskFull", "service": "db", "severity": "warning", "instance": "db-1"},
         "annotations": {"summary": "disk 95% full"}, "generatorURL": "http://prometheus/graph?g0.expr=disk"}
    ]);
    let started = Instant::now();
    let r = client
        .post(sc.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let calls = slack
        .wait(Duration::from_secs(10), "notification", |c| !c.is_empty())
        .await;
    // Notified after group_wait (1 s), well within group_wait + 0.5 s.
    let took = calls[0].at.duration_since(started);
    assert!(
        took >= Duration::from_millis(900),
        "notified before group_wait: {took:?}"
    );
    assert!(
        took <= Duration::from_millis(1500),
        "notified late: {took:?}"
    );
    let items = sc
        .wait_incidents(Duration::from_secs(5), "incident", |i| !i.is_empty())
        .await;
    assert_eq!(items[0]["state"], "open");
    assert_eq!(items[0]["group_labels"]["alertname"], "DiskFull");

    // Prometheus re-sends firing alerts every evaluation: nothing new is notified.
    for _ in 0..3 {
        let r = client
            .post(sc.url("/api/v2/alerts"))
            .json(&alerts)
            .send()
            .await
            .expect("repost");
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        slack.calls().len(),
        1,
        "re-posted alerts must not notify again"
    );

    // The alert shows in the Alertmanager-compatible GET.
    let listed: Value = client
        .get(sc.url("/api/v2/alerts"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#?}");
    assert_eq!(listed[0]["labels"]["instance"], "db-1");
    assert_eq!(listed[0]["status"]["state"], "active");

    // Resolution: endsAt in the past.
    let mut resolved = alerts.clone();
    resolved[0]["endsAt"] = Value::String(jiff::Timestamp::now().to_string());
    let r = client
        .post(sc.url("/api/v2/alerts"))
        .json(&resolved)
        .send()
        .await
        .expect("resolve");
    assert_eq!(r.status(), 200);
    sc.wait_incidents(Duration::from_secs(10), "resolved", |i| {
        i.iter().any(|x| x["state"] == "resolved")
    })
    .await;
    slack
        .wait(Duration::from_secs(5), "resolved notification", |c| {
            c.len() >= 2 && is_resolved_message(&c[c.len() - 1])
        })
        .await;
    let metrics = client
        .get(sc.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("signalcraft_ingest_alerts_total{endpoint=\"alertmanager_v2\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("signalcraft_notifications_total{channel=\"slack\",outcome=\"sent\"}"),
        "{metrics}"
    );
    sc.server.shutdown().await.expect("clean shutdown");
}
