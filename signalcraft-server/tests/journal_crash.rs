//! Journaled ingest survives SIGKILL: the real `signalcraft` binary (embedded store,
//! journal on by default) takes concurrent `POST /api/v2/alerts` and is killed at a
//! random moment, over several rounds on the same data directory. After every
//! restart, every alert whose POST was answered 200 is listed by `GET /api/v2/alerts`
//! (the journal's replay put back what the store had not committed yet), and none is
//! listed twice.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;

const ROUNDS: u32 = 8;
const CLIENTS: u32 = 4;
const BATCH: u32 = 50;

/// Starts the server on the data directory; returns it and its base URL.
fn start(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signalcraft"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn signalcraft");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.trim().to_string();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (child, url);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server printed no URL");
}

fn batch_body(round: u32, client: u32, n: u32) -> (serde_json::Value, Vec<String>) {
    let mut ids = Vec::new();
    let alerts: Vec<serde_json::Value> = (0..BATCH)
        .map(|i| {
            let id = format!("r{round}-c{client}-b{n}-i{i}");
            ids.push(id.clone());
            serde_json::json!({
                "labels": {"alertname": format!("Crash{}", i % 5), "id": id, "service": "svc"},
                "annotations": {"summary": "crash test"}
            })
        })
        .collect();
    (serde_json::Value::Array(alerts), ids)
}

/// Every alert `id` label listed by `GET /api/v2/alerts`, with duplicates kept.
async fn listed(c: &reqwest::Client, url: &str) -> Vec<String> {
    let r = c
        .get(format!("{url}/api/v2/alerts"))
        .send()
        .await
        .expect("GET alerts");
    assert_eq!(r.status(), 200);
    let v: Vec<serde_json::Value> = r.json().await.expect("alerts JSON");
    v.iter()
        .filter_map(|a| a["labels"]["id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn sigkill_during_journaled_ingest_loses_no_acknowledged_alert() {
    signalcraft_server::server::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut rng = rand::rng();
    for round in 0..=ROUNDS {
        let (mut child, url) = start(dir.path());
        let c = reqwest::Client::new();
        // Everything acknowledged in earlier rounds is there, once.
        let ids = rt.block_on(listed(&c, &url));
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "round {round}: an alert listed twice"
        );
        let want = acked.lock().expect("lock").clone();
        let missing: Vec<&String> = want.difference(&unique).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged alerts lost, e.g. {:?}",
            missing.len(),
            missing.iter().take(3).collect::<Vec<_>>()
        );
        if round == ROUNDS {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        // Post from several clients, then kill the server mid-stream.
        let kill_after = Duration::from_millis(rng.random_range(150..900));
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (c, url, acked) = (c.clone(), url.clone(), acked.clone());
                rt.spawn(async move {
                    for n in 0.. {
                        let (body, ids) = batch_body(round, client, n);
                        match c
                            .post(format!("{url}/api/v2/alerts"))
                            .json(&body)
                            .send()
                            .await
                        {
                            Ok(r) if r.status() == 200 => acked.lock().expect("lock").extend(ids),
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(kill_after);
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        rt.block_on(async {
            for h in handles {
                let _ = h.await;
            }
        });
    }
    assert!(
        acked.lock().expect("lock").len() > (ROUNDS * BATCH) as usize,
        "the clients got requests through"
    );
}
