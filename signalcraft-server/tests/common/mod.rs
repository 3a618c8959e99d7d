//! Shared test harness: a SignalCraft server on 127.0.0.1 with a temp data dir, a
//! Slack Web API fake (documented `chat.postMessage` / `chat.update` shapes), and
//! helpers for HTTP calls.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};
use signalcraft_server::server::{RunningServer, StartOptions};

/// A running test server with its admin token.
pub struct TestServer {
    pub server: RunningServer,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url(), path)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("GET")
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut r = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("POST")
    }

    /// Polls `GET /api/v1/incidents` until `pred` holds for the list, or panics after `timeout`.
    pub async fn wait_incidents(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v: Value = self
                .get("/api/v1/incidents", Some(&self.admin))
                .await
                .json()
                .await
                .expect("incident list JSON");
            let items = v["items"].as_array().cloned().unwrap_or_default();
            if pred(&items) {
                return items;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {items:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Writes `value` to a file in `dir` and returns a `file:` reference to it.
pub fn secret_file(dir: &std::path::Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, value).expect("write secret");
    format!("file:{}", p.display())
}

/// Starts a server from TOML (the `[server]` listen/data_dir are filled in).
pub async fn start(extra_toml: &str) -> TestServer {
    start_in(tempfile::tempdir().expect("tempdir"), extra_toml, |_| {}).await
}

/// Like [`start`], in a directory the test prepared (secret files), with a hook to
/// adjust the parsed config.
pub async fn start_in(
    dir: tempfile::TempDir,
    extra_toml: &str,
    adjust: impl FnOnce(&mut signalcraft_server::config::ServerConfig),
) -> TestServer {
    let data = dir.path().join("data");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{extra_toml}",
        data.display()
    )
    .replace("{dir}", &dir.path().display().to_string());
    let mut cfg =
        signalcraft_server::config::parse(&text).unwrap_or_else(|e| panic!("config: {e:#?}"));
    adjust(&mut cfg);
    let secrets = signalcraft_server::config::resolve_secrets(&cfg, &|n| std::env::var(n).ok())
        .unwrap_or_else(|e| panic!("secrets: {e:#?}"));
    let server = signalcraft_server::server::start(cfg, secrets, StartOptions::default())
        .await
        .expect("server starts");
    // No bootstrap token when the config already defines an admin token.
    let admin = match server.admin_token_file.clone() {
        Some(f) => std::fs::read_to_string::<PathBuf>(f)
            .expect("admin token file")
            .trim()
            .to_string(),
        None => String::new(),
    };
    TestServer {
        server,
        admin,
        dir,
        client: reqwest::Client::new(),
    }
}

/// Polls a fake's call log until `pred` holds for it, or panics after `timeout`.
async fn wait_for_calls<T: Clone + std::fmt::Debug>(
    calls: &Mutex<Vec<T>>,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&[T]) -> bool,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let c = calls.lock().clone();
        if pred(&c) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {c:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One call the Slack fake received.
#[derive(Debug, Clone)]
pub struct SlackCall {
    pub method: String,
    pub body: Value,
    pub at: Instant,
}

/// A fake of Slack's Web API (`chat.postMessage`, `chat.update`) on 127.0.0.1.
#[derive(Clone)]
pub struct SlackFake {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<SlackCall>>>,
    pub token: String,
}

#[derive(Clone)]
struct FakeState {
    calls: Arc<Mutex<Vec<SlackCall>>>,
    token: String,
}

async fn slack_method(
    State(st): State<FakeState>,
    axum::extract::Path(method): axum::extract::Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", st.token) {
        return Json(json!({"ok": false, "error": "invalid_auth"}));
    }
    let mut calls = st.calls.lock();
    calls.push(SlackCall {
        method: method.clone(),
        body: body.clone(),
        at: Instant::now(),
    });
    let ts = format!("1700000000.{:06}", calls.len());
    let channel = body["channel"].as_str().unwrap_or("C0").to_string();
    Json(json!({"ok": true, "channel": channel, "ts": ts, "message": {"ts": ts}}))
}

impl SlackFake {
    pub async fn start() -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let token = "xoxb-test-token".to_string();
        let app = axum::Router::new()
            .route("/api/{method}", post(slack_method))
            .with_state(FakeState {
                calls: calls.clone(),
                token: token.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind slack fake");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SlackFake { addr, calls, token }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn calls(&self) -> Vec<SlackCall> {
        self.calls.lock().clone()
    }

    /// Waits until `pred` holds for the calls so far.
    pub async fn wait(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[SlackCall]) -> bool,
    ) -> Vec<SlackCall> {
        wait_for_calls(&self.calls, timeout, what, pred).await
    }
}

/// The config section for a Slack channel pointing at the fake, plus a route that
/// notifies it, with 1 s group timers.
pub fn slack_route_toml(fake: &SlackFake, dir: &std::path::Path) -> String {
    let token_ref = secret_file(dir, "slack-token", &fake.token);
    format!(
        r#"
[[channels]]
name = "slack"
type = "slack"
token = "{token_ref}"
api_url = "{api}"

[route]
receiver = "oncall"
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"
notify = [{{ channel = "slack", target = "C0OPS" }}]
"#,
        api = fake.api_url()
    )
}

/// Signs a Slack request body as Slack does (v0, HMAC-SHA256).
pub fn slack_sign(secret: &str, ts: i64, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A Slack `block_actions` payload clicking `action_id` with `value`, form-encoded.
pub fn slack_click_body(action_id: &str, value: &str, user: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "ann"},
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    });
    let encoded: String = url_encode(&payload.to_string());
    format!("payload={encoded}")
}

pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Finds the incident id in an Acknowledge button of a Slack message.
pub fn ack_value(call: &SlackCall) -> Option<String> {
    fn walk(v: &Value, out: &mut Option<String>) {
        match v {
            Value::Object(m) => {
                if m.get("action_id").and_then(|x| x.as_str()) == Some("signalcraft_ack")
                    && let Some(val) = m.get("value").and_then(|x| x.as_str())
                {
                    *out = Some(val.to_string());
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = None;
    walk(&call.body, &mut out);
    out
}

/// Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1, keyed with the auth token, of the
/// full URL followed by every form parameter (name then value) sorted by name.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac =
        <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(token.as_bytes()).expect("hmac key");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `params` form-encoded.
pub fn form_body(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One message or call the Twilio fake accepted.
#[derive(Debug, Clone)]
pub struct TwilioCall {
    /// `Messages` or `Calls`.
    pub resource: String,
    /// The sid it answered with.
    pub sid: String,
    /// The form fields (`To`, `From`, `Body`, `StatusCallback`, …).
    pub form: std::collections::BTreeMap<String, String>,
}

/// A fake of Twilio's REST API (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
/// and `Calls.json`, form-encoded, HTTP basic auth with the account SID and auth
/// token) on 127.0.0.1. Answers `201` with a JSON resource carrying a fresh `sid`
/// (`SM…` / `CA…`), or `401` with Twilio's error JSON on bad credentials.
#[derive(Clone)]
pub struct TwilioFake {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<TwilioCall>>>,
}

#[derive(Clone)]
struct TwilioState {
    calls: Arc<Mutex<Vec<TwilioCall>>>,
    basic: String,
}

async fn twilio_resource(
    State(st): State<TwilioState>,
    axum::extract::Path((_acct, resource)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> (axum::http::StatusCode, Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != st.basic {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"code": 20003, "message": "Authenticate", "status": 401})),
        );
    }
    let form: std::collections::BTreeMap<String, String> = body
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (url_decode(k), url_decode(v)))
        .collect();
    let resource = resource.trim_end_matches(".json").to_string();
    let mut calls = st.calls.lock();
    let prefix = if resource == "Calls" { "CA" } else { "SM" };
    let sid = format!("{prefix}{:032}", calls.len() + 1);
    calls.push(TwilioCall {
        resource,
        sid: sid.clone(),
        form: form.clone(),
    });
    (
        axum::http::StatusCode::CREATED,
        Json(json!({"sid": sid, "status": "queued", "to": form.get("To")})),
    )
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TwilioFake {
    pub const ACCOUNT_SID: &'static str = "AC00000000000000000000000000000001";

    /// Starts the fake accepting requests authenticated with `auth_token`.
    pub async fn start(auth_token: &str) -> Self {
        use base64::Engine as _;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{auth_token}", Self::ACCOUNT_SID))
        );
        let app = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{acct}/{resource}",
                post(twilio_resource),
            )
            .with_state(TwilioState {
                calls: calls.clone(),
                basic,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind twilio fake");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TwilioFake { addr, calls }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<TwilioCall> {
        self.calls.lock().clone()
    }

    /// Waits until `pred` holds for the requests so far.
    pub async fn wait(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[TwilioCall]) -> bool,
    ) -> Vec<TwilioCall> {
        wait_for_calls(&self.calls, timeout, what, pred).await
    }
}

/// Whether python3 can import jsonschema (schemathesis brings it).
pub fn have_jsonschema() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Validates `instance` against `schema` (which may `$ref` the document's
/// components) with Python's jsonschema; returns the errors.
pub fn validate(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
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
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
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
pub fn response_schema(doc: &Value, path: &str, method: &str, status: &str) -> Value {
    let s =
        &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    assert!(!s.is_null(), "no schema for {method} {path} {status}");
    s.clone()
}
