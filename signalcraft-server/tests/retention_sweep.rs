//! The `[retention]` sweep of a real server (redb store, HTTP on 127.0.0.1, a manual
//! clock): a closed incident older than `closed_incident_age` leaves the store with its
//! alerts and timeline (archived as JSON Lines) and the API answers 404 for it; open,
//! resolved, recently closed and the highest-numbered incidents stay; a restart does
//! not hand out a removed incident's number again. Change events older than
//! `change_age` go too. And `check-config` names the path of every `[retention]`
//! mistake.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use jiff::Timestamp;
use serde_json::{Value, json};
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::store::{Scan, Store, Table};
use signalcraft_server::server::{CheckFormat, StartOptions, check_config_main_as};

const DAY: Duration = Duration::from_secs(86_400);

/// Starts a server on `data` with `toml` on a manual clock.
async fn start_manual(dir: &Path, toml: &str, clock: &ManualClock) -> TestServer {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{toml}",
        dir.join("data").display()
    )
    .replace("{dir}", &dir.display().to_string());
    let cfg = signalcraft_server::config::parse(&text).unwrap_or_else(|e| panic!("config: {e:#?}"));
    let secrets = signalcraft_server::config::resolve_secrets(&cfg, &|_| None)
        .unwrap_or_else(|e| panic!("secrets: {e:#?}"));
    let server = signalcraft_server::server::start(
        cfg,
        secrets,
        StartOptions {
            clock: Arc::new(clock.clone()),
            ..StartOptions::default()
        },
    )
    .await
    .expect("server starts");
    let admin = match &server.admin_token_file {
        Some(f) => std::fs::read_to_string(f)
            .expect("token")
            .trim()
            .to_string(),
        None => std::fs::read_to_string(dir.join("admin-token.copy"))
            .expect("token copy")
            .trim()
            .to_string(),
    };
    // Keep the token for a restart (it is written only on the first start).
    std::fs::write(dir.join("admin-token.copy"), &admin).expect("copy token");
    TestServer {
        server,
        admin,
        dir: tempfile::tempdir().expect("tempdir"),
        client: reqwest::Client::new(),
    }
}

async fn act(sc: &TestServer, id: &str, action: &str, body: Value) {
    let r = sc
        .post_json(
            &format!("/api/v1/incidents/{id}/{action}"),
            Some(&sc.admin),
            &body,
        )
        .await;
    assert_eq!(
        r.status(),
        200,
        "{action} {id}: {}",
        r.text().await.unwrap_or_default()
    );
}

async fn status_of(sc: &TestServer, id: &str) -> u16 {
    sc.get(&format!("/api/v1/incidents/{id}"), Some(&sc.admin))
        .await
        .status()
        .as_u16()
}

async fn metrics(sc: &TestServer) -> String {
    sc.get("/metrics", None)
        .await
        .text()
        .await
        .expect("metrics")
}

/// The value of one series in the exposition (0 when absent).
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SWEEPS_OK: &str = "signalcraft_retention_sweeps_total{outcome=\"ok\"}";

/// Waits for `n` more successful sweeps than `since`; returns the count then.
async fn wait_sweeps(sc: &TestServer, since: f64, n: f64) -> f64 {
    wait_until("retention sweeps", || async move {
        series(&metrics(sc).await, SWEEPS_OK) >= since + n
    })
    .await;
    series(&metrics(sc).await, SWEEPS_OK)
}

fn alert(name: &str, ends_at: Option<Timestamp>) -> Value {
    let mut a = json!({"labels": {"alertname": name, "service": "api"}});
    if let Some(t) = ends_at {
        a["endsAt"] = t.to_string().into();
    }
    a
}

#[tokio::test]
async fn the_sweep_removes_old_closed_incidents_and_keeps_the_rest() {
    let slack = SlackFake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("t0");
    let clock = ManualClock::new(t0);
    let toml = format!(
        // No archive_dir: the default, `<data_dir>/archive`, is what is checked below.
        "{}\n[retention]\nclosed_incident_age = \"30d\"\ninterval = \"100ms\"\n",
        slack_route_toml(&slack, dir.path())
    );
    let sc = start_manual(dir.path(), &toml, &clock).await;
    let store = sc.server.state.store.clone();

    let alerts: Vec<Value> = (0..4).map(|i| alert(&format!("R{i}"), None)).collect();
    let r = sc.post_json("/api/v2/alerts", None, &json!(alerts)).await;
    assert_eq!(r.status(), 200);
    clock.advance(Duration::from_secs(2)); // group_wait 1 s
    let mut items = sc
        .wait_incidents(Duration::from_secs(15), "4 incidents", |i| i.len() == 4)
        .await;
    items.sort_by_key(|i| i["number"].as_u64());
    let ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    // old: closed, its alert resolved; resolved: never closed; open: untouched;
    // newest: closed too, but the highest number (the engine's counter) stays.
    let (old, resolved, open, newest) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let detail: Value = sc
        .get(&format!("/api/v1/incidents/{old}"), Some(&sc.admin))
        .await
        .json()
        .await
        .expect("detail");
    let old_alert_name = detail["alerts"][0]["alert"]["labels"]["alertname"]
        .as_str()
        .or_else(|| detail["alerts"][0]["labels"]["alertname"].as_str())
        .unwrap_or_else(|| panic!("alert name in {detail:#}"))
        .to_string();
    let old_fps: Vec<String> = detail["incident"]["alerts"]
        .as_array()
        .unwrap_or_else(|| panic!("fingerprints in {detail:#}"))
        .iter()
        .map(|f| f.as_str().expect("fp").to_string())
        .collect();
    assert_eq!(old_fps.len(), 1);

    act(&sc, old, "notes", json!({"text": "root cause: full disk"})).await;
    // The old incident's alert resolves; the group flush retires it.
    let r = sc
        .post_json(
            "/api/v2/alerts",
            None,
            &json!([alert(&old_alert_name, Some(clock.now()))]),
        )
        .await;
    assert_eq!(r.status(), 200);
    clock.advance(Duration::from_secs(2));
    let fp = old_fps[0].clone();
    wait_until("the old alert retired", || {
        let store = store.clone();
        let fp = fp.clone();
        async move {
            store
                .get(Table::Alerts, &fp)
                .await
                .expect("get")
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|a| a["groups"].as_array().is_some_and(|g| g.is_empty()))
        }
    })
    .await;
    wait_until("the old incident resolved", || {
        let sc = &sc;
        async move {
            let v: Value = sc
                .get(&format!("/api/v1/incidents/{old}"), Some(&sc.admin))
                .await
                .json()
                .await
                .expect("detail");
            v["incident"]["state"] == "resolved"
        }
    })
    .await;
    act(&sc, old, "close", json!({})).await;
    act(&sc, resolved, "resolve", json!({})).await;
    act(&sc, newest, "resolve", json!({})).await;
    act(&sc, newest, "close", json!({})).await;
    assert!(
        !store
            .scan(Table::Timeline, Scan::prefix(format!("{old}/")))
            .await
            .expect("scan")
            .is_empty()
    );

    // A day later nothing is due: the sweeps run and remove nothing.
    clock.advance(DAY);
    let swept = wait_sweeps(&sc, 0.0, 3.0).await;
    assert_eq!(status_of(&sc, old).await, 200, "closed a day ago: kept");

    // 31 days later the old incident leaves memory (1 h) and then the store (30 d).
    clock.advance(30 * DAY);
    wait_until("the old incident removed", || {
        let sc = &sc;
        async move { status_of(sc, old).await == 404 }
    })
    .await;
    let r = sc
        .get(&format!("/api/v1/incidents/{old}"), Some(&sc.admin))
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let problem: Value = r.json().await.expect("problem");
    assert_eq!(problem["status"], 404, "{problem:#}");
    assert!(
        store
            .get(Table::Incidents, old)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .scan(Table::Timeline, Scan::prefix(format!("{old}/")))
            .await
            .expect("scan")
            .is_empty(),
        "timeline removed"
    );
    assert!(
        store.get(Table::Alerts, &fp).await.expect("get").is_none(),
        "the retired alert removed with its incident"
    );
    // The rest stays: resolved (can re-open), open, and the highest number.
    for id in [resolved, open, newest] {
        assert_eq!(status_of(&sc, id).await, 200, "{id} kept");
    }
    let open_fp: Value = sc
        .get(&format!("/api/v1/incidents/{open}"), Some(&sc.admin))
        .await
        .json()
        .await
        .expect("detail");
    let open_fp = open_fp["incident"]["alerts"][0]
        .as_str()
        .expect("fp")
        .to_string();
    assert!(
        store
            .get(Table::Alerts, &open_fp)
            .await
            .expect("get")
            .is_some()
    );

    // The archive holds the old incident's timeline, one JSON line per entry.
    let day = clock.now().strftime("%Y-%m-%d").to_string();
    let archive_dir = dir.path().join("data").join("archive");
    let archive = archive_dir.join(format!("timeline-{day}.jsonl"));
    let text =
        std::fs::read_to_string(&archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|l| l["incident"] == old.as_str()),
        "{text}"
    );
    assert!(text.contains("root cause: full disk"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&archive), 0o600, "archive file private");
        assert_eq!(mode(&archive_dir), 0o700, "archive dir private");
    }

    let m = metrics(&sc).await;
    assert_eq!(
        series(
            &m,
            "signalcraft_retention_removed_total{kind=\"incidents\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        series(&m, "signalcraft_retention_removed_total{kind=\"alerts\"}"),
        1.0,
        "{m}"
    );
    assert!(series(&m, "signalcraft_retention_removed_total{kind=\"archived\"}") >= 1.0);

    // Closed now: recent, kept through more sweeps.
    act(&sc, resolved, "close", json!({})).await;
    let now_swept = series(&metrics(&sc).await, SWEEPS_OK);
    assert!(now_swept > swept);
    wait_sweeps(&sc, now_swept, 3.0).await;
    assert_eq!(status_of(&sc, resolved).await, 200, "closed just now: kept");

    // A restart counts on from the kept highest number: no number is handed out twice.
    // Let go of the store first: shutdown waits until the file is closed.
    drop(store);
    sc.server.shutdown().await.expect("shutdown");
    let sc = start_manual(dir.path(), &toml, &clock).await;
    let r = sc
        .post_json("/api/v2/alerts", None, &json!([alert("After", None)]))
        .await;
    assert_eq!(r.status(), 200);
    clock.advance(Duration::from_secs(2));
    let items = sc
        .wait_incidents(Duration::from_secs(15), "the new incident", |i| {
            i.iter()
                .any(|i| i["title"].as_str().is_some_and(|t| t.contains("After")))
        })
        .await;
    let new = items
        .iter()
        .find(|i| i["title"].as_str().is_some_and(|t| t.contains("After")))
        .expect("new incident");
    assert_eq!(new["number"].as_u64(), Some(5), "{new:#}");
    assert_eq!(status_of(&sc, old).await, 404);
    sc.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn check_config_names_the_path_of_every_retention_mistake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_not_dir = dir.path().join("plain-file");
    std::fs::write(&file_not_dir, "x").expect("write");
    let check = |text: String| -> Vec<(String, String)> {
        let f = dir.path().join("c.toml");
        std::fs::write(&f, text).expect("write config");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check_config_main_as(&f, CheckFormat::Json, &mut out, &mut err);
        let list: Vec<Value> = serde_json::from_slice(&out).expect("JSON array");
        assert_eq!(code, i32::from(!list.is_empty()));
        list.iter()
            .map(|e| {
                (
                    e["path"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let errs =
        check("[retention]\nclosed_incident_age = \"ninety days\"\ninterval = \"0s\"\n".into());
    let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        paths.contains(&"retention.closed_incident_age"),
        "{errs:#?}"
    );
    assert!(paths.contains(&"retention.interval"), "{errs:#?}");

    let errs = check(
        "closed_incident_memory_age = \"7d\"\n[retention]\nclosed_incident_age = \"1d\"\n".into(),
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].0, "retention.closed_incident_age");
    assert!(
        errs[0].1.contains("closed_incident_memory_age"),
        "{errs:#?}"
    );

    // An archive directory that is a file, or below one.
    for bad in [file_not_dir.clone(), file_not_dir.join("archive")] {
        let errs = check(format!(
            "[retention]\narchive_dir = \"{}\"\n",
            bad.display()
        ));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].0, "retention.archive_dir");
        assert!(errs[0].1.contains("not a directory"), "{errs:#?}");
    }
    // A directory that does not exist yet but can be created is fine, and so is off.
    assert!(
        check(format!(
            "[retention]\nclosed_incident_age = \"off\"\narchive_dir = \"{}\"\n",
            dir.path().join("new/archive").display()
        ))
        .is_empty()
    );
    assert!(
        check("[retention]\nage = \"1d\"\n".into())
            .iter()
            .any(|(p, m)| p == "retention" && m.contains("age"))
    );

    // The server refuses to start with an archive directory it cannot create.
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[retention]\narchive_dir = \"{}\"\n",
        dir.path().join("data").display(),
        file_not_dir.join("archive").display()
    );
    let cfg = signalcraft_server::config::parse(&text).expect("parses");
    let secrets = signalcraft_server::config::resolve_secrets(&cfg, &|_| None).expect("secrets");
    match signalcraft_server::server::start(cfg, secrets, StartOptions::default()).await {
        Ok(_) => panic!("started with an unusable archive_dir"),
        Err(e) => assert!(e.to_string().contains("retention.archive_dir"), "{e}"),
    }
}

/// Change events sent through PagerDuty's `/v2/change/enqueue` to a real server: the
/// sweep removes those older (by their own timestamp) than `change_age` and keeps the
/// rest, counts them on the metric; `change_age` below `change_window` is refused by
/// `check-config` with its path.
#[tokio::test]
async fn the_sweep_removes_old_change_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0: Timestamp = "2026-03-01T00:00:00Z".parse().expect("t0");
    let clock = ManualClock::new(t0);
    let key = "R0UTINGKEY0123456789012345678901";
    let r = secret_file(dir.path(), "pd", key);
    let toml = format!(
        "[[integrations]]\nname = \"pd\"\ntype = \"pagerduty\"\nkey = \"{r}\"\n[retention]\nchange_age = \"10d\"\ninterval = \"100ms\"\n"
    );
    let sc = start_manual(dir.path(), &toml, &clock).await;
    let store = sc.server.state.store.clone();
    for (summary, days_ago) in [("deploy old", 20), ("deploy older", 11), ("deploy new", 2)] {
        let at = t0 - jiff::SignedDuration::from_hours(24 * days_ago);
        let ev = json!({
            "routing_key": key,
            "payload": {"summary": summary, "source": "ci", "timestamp": at.to_string()}
        });
        let r = sc.post_json("/v2/change/enqueue", None, &ev).await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    }
    wait_until("the change events stored", || {
        let store = store.clone();
        async move { store.count(Table::Changes).await.expect("count") == 3 }
    })
    .await;
    // The next sweeps (the second one started after they were stored) remove the two
    // older than 10 days.
    let swept = series(&metrics(&sc).await, SWEEPS_OK);
    wait_sweeps(&sc, swept, 2.0).await;
    let left = store.scan(Table::Changes, Scan::all()).await.expect("scan");
    let summaries: Vec<String> = left
        .iter()
        .map(|(_, v)| {
            serde_json::from_slice::<Value>(v).expect("json")["summary"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(summaries, ["deploy new"], "{left:?}");
    assert_eq!(
        series(
            &metrics(&sc).await,
            "signalcraft_retention_removed_total{kind=\"changes\"}"
        ),
        2.0
    );
    // Nine days later the last one (two days old then) is older than 10 days too.
    clock.advance(9 * DAY);
    wait_until("the last change event removed", || {
        let store = store.clone();
        async move { store.count(Table::Changes).await.expect("count") == 0 }
    })
    .await;
    drop(store);
    sc.server.shutdown().await.expect("shutdown");

    // check-config: shorter than change_window is refused with the path.
    let f = dir.path().join("c.toml");
    std::fs::write(
        &f,
        "change_window = \"7d\"\n[retention]\nchange_age = \"1d\"\n",
    )
    .expect("write config");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = check_config_main_as(&f, CheckFormat::Json, &mut out, &mut err);
    let list: Vec<Value> = serde_json::from_slice(&out).expect("JSON array");
    assert_eq!(code, 1);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["path"], "retention.change_age");
    assert!(
        list[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("change_window")),
        "{list:#?}"
    );
}
