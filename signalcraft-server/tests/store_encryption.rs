//! `[server] encryption_key`: integration secrets are sealed at rest in the embedded
//! store, and a restart with a new key plus `previous_encryption_keys` re-seals them.

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

/// Opens the stopped server's store with exactly `key` and reads the integration's
/// secrets (None when the key cannot open them).
async fn read_secret(dir: &std::path::Path, key: &str) -> Option<String> {
    let store = RedbStore::open_with(
        store_path(dir),
        StoreOptions {
            encryption_key: Some(SealKey::parse(key).expect("key")),
            ..Default::default()
        },
    )
    .expect("store opens");
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
