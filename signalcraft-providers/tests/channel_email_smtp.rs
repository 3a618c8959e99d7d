//! Email against a REAL SMTP server process (`python3 -m aiosmtpd`) started by
//! the test: subject, both bodies and threading headers are asserted on the
//! message as received.
#![cfg(all(
    feature = "channel-slack",
    feature = "channel-email",
    feature = "channel-twilio",
    feature = "channel-webhook",
    feature = "channel-teams"
))]

#[path = "channel_support/mod.rs"]
mod support;

use signalcraft_core::channel::Channel;
use signalcraft_core::testing::channel::sample_notification;
use signalcraft_providers::channels::email::{EmailChannel, EmailConfig, SmtpTls};
use support::Aiosmtpd;

fn config(port: u16) -> EmailConfig {
    EmailConfig {
        name: "smtp".into(),
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "SignalCraft <alerts@signalcraft.example.com>".into(),
        subject_template: None,
        text_template: None,
        html_template: None,
        timeout_ms: 5_000,
        ca_file: None,
    }
}

/// Unfolds RFC 5322 header lines and returns the value of `name`.
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw
        .split("\r\n\r\n")
        .next()
        .unwrap_or(raw)
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Decodes the quoted-printable soft line breaks and `=XX` escapes lettre may use.
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_both_bodies_and_threading_headers() {
    let smtp = Aiosmtpd::start().await;
    let ch = EmailChannel::new(&config(smtp.port), "channels[0]").unwrap();
    ch.health_check().await.expect("SMTP connect + NOOP");

    let n1 = sample_notification("incident/smtp/inc-42/1", "smtp", "oncall@example.com");
    let mut n2 = sample_notification("incident/smtp/inc-42/2", "smtp", "oncall@example.com");
    n2.incident.as_mut().unwrap().state = "acknowledged".into();
    let d1 = ch.deliver(&n1).await.unwrap();
    ch.deliver(&n2).await.unwrap();

    let mails = smtp.wait_for(2).await;
    let m1 = &mails[0];
    assert_eq!(
        header(m1, "Subject").as_deref(),
        Some("[SignalCraft] Incident #42: HighErrorRate on checkout")
    );
    assert_eq!(header(m1, "To").as_deref(), Some("oncall@example.com"));
    assert!(
        header(m1, "From")
            .unwrap()
            .contains("alerts@signalcraft.example.com")
    );
    let id1 = header(m1, "Message-ID").unwrap();
    assert_eq!(Some(id1.clone()), d1.provider_message_id);
    assert_eq!(
        id1,
        "<incident-smtp-inc-42-1.inc-42@signalcraft.example.com>"
    );
    let root = "<incident-inc-42@signalcraft.example.com>";
    assert_eq!(header(m1, "In-Reply-To").as_deref(), Some(root));
    assert_eq!(header(m1, "References").as_deref(), Some(root));
    assert!(
        header(m1, "Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );

    let body = unqp(m1);
    assert!(body.contains("Content-Type: text/plain"), "{body}");
    assert!(body.contains("Content-Type: text/html"), "{body}");
    // Plain text part.
    assert!(
        body.contains("CRITICAL: #42 HighErrorRate on checkout"),
        "{body}"
    );
    assert!(
        body.contains("- [firing] 5xx rate above 5% for 10m"),
        "{body}"
    );
    assert!(
        body.contains("- Checkout 5xx runbook: https://runbooks.example.com/checkout-5xx"),
        "{body}"
    );
    assert!(body.contains("Deployed checkout v2.3.1"), "{body}");
    // HTML part (auto-escaped, with links).
    assert!(
        body.contains("<h2>CRITICAL: #42 HighErrorRate on checkout</h2>"),
        "{body}"
    );
    // minijinja's HTML escaping also encodes `/` (valid in attributes).
    assert!(
        body.contains("<a href=\"https:&#x2f;&#x2f;runbooks.example.com&#x2f;checkout-5xx\">Checkout 5xx runbook</a>"),
        "{body}"
    );
    assert!(body.contains("<td>open</td>"), "{body}");

    // The second email threads with the first.
    let m2 = &mails[1];
    assert_ne!(header(m2, "Message-ID"), header(m1, "Message-ID"));
    assert_eq!(header(m2, "In-Reply-To").as_deref(), Some(root));
    assert_eq!(header(m2, "Subject"), header(m1, "Subject"));
    assert!(unqp(m2).contains("<td>acknowledged</td>"));
}

#[tokio::test]
async fn custom_templates_render_and_html_is_escaped() {
    let smtp = Aiosmtpd::start().await;
    let mut c = config(smtp.port);
    c.subject_template = Some("{{ severity|upper }} {{ incident.number }}".into());
    c.html_template = Some("<p>{{ alerts[0].summary }}</p>".into());
    let ch = EmailChannel::new(&c, "channels[0]").unwrap();
    let mut n = sample_notification("n1", "smtp", "oncall@example.com");
    n.alerts[0].summary = "<script>alert(1)</script>".into();
    ch.deliver(&n).await.unwrap();
    let m = &smtp.wait_for(1).await[0];
    assert_eq!(header(m, "Subject").as_deref(), Some("CRITICAL 42"));
    let body = unqp(m);
    assert!(
        body.contains("<p>&lt;script&gt;alert(1)&lt;&#x2f;script&gt;</p>"),
        "{body}"
    );
}

#[tokio::test]
async fn unreachable_smtp_is_retryable_and_a_bad_recipient_is_permanent() {
    use signalcraft_core::channel::RetryAction;
    let refused = support::refused_port();
    let ch = EmailChannel::new(&config(refused.port), "channels[0]").unwrap();
    let e = ch
        .deliver(&sample_notification("n1", "smtp", "oncall@example.com"))
        .await
        .unwrap_err();
    assert_eq!(e.retry_action(), RetryAction::Retry, "{e}");
    assert!(ch.health_check().await.is_err());
    let e = ch
        .deliver(&sample_notification("n2", "smtp", "not an address"))
        .await
        .unwrap_err();
    assert_eq!(e.retry_action(), RetryAction::DontRetry, "{e}");
}

/// With a thread store, the first email of an incident to a recipient IS the
/// thread root (Message-ID = the deterministic root id, no In-Reply-To /
/// References); later ones reply to it, also after a restart (a new channel over
/// the same store never sends the root id twice); another recipient gets its
/// own root. Asserted on the messages as the real SMTP server received them.
#[tokio::test]
async fn the_first_email_of_an_incident_is_the_thread_root_and_later_ones_reply_to_it() {
    use std::sync::Arc;

    use signalcraft_core::memory::MemoryStore;
    use signalcraft_core::store::Store;

    let smtp = Aiosmtpd::start().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ch = EmailChannel::new(&config(smtp.port), "channels[0]")
        .unwrap()
        .with_thread_store(store.clone());
    let n1 = sample_notification("incident/smtp/inc-42-b/1", "smtp", "oncall@example.com");
    let n2 = sample_notification("incident/smtp/inc-42-b/2", "smtp", "oncall@example.com");
    let d1 = ch.deliver(&n1).await.unwrap();
    let d2 = ch.deliver(&n2).await.unwrap();
    drop(ch);
    // "Restart": a new channel instance over the same store.
    let ch2 = EmailChannel::new(&config(smtp.port), "channels[0]")
        .unwrap()
        .with_thread_store(store);
    let n3 = sample_notification("incident/smtp/inc-42-b/3", "smtp", "oncall@example.com");
    ch2.deliver(&n3).await.unwrap();
    let other = sample_notification("incident/smtp/inc-42-b/4", "smtp", "boss@example.com");
    ch2.deliver(&other).await.unwrap();

    let mails = smtp.wait_for(4).await;
    // `sample_notification` is about incident `inc-42`.
    let root = "<incident-inc-42@signalcraft.example.com>";
    let (m1, m2, m3, m4) = (&mails[0], &mails[1], &mails[2], &mails[3]);
    assert_eq!(header(m1, "Message-ID").as_deref(), Some(root));
    assert_eq!(d1.provider_message_id.as_deref(), Some(root));
    assert_eq!(header(m1, "In-Reply-To"), None);
    assert_eq!(header(m1, "References"), None);
    for m in [m2, m3] {
        assert_ne!(header(m, "Message-ID").as_deref(), Some(root));
        assert_eq!(header(m, "In-Reply-To").as_deref(), Some(root));
        assert_eq!(header(m, "References").as_deref(), Some(root));
    }
    assert_eq!(
        header(m2, "Message-ID"),
        d2.provider_message_id,
        "the reply's id is what the log records"
    );
    assert_ne!(header(m2, "Message-ID"), header(m3, "Message-ID"));
    // Another recipient's mailbox gets the root of the same thread id.
    assert_eq!(header(m4, "To").as_deref(), Some("boss@example.com"));
    assert_eq!(header(m4, "Message-ID").as_deref(), Some(root));
    assert_eq!(header(m4, "In-Reply-To"), None);
}

/// A private CA and a server certificate for 127.0.0.1 signed by it (openssl CLI),
/// in `dir`: returns (ca.pem, server.pem, server.key).
fn test_pki(dir: &std::path::Path) -> (String, String, String) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl CLI is required for the TLS tests");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let (ca, ca_key) = (p("ca.pem"), p("ca.key"));
    let mut a = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=signalcraft test CA",
    ];
    a.extend(ec);
    a.extend(["-keyout", &ca_key, "-out", &ca]);
    run(&a);
    let (key, csr, cert, ext) = (p("srv.key"), p("srv.csr"), p("srv.pem"), p("ext.cnf"));
    let mut a = vec!["req", "-nodes", "-subj", "/CN=127.0.0.1"];
    a.extend(ec);
    a.extend(["-keyout", &key, "-out", &csr]);
    run(&a);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (ca, cert, key)
}

/// `tls: starttls` and `tls: tls` against a real aiosmtpd speaking STARTTLS
/// (which it requires before any mail command) and implicit TLS (SMTPS), with
/// the relay's private CA trusted through `ca_file`: health check and delivery
/// succeed and the message arrives. Without `ca_file` the unknown CA is
/// refused, and plain SMTP to the STARTTLS-only server is refused.
/// A bad `ca_file` is a typed config error naming the field.
#[tokio::test]
async fn starttls_and_implicit_tls_with_a_private_ca() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki(pki.path());
    let tls_config = |port: u16, tls: SmtpTls, ca_file: Option<String>| EmailConfig {
        tls,
        ca_file,
        ..config(port)
    };

    let starttls = Aiosmtpd::start_with(
        &[
            "--tlscert".into(),
            cert.clone(),
            "--tlskey".into(),
            key.clone(),
        ],
        true,
    )
    .await;
    let ch = EmailChannel::new(
        &tls_config(starttls.port, SmtpTls::Starttls, Some(ca.clone())),
        "channels[0]",
    )
    .unwrap();
    ch.health_check().await.expect("STARTTLS + NOOP");
    ch.deliver(&sample_notification("tls/1", "smtp", "oncall@example.com"))
        .await
        .expect("delivered over STARTTLS");
    let mails = starttls.wait_for(1).await;
    assert_eq!(
        header(&mails[0], "Subject").as_deref(),
        Some("[SignalCraft] Incident #42: HighErrorRate on checkout")
    );
    // The same server without our CA: the certificate is refused, nothing sent.
    let untrusted = EmailChannel::new(
        &tls_config(starttls.port, SmtpTls::Starttls, None),
        "channels[0]",
    )
    .unwrap();
    assert!(
        untrusted
            .deliver(&sample_notification("tls/2", "smtp", "oncall@example.com"))
            .await
            .is_err()
    );
    // Plain SMTP to a server that requires STARTTLS is refused too.
    let plain = EmailChannel::new(&config(starttls.port), "channels[0]").unwrap();
    assert!(
        plain
            .deliver(&sample_notification("tls/3", "smtp", "oncall@example.com"))
            .await
            .is_err()
    );
    assert_eq!(
        starttls.wait_for(1).await.len(),
        1,
        "only the trusted send arrived"
    );

    let smtps = Aiosmtpd::start_with(
        &[
            "--smtpscert".into(),
            cert.clone(),
            "--smtpskey".into(),
            key.clone(),
        ],
        false,
    )
    .await;
    let ch = EmailChannel::new(
        &tls_config(smtps.port, SmtpTls::Tls, Some(ca.clone())),
        "channels[0]",
    )
    .unwrap();
    // aiosmtpd may still be starting its TLS listener: allow a few tries.
    let mut ok = false;
    for _ in 0..100 {
        if ch.health_check().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "implicit TLS health check never succeeded");
    ch.deliver(&sample_notification("tls/4", "smtp", "oncall@example.com"))
        .await
        .expect("delivered over implicit TLS");
    assert_eq!(smtps.wait_for(1).await.len(), 1);

    // Bad ca_file: typed errors naming the field.
    let bad = |c: EmailConfig| {
        EmailChannel::new(&c, "channels[2]")
            .err()
            .unwrap()
            .to_string()
    };
    let missing = pki.path().join("nope.pem").to_str().unwrap().to_string();
    let e = bad(tls_config(1, SmtpTls::Starttls, Some(missing)));
    assert!(
        e.contains("channels[2].ca_file") && e.contains("cannot read"),
        "{e}"
    );
    let e = bad(tls_config(1, SmtpTls::Tls, Some(key.clone())));
    assert!(
        e.contains("channels[2].ca_file") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = bad(tls_config(1, SmtpTls::None, Some(ca)));
    assert!(e.contains("channels[2].ca_file"), "{e}");
}
