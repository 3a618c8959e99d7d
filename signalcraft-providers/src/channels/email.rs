//! Email over SMTP (lettre, rustls with ring): plain, STARTTLS or implicit TLS,
//! optional authentication, HTML + plain-text bodies rendered from minijinja
//! templates, and threading headers so every email about one incident lands in
//! one thread.
//!
//! Threading: every email about one incident names the same deterministic root id
//! `<incident-{incident}@{domain}>` (`domain` is the sender's domain; the group
//! key stands in when there is no incident). With a thread store
//! ([`EmailChannel::with_thread_store`]), the **first** email of an incident to a
//! recipient *is* the root: its `Message-ID` is the root id and it has no
//! `In-Reply-To`/`References`; every later one gets a unique `Message-ID`
//! `<{notification}.{incident}@{domain}>` and names the root in both headers. The
//! store remembers which `(incident, recipient)` threads have their root (written
//! after the root was accepted by the SMTP server), so a restart never sends a
//! second message with the same `Message-ID` (clients such as Gmail hide
//! duplicates). Without a store every email is a reply to the root id, which still
//! threads in common clients but the root itself is never sent. Two emails of a
//! new thread sent at the same moment: the first claims the root, the other replies
//! to it; a root that fails to send is released so its retry sends the root again.
//! The default subject is stable per incident.
//!
//! Failure classification: SMTP 4xx replies, timeouts and connection errors retry;
//! 5xx replies (rejected recipient, auth failure) and invalid addresses are permanent.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use signalcraft_core::channel::{Channel, Delivered, DeliveryError, Notification};
use signalcraft_core::delivery::log::{THREAD_ROOT_PREFIX, ThreadRoot};
use signalcraft_core::model::{AlertStatus, Severity};
use signalcraft_core::store::{Store, StoreExt, Table, WriteBatch};

use super::error::ChannelError;
use super::http::install_crypto_provider;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// No TLS (local relays and tests only).
    None,
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// Implicit TLS (SMTPS, usually port 465).
    Tls,
}

/// Configuration of one SMTP channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Channel instance name.
    pub name: String,
    /// SMTP host.
    pub host: String,
    /// Port (default: 25 with `none`, 587 with `starttls`, 465 with `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Transport security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// SMTP user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SMTP password (a secret; required with `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Sender, e.g. `SignalCraft <alerts@example.com>`.
    pub from: String,
    /// Subject template (minijinja).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_template: Option<String>,
    /// Plain-text body template (minijinja).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_template: Option<String>,
    /// HTML body template (minijinja, auto-escaped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_template: Option<String>,
    /// Per-command timeout in milliseconds (default 10 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// PEM file of extra trusted root certificates (a private CA that signed the
    /// relay's certificate), trusted besides the webpki roots. Only with
    /// `starttls` or `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// Default subject: stable per incident so mail clients thread by subject too.
pub const DEFAULT_SUBJECT: &str = "{% if incident %}[SignalCraft] Incident #{{ incident.number }}: {{ incident.title }}{% else %}[SignalCraft] {{ title }}{% endif %}";

/// Default plain-text body.
pub const DEFAULT_TEXT: &str = r#"{{ status_word }}: {{ title }}
Severity: {{ severity }}{% if incident %}
State: {{ incident.state }}{% endif %}{% if service %}
Service: {{ service }}{% endif %}

Alerts:
{% for a in alerts %}- [{{ a.status }}] {{ a.summary }}
{% endfor %}{% if runbooks %}
Runbooks:
{% for r in runbooks %}- {{ r.text or r.href }}: {{ r.href }}
{% endfor %}{% endif %}{% if changes %}
Recent changes:
{% for c in changes %}- {{ c.timestamp }} {{ c.summary }}
{% endfor %}{% endif %}{% if incident and incident.url %}
Open the incident: {{ incident.url }}
{% endif %}"#;

/// Default HTML body.
pub const DEFAULT_HTML: &str = r#"<!doctype html>
<html><body style="font-family:sans-serif">
<h2>{{ status_word }}: {{ title }}</h2>
<table>
<tr><th align="left">Severity</th><td>{{ severity }}</td></tr>{% if incident %}
<tr><th align="left">State</th><td>{{ incident.state }}</td></tr>{% endif %}{% if service %}
<tr><th align="left">Service</th><td>{{ service }}</td></tr>{% endif %}
</table>
<h3>Alerts</h3>
<ul>{% for a in alerts %}<li><b>{{ a.status }}</b> {{ a.summary }}</li>{% endfor %}</ul>
{% if runbooks %}<h3>Runbooks</h3>
<ul>{% for r in runbooks %}<li><a href="{{ r.href }}">{{ r.text or r.href }}</a></li>{% endfor %}</ul>{% endif %}
{% if changes %}<h3>Recent changes</h3>
<ul>{% for c in changes %}<li>{{ c.timestamp }} {{ c.summary }}</li>{% endfor %}</ul>{% endif %}
{% if incident and incident.url %}<p><a href="{{ incident.url }}">Open the incident</a></p>{% endif %}
</body></html>"#;

/// The SMTP channel.
pub struct EmailChannel {
    name: String,
    host: String,
    from: Mailbox,
    domain: String,
    /// Built lazily inside the runtime: lettre's pool spawns tokio tasks when it
    /// is created and dropped, so building at config-load time would panic
    /// outside a runtime.
    builder: AsyncSmtpTransportBuilder,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    env: Environment<'static>,
    /// lettre's own timeout bounds connecting only; the whole send is bounded here.
    timeout: Duration,
    /// Which threads have their root message (see the module doc).
    threads: Threads,
}

/// Thread roots: known ones (sent, or read back from the store) and the ones
/// being sent right now. Only active with a store.
#[derive(Default)]
struct Threads {
    store: Option<Arc<dyn Store>>,
    known: parking_lot::Mutex<HashSet<String>>,
    sending: parking_lot::Mutex<HashSet<String>>,
}

/// Thread roots remembered in memory at most; past it the set is emptied and
/// roots are read back from the store when needed again.
pub const MAX_REMEMBERED_THREADS: usize = 10_000;

impl Threads {
    /// Remembers that `key`'s root was sent (bounded by [`MAX_REMEMBERED_THREADS`]).
    fn remember(&self, key: &str) {
        let mut known = self.known.lock();
        if known.len() >= MAX_REMEMBERED_THREADS {
            known.clear();
        }
        known.insert(key.to_string());
    }

    fn store_key(channel: &str, key: &str) -> String {
        format!("{THREAD_ROOT_PREFIX}{channel}/{key}")
    }

    /// Whether this email should be the thread's root: no root known (in memory
    /// or in the store) and no other email sending it right now. `Some` claims it
    /// until the claim is dropped (also when the send is abandoned on timeout).
    async fn claim_root<'a>(
        &'a self,
        channel: &str,
        key: &str,
    ) -> Result<Option<RootClaim<'a>>, DeliveryError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        if self.known.lock().contains(key) {
            return Ok(None);
        }
        let stored: Option<serde_json::Value> = store
            .get_json(Table::NotificationLog, &Self::store_key(channel, key))
            .await
            .map_err(|e| DeliveryError::Retryable {
                reason: format!("email: reading the thread store failed: {e}"),
                retry_after: None,
            })?;
        if stored.is_some() {
            self.remember(key);
            return Ok(None);
        }
        Ok(self
            .sending
            .lock()
            .insert(key.to_string())
            .then(|| RootClaim {
                threads: self,
                key: key.to_string(),
            }))
    }
}

/// A claim on sending a thread's root; released on drop.
struct RootClaim<'a> {
    threads: &'a Threads,
    key: String,
}

impl RootClaim<'_> {
    /// The root was accepted by the server: record the thread (memory + store), with
    /// the incident and time store retention judges it by.
    async fn sent(self, channel: &str, n: &Notification) {
        let key = self.key.as_str();
        self.threads.remember(key);
        let Some(store) = &self.threads.store else {
            return;
        };
        let mark = ThreadRoot {
            incident: n.incident.as_ref().map(|i| i.id.clone()),
            at: n.created_at,
        };
        let mut b = WriteBatch::new();
        if let Err(e) = b.put(
            Table::NotificationLog,
            Threads::store_key(channel, key),
            &mark,
        ) {
            tracing::warn!(channel, error = %e, "email: encoding the thread root failed");
            return;
        }
        // Not fatal: the email went out. A lost mark means a later email may carry
        // the root id again (a duplicate the client drops).
        if let Err(e) = store.commit(b).await {
            tracing::warn!(channel, error = %e, "email: recording the thread root failed");
        }
    }
}

impl Drop for RootClaim<'_> {
    fn drop(&mut self) {
        self.threads.sending.lock().remove(&self.key);
    }
}
#[derive(Serialize)]
struct View<'a> {
    title: String,
    status_word: String,
    severity: &'static str,
    service: Option<String>,
    incident: Option<&'a signalcraft_core::channel::IncidentRef>,
    alerts: &'a [signalcraft_core::model::Alert],
    runbooks: &'a [signalcraft_core::model::Link],
    changes: &'a [signalcraft_core::model::ChangeEvent],
    receiver: &'a str,
    notification_id: &'a str,
}

fn view(n: &Notification) -> View<'_> {
    let severity = n
        .incident
        .as_ref()
        .map(|i| i.severity)
        .or_else(|| n.alerts.iter().map(|a| a.severity).min())
        .unwrap_or(Severity::Info);
    let title = match &n.incident {
        Some(i) => format!("#{} {}", i.number, i.title),
        None => n
            .alerts
            .first()
            .map(|a| a.summary.clone())
            .unwrap_or_else(|| n.group_key.clone()),
    };
    View {
        title,
        status_word: if n.status == AlertStatus::Resolved {
            "RESOLVED".into()
        } else {
            severity.as_str().to_uppercase()
        },
        severity: severity.as_str(),
        service: n
            .incident
            .as_ref()
            .and_then(|i| i.service.clone())
            .or_else(|| n.alerts.iter().find_map(|a| a.service.clone())),
        incident: n.incident.as_ref(),
        alerts: &n.alerts,
        runbooks: &n.runbooks,
        changes: &n.recent_changes,
        receiver: &n.receiver,
        notification_id: &n.id,
    }
}

/// TLS parameters for `host` trusting the webpki roots plus the certificates in
/// the PEM file `file` (`path` names the config field in errors).
fn tls_with_ca(host: &str, file: &str, path: &str) -> Result<TlsParameters, ChannelError> {
    let pem = std::fs::read(file)
        .map_err(|e| ChannelError::config(path, format!("cannot read `{file}`: {e}")))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(ChannelError::config(
            path,
            format!("`{file}` holds no PEM certificate"),
        ));
    }
    let cert = Certificate::from_pem(&pem)
        .map_err(|_| ChannelError::config(path, format!("`{file}` is not valid PEM")))?;
    TlsParameters::builder(host.to_string())
        .add_root_certificate(cert)
        .build_rustls()
        .map_err(|e| ChannelError::config(path, format!("TLS setup failed: {e}")))
}

/// Characters allowed in our Message-ID local parts.
fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The thread's key in the thread store: incident (or group key) and recipient,
/// both restricted to Message-ID characters.
fn thread_key(n: &Notification) -> String {
    let incident = n
        .incident
        .as_ref()
        .map_or(n.group_key.as_str(), |i| i.id.as_str());
    format!(
        "{}/{}",
        id_part(incident),
        n.target.address.trim().to_ascii_lowercase()
    )
}

/// `(Message-ID, thread root id)` for a notification from `domain`.
pub fn threading_ids(n: &Notification, domain: &str) -> (String, String) {
    let incident = n
        .incident
        .as_ref()
        .map(|i| i.id.clone())
        .unwrap_or_else(|| n.group_key.clone());
    let incident = id_part(&incident);
    (
        format!("<{}.{incident}@{domain}>", id_part(&n.id)),
        format!("<incident-{incident}@{domain}>"),
    )
}

impl EmailChannel {
    /// Validates the config (`path` prefixes error paths), compiles the templates
    /// and builds a pooled transport (no connection is made yet).
    pub fn new(c: &EmailConfig, path: &str) -> Result<Self, ChannelError> {
        install_crypto_provider();
        if c.host.trim().is_empty() {
            return Err(ChannelError::config(
                format!("{path}.host"),
                "must not be empty",
            ));
        }
        let from: Mailbox = c.from.parse().map_err(|e| {
            ChannelError::config(format!("{path}.from"), format!("not an email address: {e}"))
        })?;
        let domain = from.email.domain().to_string();
        if c.timeout_ms == 0 {
            return Err(ChannelError::config(
                format!("{path}.timeout_ms"),
                "must be greater than 0",
            ));
        }
        let mut builder = match (c.tls, &c.ca_file) {
            (SmtpTls::None, Some(_)) => {
                return Err(ChannelError::config(
                    format!("{path}.ca_file"),
                    "only with tls: starttls or tls",
                ));
            }
            (SmtpTls::Starttls | SmtpTls::Tls, Some(file)) => {
                let params = tls_with_ca(&c.host, file, &format!("{path}.ca_file"))?;
                let (tls, port) = match c.tls {
                    SmtpTls::Starttls => (Tls::Required(params), 587),
                    _ => (Tls::Wrapper(params), 465),
                };
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
                    .port(c.port.unwrap_or(port))
                    .tls(tls)
            }
            (SmtpTls::None, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
                    .port(c.port.unwrap_or(25))
            }
            (SmtpTls::Starttls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                    .map_err(|_| {
                        ChannelError::config(format!("{path}.host"), "invalid TLS host name")
                    })?
                    .port(c.port.unwrap_or(587))
            }
            (SmtpTls::Tls, None) => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host)
                .map_err(|_| ChannelError::config(format!("{path}.host"), "invalid TLS host name"))?
                .port(c.port.unwrap_or(465)),
        };
        builder = builder.timeout(Some(Duration::from_millis(c.timeout_ms)));
        match (&c.username, &c.password) {
            (Some(u), Some(p)) if !p.is_empty() => {
                builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
            }
            (Some(_), _) => {
                return Err(ChannelError::MissingCredential {
                    path: format!("{path}.password"),
                });
            }
            (None, Some(_)) => {
                return Err(ChannelError::MissingCredential {
                    path: format!("{path}.username"),
                });
            }
            (None, None) => {}
        }
        let mut env = Environment::new();
        for (name, field, src, default) in [
            (
                "subject.txt",
                "subject_template",
                &c.subject_template,
                DEFAULT_SUBJECT,
            ),
            ("body.txt", "text_template", &c.text_template, DEFAULT_TEXT),
            ("body.html", "html_template", &c.html_template, DEFAULT_HTML),
        ] {
            env.add_template_owned(
                name.to_string(),
                src.clone().unwrap_or_else(|| default.to_string()),
            )
            .map_err(|e| ChannelError::config(format!("{path}.{field}"), e.to_string()))?;
        }
        Ok(EmailChannel {
            name: c.name.clone(),
            host: c.host.clone(),
            from,
            domain,
            builder,
            transport: OnceLock::new(),
            env,
            timeout: Duration::from_millis(c.timeout_ms),
            threads: Threads::default(),
        })
    }

    /// Remembers thread roots in `store` (`Table::NotificationLog`, keys
    /// `~email-thread/{channel}/{incident}/{recipient}`), which turns on sending
    /// the root message (see the module doc).
    pub fn with_thread_store(mut self, store: Arc<dyn Store>) -> Self {
        self.threads.store = Some(store);
        self
    }

    /// Renders `(subject, text, html)`.
    pub fn render(&self, n: &Notification) -> Result<(String, String, String), DeliveryError> {
        let ctx = minijinja::Value::from(minijinja::value::Serde(view(n)));
        let r = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| DeliveryError::Permanent {
                    reason: format!("email: template {name}: {e}"),
                })
        };
        let subject = r("subject.txt")?.replace(['\r', '\n'], " ");
        Ok((subject.trim().to_string(), r("body.txt")?, r("body.html")?))
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| self.builder.clone().build())
    }

    fn timed_out(&self) -> DeliveryError {
        DeliveryError::Retryable {
            reason: format!(
                "smtp {}: timed out after {} ms",
                self.host,
                self.timeout.as_millis()
            ),
            retry_after: None,
        }
    }

    fn classify(&self, e: lettre::transport::smtp::Error) -> DeliveryError {
        let code = e.status().map(|c| c.to_string());
        let what = format!("smtp {}", self.host);
        if e.is_permanent() {
            DeliveryError::Permanent {
                reason: format!("{what}: rejected ({})", code.unwrap_or_default()),
            }
        } else if e.is_transient() {
            DeliveryError::Retryable {
                reason: format!("{what}: temporary failure ({})", code.unwrap_or_default()),
                retry_after: None,
            }
        } else if e.is_timeout() {
            DeliveryError::Retryable {
                reason: format!("{what}: timed out"),
                retry_after: None,
            }
        } else if e.is_tls() {
            DeliveryError::Retryable {
                reason: format!("{what}: TLS failure"),
                retry_after: None,
            }
        } else {
            DeliveryError::Retryable {
                reason: format!("{what}: connection failed"),
                retry_after: None,
            }
        }
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn kind(&self) -> &str {
        "email"
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        let to: Mailbox =
            n.target
                .address
                .trim()
                .parse()
                .map_err(|_| DeliveryError::Permanent {
                    reason: "email: target is not an email address".into(),
                })?;
        let (subject, text, html) = self.render(n)?;
        let (reply_id, root) = threading_ids(n, &self.domain);
        let key = thread_key(n);
        let claim = self.threads.claim_root(&self.name, &key).await?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject);
        let message_id = if claim.is_some() {
            root
        } else {
            builder = builder.in_reply_to(root.clone()).references(root);
            reply_id
        };
        let result = async {
            let msg = builder
                .message_id(Some(message_id.clone()))
                .multipart(MultiPart::alternative_plain_html(text, html))
                .map_err(|e| DeliveryError::Permanent {
                    reason: format!("email: building the message failed: {e}"),
                })?;
            match tokio::time::timeout(self.timeout, self.transport().send(msg)).await {
                Ok(r) => r.map(|_| ()).map_err(|e| self.classify(e)),
                Err(_) => Err(self.timed_out()),
            }
        }
        .await;
        if let Err(e) = &result {
            // The classified error: redacted like every DeliveryError.
            tracing::debug!(channel = %self.name, error = %e, "email send failed");
        }
        if let Some(claim) = claim
            && result.is_ok()
        {
            claim.sent(&self.name, n).await;
        }
        result?;
        Ok(Delivered {
            provider_message_id: Some(message_id),
        })
    }

    /// Connects, greets and sends `NOOP`.
    async fn health_check(&self) -> Result<(), DeliveryError> {
        let Ok(r) = tokio::time::timeout(self.timeout, self.transport().test_connection()).await
        else {
            return Err(self.timed_out());
        };
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeliveryError::Retryable {
                reason: format!("smtp {}: NOOP failed", self.host),
                retry_after: None,
            }),
            Err(e) => Err(self.classify(e)),
        }
    }
}

impl Drop for EmailChannel {
    fn drop(&mut self) {
        // lettre's pool spawns a cleanup task on drop, which panics without a
        // runtime; outside one, leak the (idle) pool instead of aborting.
        if tokio::runtime::Handle::try_current().is_err()
            && let Some(t) = self.transport.take()
        {
            std::mem::forget(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use signalcraft_core::delivery::log::ThreadRoot;
    use signalcraft_core::memory::MemoryStore;
    use signalcraft_core::store::{Store, StoreExt, Table};
    use signalcraft_core::testing::channel::sample_notification;

    use super::{MAX_REMEMBERED_THREADS, Threads};

    /// One root claim at a time per thread; a claim dropped without success
    /// (failed or abandoned send) is released; a sent root is remembered, also
    /// by a new instance over the same store; without a store nothing is a root.
    #[tokio::test]
    async fn root_claims_are_exclusive_released_on_failure_and_persisted() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let t = Threads {
            store: Some(store.clone()),
            ..Default::default()
        };
        let first = t.claim_root("smtp", "inc-1/a@x").await.unwrap();
        assert!(first.is_some());
        assert!(
            t.claim_root("smtp", "inc-1/a@x").await.unwrap().is_none(),
            "a second email while the root is being sent replies to it"
        );
        assert!(t.claim_root("smtp", "inc-1/b@x").await.unwrap().is_some());
        drop(first); // the root's send failed
        let again = t.claim_root("smtp", "inc-1/a@x").await.unwrap();
        assert!(again.is_some(), "released: the retry is the root");
        let n = sample_notification("n-1", "ops", "a@x");
        again.unwrap().sent("smtp", &n).await;
        assert!(t.claim_root("smtp", "inc-1/a@x").await.unwrap().is_none());
        let mark: Option<ThreadRoot> = store
            .get_json(Table::NotificationLog, "~email-thread/smtp/inc-1/a@x")
            .await
            .unwrap();
        assert_eq!(
            mark,
            Some(ThreadRoot {
                incident: Some("inc-42".into()),
                at: n.created_at,
            }),
            "the mark names the incident and time retention judges it by"
        );

        let restarted = Threads {
            store: Some(store.clone()),
            ..Default::default()
        };
        assert!(
            restarted
                .claim_root("smtp", "inc-1/a@x")
                .await
                .unwrap()
                .is_none()
        );
        let other_channel = Threads {
            store: Some(store),
            ..Default::default()
        };
        assert!(
            other_channel
                .claim_root("other", "inc-1/a@x")
                .await
                .unwrap()
                .is_some(),
            "threads are per channel instance"
        );
        let no_store = Threads::default();
        assert!(
            no_store
                .claim_root("smtp", "inc-2/a@x")
                .await
                .unwrap()
                .is_none()
        );
    }

    /// The in-memory set of sent roots stays bounded; a forgotten root is read
    /// back from the store, so it is still not sent twice.
    #[tokio::test]
    async fn remembered_roots_are_bounded_and_forgotten_ones_come_from_the_store() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let t = Threads {
            store: Some(store),
            ..Default::default()
        };
        let n = sample_notification("n-1", "ops", "a@x");
        for i in 0..=MAX_REMEMBERED_THREADS {
            let key = format!("inc-{i}/a@x");
            let claim = t.claim_root("smtp", &key).await.unwrap().unwrap();
            claim.sent("smtp", &n).await;
            assert!(t.known.lock().len() <= MAX_REMEMBERED_THREADS);
        }
        assert!(!t.known.lock().contains("inc-0/a@x"), "the set was emptied");
        assert!(
            t.claim_root("smtp", "inc-0/a@x").await.unwrap().is_none(),
            "read back from the store: not a root again"
        );
        assert!(t.known.lock().contains("inc-0/a@x"));
    }
}
