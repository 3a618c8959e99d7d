//! The host's HTTP client behind the `http_request` host call.
//!
//! Guest code runs on a plain (blocking) thread, so requests are executed on a small
//! tokio runtime owned by the client and awaited with a timeout. Redirects and
//! proxies are off: a redirect could lead outside the plugin's host allowlist.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest response body handed to a guest (1 MiB); longer bodies are cut.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// What a guest sends to `http_request` (ABI v1 JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestRequest {
    /// HTTP method, default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body (UTF-8 text, usually JSON).
    #[serde(default)]
    pub body: String,
}

fn default_method() -> String {
    "GET".into()
}

/// What `http_request` gives back to the guest (ABI v1 JSON).
#[derive(Debug, Clone, Serialize)]
pub struct GuestResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers (last value wins).
    pub headers: BTreeMap<String, String>,
    /// Response body as text (invalid UTF-8 replaced), cut at [`MAX_RESPONSE_BYTES`].
    pub body: String,
}

/// The shared HTTP client: one reqwest client and the runtime that drives it,
/// both created on first use.
pub struct HttpClient {
    inner: OnceLock<Result<(reqwest::Client, tokio::runtime::Runtime), String>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient {
            inner: OnceLock::new(),
        }
    }
}

impl Drop for HttpClient {
    fn drop(&mut self) {
        // Dropping a runtime inside an async context panics; shut it down in the
        // background instead, whatever thread the host is dropped on.
        if let Some(Ok((_, rt))) = self.inner.take() {
            rt.shutdown_background();
        }
    }
}

impl HttpClient {
    fn get(&self) -> Result<&(reqwest::Client, tokio::runtime::Runtime), String> {
        self.inner
            .get_or_init(|| {
                // reqwest is built with `rustls-no-provider`: make sure a process-wide
                // provider exists (ring), unless the embedder installed one already.
                if rustls::crypto::CryptoProvider::get_default().is_none() {
                    let _ = rustls::crypto::ring::default_provider().install_default();
                }
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("signalcraft-plugin-http")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("http runtime: {e}"))?;
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .build()
                    .map_err(|e| format!("http client: {e}"))?;
                Ok((client, rt))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Executes `req` (already permission-checked), waiting at most `timeout`.
    /// Must not be called from inside an async task (it blocks the thread).
    pub fn execute(&self, req: &GuestRequest, timeout: Duration) -> Result<GuestResponse, String> {
        let (client, rt) = self.get()?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| format!("invalid method {:?}", req.method))?;
        let mut builder = client
            .request(method, &req.url)
            .timeout(timeout)
            .body(req.body.clone());
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let result = async {
                let resp = builder
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                let status = resp.status().as_u16();
                let headers = resp
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let mut resp = resp;
                let mut body = Vec::new();
                while let Some(chunk) = resp
                    .chunk()
                    .await
                    .map_err(|e| e.without_url().to_string())?
                {
                    let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_RESPONSE_BYTES {
                        break;
                    }
                }
                Ok(GuestResponse {
                    status,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                })
            }
            .await;
            let _ = tx.send(result);
        });
        match rx.recv_timeout(timeout + Duration::from_millis(50)) {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {timeout:?}")),
        }
    }
}
