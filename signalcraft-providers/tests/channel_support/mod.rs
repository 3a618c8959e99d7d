//! Test support for channel and delivery tests: fake vendor servers on
//! 127.0.0.1 that follow the vendors' documented APIs and misbehave on demand,
//! a fake SMTP responder, a real aiosmtpd process, and log capture.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use signalcraft_core::testing::channel::FakeBehaviour;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the fake does with the next request.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// One of the conformance suite's behaviours.
    Core(FakeBehaviour),
    /// 200 with a body that is not JSON.
    Malformed,
    /// Slack Web API: 200 with `{"ok": false, "error": <code>}`.
    SlackError(&'static str),
}

/// The vendor a fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// Any JSON webhook receiver (Alertmanager-style, Teams, Slack incoming webhook).
    Webhook,
    /// Slack Web API (`/api/chat.postMessage`, `chat.update`, `auth.test`).
    SlackApi,
    /// Twilio REST (`/2010-04-01/Accounts/{sid}/Messages.json`, `Calls.json`, account fetch).
    Twilio,
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
    pub fn form_get(&self, k: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v)
    }
}

pub struct FakeState {
    pub vendor: Vendor,
    pub default: Mutex<Mode>,
    pub script: Mutex<VecDeque<Mode>>,
    pub requests: Mutex<Vec<Recorded>>,
    pub accepted: AtomicUsize,
    /// Expected credentials: Slack bearer token, or Twilio (sid, token).
    pub token: Option<String>,
    pub basic: Option<(String, String)>,
}

/// A running fake vendor server.
#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
}

impl Fake {
    pub async fn start(vendor: Vendor) -> Fake {
        Fake::start_with(vendor, None, None).await
    }

    pub async fn start_with(
        vendor: Vendor,
        token: Option<&str>,
        basic: Option<(&str, &str)>,
    ) -> Fake {
        let state = Arc::new(FakeState {
            vendor,
            default: Mutex::new(Mode::Core(FakeBehaviour::Accept)),
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            token: token.map(str::to_owned),
            basic: basic.map(|(a, b)| (a.to_owned(), b.to_owned())),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn set(&self, m: Mode) {
        *self.state.default.lock().unwrap() = m;
    }

    /// The next requests get these modes, in order, then the default again.
    pub fn script(&self, modes: impl IntoIterator<Item = Mode>) {
        self.state.script.lock().unwrap().extend(modes);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

fn json_resp(status: StatusCode, v: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

async fn handle(
    State(st): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    st.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        headers: headers.clone(),
        body: body.to_vec(),
    });
    let mode = st
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| st.default.lock().unwrap().clone());
    let mode = match mode {
        Mode::Core(FakeBehaviour::Slow(d)) => {
            tokio::time::sleep(d).await;
            Mode::Core(FakeBehaviour::Accept)
        }
        m => m,
    };
    match mode {
        Mode::Malformed => (StatusCode::OK, "{\"ok\": tru").into_response(),
        Mode::SlackError(code) => json_resp(StatusCode::OK, json!({"ok": false, "error": code})),
        Mode::Core(FakeBehaviour::Status {
            code,
            retry_after_secs,
        }) => {
            let status = StatusCode::from_u16(code).unwrap();
            let body = match st.vendor {
                Vendor::SlackApi => {
                    json!({"ok": false, "error": if code == 429 {"ratelimited"} else {"fatal_error"}})
                }
                Vendor::Twilio => {
                    json!({"code": 20000 + u32::from(code), "message": "fake failure", "more_info": "https://www.twilio.com/docs/errors", "status": code})
                }
                Vendor::Webhook => json!({"error": "fake failure"}),
            };
            let mut r = json_resp(status, body);
            if let Some(s) = retry_after_secs {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            r
        }
        Mode::Core(_) => accept(&st, &method, &path, &headers, &body),
    }
}

fn accept(
    st: &FakeState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    match st.vendor {
        Vendor::Webhook => {
            st.accepted.fetch_add(1, Ordering::SeqCst);
            (StatusCode::OK, "ok").into_response()
        }
        Vendor::SlackApi => {
            // https://api.slack.com/web: errors are HTTP 200 with ok=false.
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            if let Some(t) = &st.token
                && auth != Some(&format!("Bearer {t}"))
            {
                return json_resp(
                    StatusCode::OK,
                    json!({"ok": false, "error": "invalid_auth"}),
                );
            }
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let method_name = path.rsplit('/').next().unwrap_or("");
            match method_name {
                "auth.test" => json_resp(
                    StatusCode::OK,
                    json!({"ok": true, "url": "https://fake.slack.com/", "team": "Fake", "user": "signalcraft", "team_id": "T1", "user_id": "U1"}),
                ),
                "conversations.info" => {
                    // A read method: form-encoded `channel`.
                    let form: Vec<(String, String)> =
                        url::form_urlencoded::parse(body).into_owned().collect();
                    match form.iter().find(|(k, _)| k == "channel") {
                        Some((_, c)) if c.starts_with('C') => json_resp(
                            StatusCode::OK,
                            json!({"ok": true, "channel": {"id": c, "is_archived": c.ends_with("ARCH")}}),
                        ),
                        _ => json_resp(
                            StatusCode::OK,
                            json!({"ok": false, "error": "channel_not_found"}),
                        ),
                    }
                }
                "chat.postMessage" => {
                    let Some(ch) = v.get("channel").and_then(Value::as_str) else {
                        return json_resp(
                            StatusCode::OK,
                            json!({"ok": false, "error": "channel_not_found"}),
                        );
                    };
                    if v.get("text").is_none() && v.get("blocks").is_none() {
                        return json_resp(StatusCode::OK, json!({"ok": false, "error": "no_text"}));
                    }
                    let n = st.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                    json_resp(
                        StatusCode::OK,
                        json!({"ok": true, "channel": ch, "ts": format!("1700000000.{n:06}"), "message": {"text": v["text"]}}),
                    )
                }
                "chat.update" => {
                    let (Some(ch), Some(ts)) = (
                        v.get("channel").and_then(Value::as_str),
                        v.get("ts").and_then(Value::as_str),
                    ) else {
                        return json_resp(
                            StatusCode::OK,
                            json!({"ok": false, "error": "message_not_found"}),
                        );
                    };
                    st.accepted.fetch_add(1, Ordering::SeqCst);
                    json_resp(
                        StatusCode::OK,
                        json!({"ok": true, "channel": ch, "ts": ts, "text": v["text"]}),
                    )
                }
                _ => json_resp(
                    StatusCode::OK,
                    json!({"ok": false, "error": "unknown_method"}),
                ),
            }
        }
        Vendor::Twilio => {
            // https://www.twilio.com/docs/usage/api: basic auth AccountSid:AuthToken.
            if let Some((sid, token)) = &st.basic {
                use base64::Engine as _;
                let want = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}"))
                );
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str())
                {
                    return json_resp(
                        StatusCode::UNAUTHORIZED,
                        json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}),
                    );
                }
            }
            if method == Method::GET && path.ends_with(".json") && !path.contains("/Messages") {
                return json_resp(
                    StatusCode::OK,
                    json!({"sid": "ACfake", "status": "active", "friendly_name": "fake"}),
                );
            }
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(body).into_owned().collect();
            let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
            let to = get("To").unwrap_or_default();
            if !to.starts_with('+') {
                return json_resp(
                    StatusCode::BAD_REQUEST,
                    json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}),
                );
            }
            let n = st.accepted.fetch_add(1, Ordering::SeqCst) + 1;
            if path.ends_with("/Messages.json") {
                if get("Body").is_none() {
                    return json_resp(
                        StatusCode::BAD_REQUEST,
                        json!({"code": 21602, "message": "Message body is required.", "status": 400}),
                    );
                }
                json_resp(
                    StatusCode::CREATED,
                    json!({"sid": format!("SM{n:032}"), "status": "queued", "to": to, "from": get("From"), "body": get("Body")}),
                )
            } else if path.ends_with("/Calls.json") {
                json_resp(
                    StatusCode::CREATED,
                    json!({"sid": format!("CA{n:032}"), "status": "queued", "to": to, "from": get("From")}),
                )
            } else {
                json_resp(
                    StatusCode::NOT_FOUND,
                    json!({"code": 20404, "message": "not found", "status": 404}),
                )
            }
        }
    }
}

/// A port nothing listens on (connection refused).
/// A 127.0.0.1 port that refuses connections for as long as this value lives:
/// the socket is bound (so no other `bind(0)` in the process, such as a fake
/// server started by a test running in parallel, can be handed the same port)
/// but never listens, so every connect gets a RST.
pub struct RefusedPort {
    pub port: u16,
    _socket: tokio::net::TcpSocket,
}

pub fn refused_port() -> RefusedPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    RefusedPort {
        port,
        _socket: socket,
    }
}

/// A port that was free a moment ago, for a child process that binds it itself.
async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A minimal SMTP responder speaking enough of RFC 5321 for lettre, whose reply
/// to `MAIL FROM` (or a delay before the greeting) is controllable.
#[derive(Clone)]
pub struct FakeSmtp {
    pub port: u16,
    pub mode: Arc<Mutex<FakeBehaviour>>,
    pub accepted: Arc<AtomicUsize>,
    /// Decoded `AUTH PLAIN` / `AUTH LOGIN` credentials seen, as `user:password`.
    pub auths: Arc<Mutex<Vec<String>>>,
}

impl FakeSmtp {
    pub async fn start() -> FakeSmtp {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let s = FakeSmtp {
            port,
            mode: Arc::new(Mutex::new(FakeBehaviour::Accept)),
            accepted: Arc::new(AtomicUsize::new(0)),
            auths: Arc::new(Mutex::new(Vec::new())),
        };
        let s2 = s.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let s3 = s2.clone();
                tokio::spawn(async move {
                    let _ = s3.session(sock).await;
                });
            }
        });
        s
    }

    async fn session(&self, sock: tokio::net::TcpStream) -> std::io::Result<()> {
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 fake.local ESMTP\r\n").await?;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let cmd = line.trim_end().to_ascii_uppercase();
            if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                w.write_all(b"250-fake.local\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
                    .await?;
            } else if cmd.starts_with("AUTH PLAIN") {
                // RFC 4616: base64("authzid\0user\0password"), here or on the next line.
                let mut arg = line.trim_end()["AUTH PLAIN".len()..].trim().to_string();
                if arg.is_empty() {
                    w.write_all(b"334 \r\n").await?;
                    line.clear();
                    r.read_line(&mut line).await?;
                    arg = line.trim_end().to_string();
                }
                let raw = b64(&arg);
                let parts: Vec<&str> = raw.split('\0').collect();
                self.auths.lock().unwrap().push(format!(
                    "{}:{}",
                    parts.get(1).unwrap_or(&""),
                    parts.get(2).unwrap_or(&"")
                ));
                w.write_all(b"235 2.7.0 Authentication successful\r\n")
                    .await?;
            } else if cmd.starts_with("AUTH LOGIN") {
                w.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                line.clear();
                r.read_line(&mut line).await?;
                let user = b64(line.trim_end());
                w.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                line.clear();
                r.read_line(&mut line).await?;
                let pass = b64(line.trim_end());
                self.auths.lock().unwrap().push(format!("{user}:{pass}"));
                w.write_all(b"235 2.7.0 Authentication successful\r\n")
                    .await?;
            } else if cmd.starts_with("MAIL FROM") {
                let mode = self.mode.lock().unwrap().clone();
                if let FakeBehaviour::Slow(d) = &mode {
                    tokio::time::sleep(*d).await;
                }
                match &mode {
                    FakeBehaviour::Status { code, .. } => {
                        w.write_all(format!("{code} fake failure\r\n").as_bytes())
                            .await?;
                    }
                    _ => w.write_all(b"250 OK\r\n").await?,
                }
            } else if cmd.starts_with("RCPT TO") {
                w.write_all(b"250 OK\r\n").await?;
            } else if cmd == "DATA" {
                w.write_all(b"354 go ahead\r\n").await?;
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                }
                self.accepted.fetch_add(1, Ordering::SeqCst);
                w.write_all(b"250 OK queued as FAKE1\r\n").await?;
            } else if cmd == "QUIT" {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else if cmd == "RSET" || cmd == "NOOP" {
                w.write_all(b"250 OK\r\n").await?;
            } else {
                w.write_all(b"502 not implemented\r\n").await?;
            }
        }
    }
}

/// Base64-decoded text (lossy), empty on bad input.
fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A real SMTP server: `python3 -m aiosmtpd` with a handler that writes each
/// received message to a file in `dir`. Killed on drop.
pub struct Aiosmtpd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Aiosmtpd {
    pub async fn start() -> Aiosmtpd {
        Self::start_with(&[], true).await
    }

    /// With extra command-line arguments (e.g. `--tlscert`/`--tlskey` for
    /// STARTTLS, `--smtpscert`/`--smtpskey` for implicit TLS). `plain_greeting`:
    /// the server greets in plain text (not SMTPS), so readiness is checked by
    /// its greeting; otherwise by a TCP connect while the process lives.
    #[allow(dead_code)] // not every test binary uses TLS
    pub async fn start_with(extra: &[String], plain_greeting: bool) -> Aiosmtpd {
        let dir = tempfile::tempdir().unwrap();
        let handler = dir.path().join("sc_handler.py");
        let out = dir.path().join("mail");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(
            &handler,
            format!(
                r#"import os, itertools
_n = itertools.count(1)
class Handler:
    async def handle_DATA(self, server, session, envelope):
        i = next(_n)
        path = os.path.join({out:?}, "%04d.eml" % i)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode())
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"
"#,
                out = out.to_str().unwrap()
            ),
        )
        .unwrap();
        // The port is free when chosen but not reserved until Python binds it, so
        // a fake started meanwhile by a parallel test may take it: then aiosmtpd
        // exits (address in use), or the port answers with another server's
        // greeting. Either way, try again on a new port.
        for _ in 0..5 {
            let port = free_port().await;
            let mut child = Command::new("python3")
                .args([
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    &format!("127.0.0.1:{port}"),
                    "-c",
                    "sc_handler.Handler",
                ])
                .args(extra)
                .env("PYTHONPATH", dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 with aiosmtpd is required (see .ci/install-deps)");
            // Python's start-up is slow on a loaded 2-core machine: allow 20 s.
            for _ in 0..400 {
                if child.try_wait().ok().flatten().is_some() {
                    break; // exited: most likely the port was taken
                }
                let ready = if plain_greeting {
                    is_aiosmtpd(port).await
                } else {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                };
                if ready {
                    return Aiosmtpd { port, dir, child };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("aiosmtpd did not start (is aiosmtpd installed? run .ci/install-deps)");
    }

    /// Received messages (raw RFC 5322), waiting up to 15 s for `n` of them.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let dir: PathBuf = self.dir.path().join("mail");
        for _ in 0..300 {
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect();
            if files.len() >= n {
                files.sort();
                return files
                    .iter()
                    .map(|p| std::fs::read_to_string(p).unwrap())
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} messages at aiosmtpd");
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `127.0.0.1:port` greets like aiosmtpd (`220 <host> Python SMTP …`),
/// and not like some other server that took the port.
async fn is_aiosmtpd(port: u16) -> bool {
    let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut greeting = String::new();
    let mut reader = BufReader::new(stream);
    let read = reader.read_line(&mut greeting);
    matches!(
        tokio::time::timeout(Duration::from_secs(5), read).await,
        Ok(Ok(_)) if greeting.starts_with("220") && greeting.contains("Python SMTP")
    )
}

/// Captures every log line emitted on this thread while the guard lives.
#[derive(Clone, Default)]
pub struct LogBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Installs a TRACE-level subscriber for the current thread (use with
/// current-thread tokio tests) and returns the buffer and the guard.
pub fn capture_logs() -> (LogBuf, tracing::subscriber::DefaultGuard) {
    let buf = LogBuf::default();
    let b2 = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || b2.clone())
        .finish();
    (buf, tracing::subscriber::set_default(sub))
}
