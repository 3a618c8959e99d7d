//! `[server] encryption_key`: integration secrets and integration keys are sealed at
//! rest in the embedded store, and a restart with a new key plus
//! `previous_encryption_keys` re-seals them.

mod common;

use serde_json::json;
use signalcraft_core::store::{Store, Table};
use signalcraft_store::{RedbStore, SealKey, StoreOptions};

const KEY1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const SECRET: &str = "gh-webhook-secret-do-not-leak";

fn store_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("data")
        .join(signalcraft_server::bootstrap::STORE_FILE)
}

/// Opens the stopped server's store with `key` (`None`: no encryption key). Retries
/// for a moment while the file is still locked: `RunningServer::shutdown` can return
/// while the store's file is still being closed (observed: a few ms; and after an
/// ingest through the journal, not released at all within the shutdown deadline).
async fn open_store(dir: &std::path::Path, key: Option<&str>) -> RedbStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let opts = StoreOptions {
            encryption_key: key.map(|k| SealKey::parse(k).expect("key")),
            ..Default::default()
        };
        match RedbStore::open_with(store_path(dir), opts) {
            Ok(s) => return s,
            Err(e)
                if std::time::Instant::now() < deadline
                    && e.to_string().contains("open in another") =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("store opens: {e}"),
        }
    }
}

/// Opens the stopped server's store with exactly `key` and reads the integration's
/// secrets (None when the key cannot open them).
async fn read_secret(dir: &std::path::Path, key: &str) -> Option<String> {
    let store = open_store(dir, Some(key)).await;
    let raw = store.get(Table::Integrations, "gh").await.ok()??;
    let v: serde_json::Value = serde_json::from_slice(&raw).expect("record JSON");
    v["secrets"]["webhook_secret"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_and_rotated_on_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k1 = common::secret_file(dir.path(), "k1", KEY1);
    let k2 = common::secret_file(dir.path(), "k2", KEY2);
    let dir_path = dir.path().to_path_buf();

    // First start under key 1: create an integration with a secret.
    let sc = common::start_in(dir, "", |c| c.server.encryption_key = Some(k1.clone())).await;
    let r = sc
        .post_json(
            "/api/v1/integrations",
            Some(&sc.admin),
            &json!({"name": "gh", "type": "github", "secrets": {"webhook_secret": SECRET}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    // The bootstrap admin token is written once, on the first start.
    let admin = sc.admin.clone();
    let TestParts { server, dir } = TestParts::from(sc);
    server.shutdown().await.expect("shutdown");

    let bytes = std::fs::read(store_path(&dir_path)).expect("store file");
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the secret is in the store file in clear"
    );
    assert_eq!(read_secret(&dir_path, KEY1).await.as_deref(), Some(SECRET));
    assert_eq!(
        read_secret(&dir_path, KEY2).await,
        None,
        "key 2 opens nothing yet"
    );

    // Restart with key 2 as the current key and key 1 as previous: re-sealed at start.
    let sc = common::start_in(dir, "", |c| {
        c.server.encryption_key = Some(k2.clone());
        c.server.previous_encryption_keys = vec![k1.clone()];
    })
    .await;
    let TestParts { server, dir } = TestParts::from(sc);
    server.shutdown().await.expect("shutdown");
    assert_eq!(read_secret(&dir_path, KEY2).await.as_deref(), Some(SECRET));
    assert_eq!(
        read_secret(&dir_path, KEY1).await,
        None,
        "key 1 no longer opens it"
    );

    // The rotated store serves with key 2 alone: integrations read and rewrite.
    let sc = common::start_in(dir, "", |c| c.server.encryption_key = Some(k2.clone())).await;
    let listed: serde_json::Value = sc
        .get("/api/v1/integrations", Some(&admin))
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(
        !listed.to_string().contains(SECRET),
        "secrets never appear in API responses"
    );
    let r = sc
        .client
        .post(sc.url("/api/v1/integrations/gh/rotate"))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .expect("rotate");
    assert!(
        r.status().is_success(),
        "rotate after re-seal: {}",
        r.status()
    );
    sc.server.shutdown().await.expect("shutdown");
}

/// An Alertmanager webhook payload with one firing alert.
fn am_payload(alertname: &str) -> serde_json::Value {
    json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "truncatedAlerts": 0, "status": "firing", "receiver": "sc",
        "groupLabels": {"alertname": alertname}, "commonLabels": {"alertname": alertname},
        "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": alertname}, "annotations": {},
                    "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": "0000000000000001"}]
    })
}

fn file_contains(path: &std::path::Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).expect("store file");
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The stored JSON of integration `name`, read through a store opened with `key`
/// (`None`: no encryption key); `Err` when that store cannot open the record.
async fn raw_record(
    dir: &std::path::Path,
    key: Option<&str>,
    name: &str,
) -> Result<serde_json::Value, String> {
    let store = open_store(dir, key).await;
    let raw = store
        .get(Table::Integrations, name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no record {name}"))?;
    Ok(serde_json::from_slice(&raw).expect("record JSON"))
}

/// Sets the encryption key, and a short shutdown deadline: after an ingest the store
/// is not always released by `shutdown` (see the note on [`open_store`]), so these
/// tests read the raw file and reopen the store only after runs without ingest.
fn with_key(key_ref: &str) -> impl FnOnce(&mut signalcraft_server::config::ServerConfig) {
    let key_ref = key_ref.to_string();
    move |c| {
        c.server.encryption_key = Some(key_ref);
        c.server.shutdown_timeout = std::time::Duration::from_secs(1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_keys_are_never_in_the_store_file_in_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k1 = common::secret_file(dir.path(), "k1", KEY1);
    let dir_path = dir.path().to_path_buf();
    let file = store_path(&dir_path);

    let sc = common::start_in(dir, "", with_key(&k1)).await;
    let r = sc
        .post_json(
            "/api/v1/integrations",
            Some(&sc.admin),
            &json!({"name": "am", "type": "alertmanager"}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let created: serde_json::Value = r.json().await.expect("created JSON");
    let key = created["key"].as_str().expect("key shown once").to_string();
    assert_eq!(created["path"], format!("/integrations/{key}"));
    let r = sc
        .post_json(
            "/api/v1/integrations",
            Some(&sc.admin),
            &json!({"name": "bad", "type": "alertmanager", "secrets": {"$integration_key": "x"}}),
        )
        .await;
    assert_eq!(r.status(), 400, "reserved secret names are refused");
    let admin = sc.admin.clone();
    let TestParts { server, dir } = TestParts::from(sc);
    server.shutdown().await.expect("shutdown");

    assert!(
        !file_contains(&file, &key),
        "the integration key is in the store file in clear"
    );
    let hash = signalcraft_server::auth::hash_token(&key);
    assert!(
        file_contains(&file, &hash),
        "the key's SHA-256 is stored beside the record"
    );
    let rec = raw_record(&dir_path, Some(KEY1), "am")
        .await
        .expect("opens");
    assert!(rec.get("key").is_none(), "{rec}");
    assert_eq!(rec["key_sha256"], hash);
    assert_eq!(
        rec["secrets"][signalcraft_server::integrations::KEY_SECRET],
        key.as_str()
    );
    assert!(
        raw_record(&dir_path, Some(KEY2), "am").await.is_err(),
        "another key opens nothing"
    );

    // After a restart the key (read from the sealed secrets) still routes ingest.
    let sc = common::start_in(dir, "", with_key(&k1)).await;
    let r = sc
        .post_json(&format!("/integrations/{key}"), None, &am_payload("A"))
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let listed = sc
        .get("/api/v1/integrations", Some(&admin))
        .await
        .text()
        .await
        .expect("list");
    assert!(
        listed.contains("\"am\"") && !listed.contains(&key),
        "{listed}"
    );

    // A rotated key is sealed the same way; the old one stops working.
    let rotated: serde_json::Value = sc
        .post_json("/api/v1/integrations/am/rotate", Some(&admin), &json!({}))
        .await
        .json()
        .await
        .expect("rotate JSON");
    let key2 = rotated["key"].as_str().expect("new key").to_string();
    assert_eq!(
        sc.post_json(&format!("/integrations/{key}"), None, &am_payload("B"))
            .await
            .status(),
        404
    );
    assert_eq!(
        sc.post_json(&format!("/integrations/{key2}"), None, &am_payload("B"))
            .await
            .status(),
        202
    );
    // Committed writes are in the file (fsync); reading its bytes needs no lock.
    assert!(!file_contains(&file, &key2), "the rotated key is in clear");
    assert!(!file_contains(&file, &key), "the first key is in clear");
    assert!(file_contains(
        &file,
        &signalcraft_server::auth::hash_token(&key2)
    ));
    sc.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_form_records_load_and_are_rewritten_sealed_at_start() {
    const OLD_KEY: &str = "legacy-integration-key-in-clear-0123456789";
    let dir = tempfile::tempdir().expect("tempdir");
    let k1 = common::secret_file(dir.path(), "k1", KEY1);
    let dir_path = dir.path().to_path_buf();
    std::fs::create_dir_all(dir_path.join("data")).expect("data dir");
    {
        // Written by an older server without an encryption key: everything in clear.
        let store = open_store(&dir_path, None).await;
        let old = json!({
            "name": "legacy", "type": "alertmanager", "key": OLD_KEY, "secrets": {},
            "options": null, "rate_limit_per_minute": 0, "created_at": "2026-01-01T00:00:00Z"
        });
        let mut b = signalcraft_core::store::WriteBatch::new();
        b.put(Table::Integrations, "legacy", &old).expect("put");
        store.commit(b).await.expect("commit");
    }

    // The first start with a key loads it and re-writes it in the new form, sealed.
    let sc = common::start_in(dir, "", with_key(&k1)).await;
    let listed = sc
        .get("/api/v1/integrations", Some(&sc.admin))
        .await
        .text()
        .await
        .expect("list");
    assert!(listed.contains("\"legacy\""), "{listed}");
    let TestParts { server, dir } = TestParts::from(sc);
    server.shutdown().await.expect("shutdown");

    let rec = raw_record(&dir_path, Some(KEY1), "legacy")
        .await
        .expect("opens");
    assert!(
        rec.get("key").is_none(),
        "re-written in the new form: {rec}"
    );
    assert_eq!(
        rec["key_sha256"],
        signalcraft_server::auth::hash_token(OLD_KEY)
    );
    assert_eq!(
        rec["secrets"][signalcraft_server::integrations::KEY_SECRET],
        OLD_KEY
    );
    let e = raw_record(&dir_path, None, "legacy")
        .await
        .expect_err("sealed: a store without the key cannot open it");
    assert!(e.contains("sealed"), "{e}");

    // The old key keeps working after the migration.
    let sc = common::start_in(dir, "", with_key(&k1)).await;
    let r = sc
        .post_json(&format!("/integrations/{OLD_KEY}"), None, &am_payload("A"))
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    sc.server.shutdown().await.expect("shutdown");
}

#[test]
fn malformed_or_orphaned_keys_are_config_errors_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let short = common::secret_file(dir.path(), "short", "abcd");
    let good = common::secret_file(dir.path(), "good", KEY1);
    let cfg = signalcraft_server::config::parse(&format!(
        "[server]\nencryption_key = \"{short}\"\nprevious_encryption_keys = [\"{good}\", \"env:SC_TEST_NO_SUCH_VAR\"]\n"
    ))
    .expect("parses");
    let errs = signalcraft_server::config::resolve_secrets(&cfg, &|_| None).expect_err("invalid");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"server.encryption_key"), "{paths:?}");
    assert!(
        paths.contains(&"server.previous_encryption_keys[1]"),
        "{paths:?}"
    );
    assert!(
        !errs.iter().any(|e| e.to_string().contains("abcd")),
        "a key's value never appears in an error"
    );

    let cfg = signalcraft_server::config::parse(&format!(
        "[server]\nprevious_encryption_keys = [\"{good}\"]\n"
    ))
    .expect("parses");
    let errs = signalcraft_server::config::resolve_secrets(&cfg, &|_| None).expect_err("orphan");
    assert_eq!(errs[0].path, "server.previous_encryption_keys");
}

/// The parts of a stopped-to-be test server a restart needs.
struct TestParts {
    server: signalcraft_server::server::RunningServer,
    dir: tempfile::TempDir,
}

impl From<common::TestServer> for TestParts {
    fn from(t: common::TestServer) -> Self {
        TestParts {
            server: t.server,
            dir: t.dir,
        }
    }
}
