//! Every channel runs the shared conformance suite
//! (`signalcraft_core::testing::channel::assert_channel_conformance`) against a
//! fake of its vendor on 127.0.0.1: retry table, Retry-After, timeouts, no
//! secret in errors or logs, idempotent re-send.
#![cfg(all(
    feature = "channel-slack",
    feature = "channel-email",
    feature = "channel-twilio",
    feature = "channel-webhook",
    feature = "channel-teams"
))]

#[path = "channel_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use signalcraft_core::channel::{Channel, RetryAction};
use signalcraft_core::testing::channel::{
    ConformanceRig, Expectation, FakeBehaviour, assert_channel_conformance,
};
use signalcraft_providers::channels::email::{EmailChannel, EmailConfig, SmtpTls};
use signalcraft_providers::channels::slack::{SlackChannel, SlackConfig};
use signalcraft_providers::channels::teams::{TeamsChannel, TeamsConfig};
use signalcraft_providers::channels::twilio::{TwilioChannel, TwilioConfig, TwilioMode};
use signalcraft_providers::channels::webhook::{WebhookChannel, WebhookConfig};
use support::{Fake, FakeSmtp, LogBuf, Mode, Vendor, capture_logs};

const TIMEOUT_MS: u64 = 300;

struct HttpRig {
    fake: Fake,
    channel: Arc<dyn Channel>,
    secrets: Vec<String>,
    logs: LogBuf,
    address: String,
}

#[async_trait]
impl ConformanceRig for HttpRig {
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    async fn set_behaviour(&self, b: FakeBehaviour) {
        self.fake.set(Mode::Core(b));
    }
    async fn accepted(&self) -> usize {
        self.fake.accepted()
    }
    fn secrets(&self) -> Vec<String> {
        self.secrets.clone()
    }
    fn logs(&self) -> Vec<String> {
        self.logs.lines()
    }
    fn timeout(&self) -> Duration {
        Duration::from_millis(TIMEOUT_MS)
    }
    fn address(&self) -> String {
        self.address.clone()
    }
}

#[tokio::test]
async fn webhook_channel_conforms() {
    let (logs, _g) = capture_logs();
    let fake = Fake::start(Vendor::Webhook).await;
    let cfg = WebhookConfig {
        name: "hook".into(),
        url: fake.url("/hook/s3cr3t-path-token"),
        headers: BTreeMap::from([("Authorization".into(), "Bearer hdr-secret-123".into())]),
        secret: Some("whsec-signing-456".into()),
        timeout_ms: TIMEOUT_MS,
        max_alerts: 0,
        max_in_flight: 256,
    };
    let rig = HttpRig {
        channel: Arc::new(WebhookChannel::new(&cfg, "channels[0]").unwrap()),
        fake,
        secrets: vec![
            "s3cr3t-path-token".into(),
            "hdr-secret-123".into(),
            "whsec-signing-456".into(),
        ],
        logs,
        address: String::new(),
    };
    assert_channel_conformance(&rig).await;
    // The logs saw some traffic, so the secret check above was not vacuous.
    assert!(!rig.logs.lines().is_empty());
}

#[tokio::test]
async fn slack_web_api_channel_conforms() {
    let (logs, _g) = capture_logs();
    let fake = Fake::start_with(Vendor::SlackApi, Some("xoxb-secret-token-789"), None).await;
    let cfg = SlackConfig {
        name: "slack".into(),
        webhook_url: None,
        token: Some("xoxb-secret-token-789".into()),
        api_url: fake.url("/api"),
        default_channel: None,
        signing_secret: Some("slack-signing-secret".into()),
        timeout_ms: TIMEOUT_MS,
    };
    let rig = HttpRig {
        channel: Arc::new(SlackChannel::new(&cfg, "channels[0]").unwrap()),
        fake,
        secrets: vec![
            "xoxb-secret-token-789".into(),
            "slack-signing-secret".into(),
        ],
        logs,
        address: "C0123OPS".into(),
    };
    assert_channel_conformance(&rig).await;
}

#[tokio::test]
async fn slack_incoming_webhook_channel_conforms() {
    let (logs, _g) = capture_logs();
    let fake = Fake::start(Vendor::Webhook).await;
    let cfg = SlackConfig {
        name: "slack-hook".into(),
        webhook_url: Some(fake.url("/services/T000/B000/XXXXSECRETXXXX")),
        token: None,
        api_url: "https://slack.com/api".into(),
        default_channel: None,
        signing_secret: None,
        timeout_ms: TIMEOUT_MS,
    };
    let rig = HttpRig {
        channel: Arc::new(SlackChannel::new(&cfg, "channels[0]").unwrap()),
        fake,
        secrets: vec!["XXXXSECRETXXXX".into(), "/services/T000/B000".into()],
        logs,
        address: String::new(),
    };
    assert_channel_conformance(&rig).await;
}

fn twilio_cfg(fake: &Fake) -> TwilioConfig {
    TwilioConfig {
        name: "twilio".into(),
        account_sid: "AC0123456789abcdef".into(),
        auth_token: "twilio-auth-secret-0042".into(),
        from: "+15550009999".into(),
        api_url: fake.url(""),
        status_callback_url: Some("https://sc.example.com/callbacks/twilio/status".into()),
        gather_action_url: Some("https://sc.example.com/callbacks/twilio/voice".into()),
        timeout_ms: TIMEOUT_MS,
    }
}

#[tokio::test]
async fn twilio_sms_and_voice_channels_conform() {
    for mode in [TwilioMode::Sms, TwilioMode::Voice] {
        let (logs, _g) = capture_logs();
        let fake = Fake::start_with(
            Vendor::Twilio,
            None,
            Some(("AC0123456789abcdef", "twilio-auth-secret-0042")),
        )
        .await;
        let rig = HttpRig {
            channel: Arc::new(TwilioChannel::new(&twilio_cfg(&fake), mode, "channels[0]").unwrap()),
            fake,
            secrets: vec!["twilio-auth-secret-0042".into()],
            logs,
            address: "+15550001111".into(),
        };
        assert_channel_conformance(&rig).await;
    }
}

#[tokio::test]
async fn teams_channel_conforms() {
    let (logs, _g) = capture_logs();
    let fake = Fake::start(Vendor::Webhook).await;
    let cfg = TeamsConfig {
        name: "teams".into(),
        url: fake.url("/workflows/abc/triggers/manual/run?sig=teams-sig-secret"),
        timeout_ms: TIMEOUT_MS,
    };
    let rig = HttpRig {
        channel: Arc::new(TeamsChannel::new(&cfg, "channels[0]").unwrap()),
        fake,
        secrets: vec!["teams-sig-secret".into()],
        logs,
        address: String::new(),
    };
    assert_channel_conformance(&rig).await;
}

struct SmtpRig {
    smtp: FakeSmtp,
    channel: Arc<dyn Channel>,
    logs: LogBuf,
}

#[async_trait]
impl ConformanceRig for SmtpRig {
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    async fn set_behaviour(&self, b: FakeBehaviour) {
        *self.smtp.mode.lock().unwrap() = b;
    }
    async fn accepted(&self) -> usize {
        self.smtp.accepted.load(Ordering::SeqCst)
    }
    fn secrets(&self) -> Vec<String> {
        vec!["smtp-password-secret".into()]
    }
    fn logs(&self) -> Vec<String> {
        self.logs.lines()
    }
    fn timeout(&self) -> Duration {
        Duration::from_millis(TIMEOUT_MS)
    }
    fn address(&self) -> String {
        "oncall@example.com".into()
    }
    /// SMTP reply codes: 4xx transient, 5xx permanent (RFC 5321 §4.2.1).
    fn status_table(&self) -> Vec<Expectation> {
        let mut t = vec![Expectation {
            behaviour: FakeBehaviour::Accept,
            expect: None,
        }];
        for (code, expect) in [
            (421, RetryAction::Retry),
            (450, RetryAction::Retry),
            (451, RetryAction::Retry),
            (452, RetryAction::Retry),
            (550, RetryAction::DontRetry),
            (553, RetryAction::DontRetry),
            (554, RetryAction::DontRetry),
        ] {
            t.push(Expectation {
                behaviour: FakeBehaviour::Status {
                    code,
                    retry_after_secs: None,
                },
                expect: Some(expect),
            });
        }
        t
    }
    fn supports_retry_after(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn email_channel_conforms() {
    let (logs, _g) = capture_logs();
    let smtp = FakeSmtp::start().await;
    let cfg = EmailConfig {
        name: "smtp".into(),
        host: "127.0.0.1".into(),
        port: Some(smtp.port),
        tls: SmtpTls::None,
        username: Some("alerts".into()),
        password: Some("smtp-password-secret".into()),
        from: "SignalCraft <alerts@signalcraft.example.com>".into(),
        subject_template: None,
        text_template: None,
        html_template: None,
        timeout_ms: TIMEOUT_MS,
        ca_file: None,
    };
    let rig = SmtpRig {
        channel: Arc::new(EmailChannel::new(&cfg, "channels[0]").unwrap()),
        smtp,
        logs,
    };
    assert_channel_conformance(&rig).await;
    // The channel did authenticate with the secret, so the suite's "no secret in
    // errors or logs" check had a secret to find.
    let auths = rig.smtp.auths.lock().unwrap().clone();
    assert!(
        auths.iter().any(|a| a == "alerts:smtp-password-secret"),
        "no AUTH with the configured credentials: {} auths",
        auths.len()
    );
    assert!(!rig.logs.lines().is_empty());
}
