//! Shared test helpers: WAT plugins on disk, freshly built example plugins, and a
//! fake deploy API on 127.0.0.1.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use signalcraft_core::remediation::RemediationRequest;
use signalcraft_plugins::Manifest;
use signalcraft_plugins::manifest::{Capabilities, Limits, ParamSpec};

/// A temp folder that lives as long as the test binary.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

/// Writes `wasm` to disk and returns a manifest pinning its SHA-256.
pub fn manifest_for(name: &str, wasm: &[u8], caps: Capabilities, limits: Limits) -> Manifest {
    let path = scratch().join(format!("{name}.wasm"));
    std::fs::write(&path, wasm).expect("write wasm");
    Manifest {
        name: name.into(),
        version: "0.0.1".into(),
        description: String::new(),
        module: path,
        sha256: hex::encode(Sha256::digest(wasm)),
        approval_role: "responder".into(),
        capabilities: caps,
        limits,
        params: BTreeMap::<String, ParamSpec>::new(),
    }
}

/// The ABI plumbing every WAT test plugin shares: memory, a bump `alloc` at 4096,
/// and a valid output document at offset 16 (`OK_LEN` bytes).
pub const PRELUDE: &str = r#"
  (memory (export "memory") 1)
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
  (func (export "dealloc") (param i32 i32))
  (data (i32.const 16) "{\"status\":\"success\",\"message\":\"ok\"}")
"#;

/// Length of the output document in [`PRELUDE`].
pub const OK_LEN: usize = r#"{"status":"success","message":"ok"}"#.len();

/// `i64` expression returning the prelude's output document.
pub fn ok_result() -> String {
    format!("(i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {OK_LEN}))")
}

/// A module: `imports`, the prelude, `extra` items and `remediate` with `body`.
pub fn wat_module(imports: &str, extra: &str, body: &str) -> Vec<u8> {
    let text = format!(
        "(module {imports} {PRELUDE} {extra}
           (func (export \"remediate\") (param $ptr i32) (param $len i32) (result i64) {body}))"
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{text}"))
}

/// A request for `plugin` on incident `inc-1`.
pub fn request(plugin: &str, params: serde_json::Value) -> RemediationRequest {
    RemediationRequest {
        plugin: plugin.into(),
        incident_id: "inc-1".into(),
        incident: serde_json::json!({"id": "inc-1", "title": "API down", "severity": "critical"}),
        alerts: vec![serde_json::json!({"labels": {"alertname": "ApiDown", "service": "api"}})],
        service: Some(serde_json::json!({"name": "api"})),
        runbooks: vec!["https://runbooks.example/api".into()],
        params,
        dry_run: false,
    }
}

/// Builds the example plugins from source (once per test binary) with
/// `plugins/build-examples.sh` and returns the output folder.
pub fn examples() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = scratch().join("examples");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build-examples.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(&out)
            .status()
            .expect("run build-examples.sh (needs bash)");
        assert!(
            status.success(),
            "building the example plugins failed: install clang-15, lld-15 and the \
             AssemblyScript compiler with .ci/install-deps"
        );
        out
    })
}

/// One request the fake deploy API received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// A fake deploy API on 127.0.0.1 (a real HTTP/1.1 server on a real socket):
/// * `GET /v1/services/{s}` → `{"replicas": n}` (starts at 2)
/// * `POST /v1/services/{s}/scale` `{"replicas": n}` → 200, stores n
/// * `POST /v1/services/{s}/restart` → 202, or 500 for service `broken`
/// * `GET /v1/services/{s}/facts` → `{"version":"1.4.2","pods":3}`
pub struct FakeDeployApi {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub replicas: Arc<Mutex<i64>>,
}

impl FakeDeployApi {
    pub fn start() -> FakeDeployApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replicas = Arc::new(Mutex::new(2i64));
        let (s, r) = (seen.clone(), replicas.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let body = String::from_utf8_lossy(&body).into_owned();
                s.lock().unwrap().push(Seen {
                    method: method.clone(),
                    path: path.clone(),
                    body: body.clone(),
                });
                let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                let (status, reply) = match (method.as_str(), segs.as_slice()) {
                    ("GET", ["v1", "services", _]) => {
                        (200, format!("{{\"replicas\":{}}}", r.lock().unwrap()))
                    }
                    ("POST", ["v1", "services", _, "scale"]) => {
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                        match v["replicas"].as_i64() {
                            Some(n) => {
                                *r.lock().unwrap() = n;
                                (200, format!("{{\"replicas\":{n}}}"))
                            }
                            None => (400, "{\"error\":\"replicas\"}".into()),
                        }
                    }
                    ("POST", ["v1", "services", "broken", "restart"]) => {
                        (500, "{\"error\":\"boom\"}".into())
                    }
                    ("POST", ["v1", "services", _, "restart"]) => {
                        (202, "{\"restarting\":true}".into())
                    }
                    ("GET", ["v1", "services", _, "facts"]) => {
                        (200, "{\"version\":\"1.4.2\",\"pods\":3}".into())
                    }
                    _ => (404, "{}".into()),
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        FakeDeployApi {
            port,
            seen,
            replicas,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
