//! `signalcraft normalize`, run as the built binary on the provider fixtures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn normalize(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signalcraft"))
        .arg("normalize")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A process that exits early closes stdin; that is not a test failure.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap()
}

fn lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn prints_one_json_line_per_event_and_matches_the_golden_file() {
    let o = normalize(
        &[
            "--provider",
            "alertmanager",
            "--integration-key",
            "prod-prometheus",
        ],
        &fixture("alertmanager/mixed_firing_resolved.json"),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = lines(&o);
    let expected: serde_json::Value =
        serde_json::from_slice(&fixture("alertmanager/mixed_firing_resolved.expected.json"))
            .unwrap();
    assert_eq!(serde_json::Value::Array(got), expected["events"]);
}

#[test]
fn verifies_github_signature_with_secret_from_env() {
    let body = fixture("github/deployment_created.json");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"cli-secret").unwrap();
    mac.update(&body);
    let sig = format!(
        "X-Hub-Signature-256: sha256={}",
        hex::encode(mac.finalize().into_bytes())
    );
    let args = [
        "--provider",
        "github",
        "--secret",
        "env:SC_GH_SECRET",
        "--header",
        "X-GitHub-Event: deployment",
        "--header",
        &sig,
    ];
    let ok = normalize(&args, &body, &[("SC_GH_SECRET", "cli-secret")]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let events = lines(&ok);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "change");

    let bad = normalize(&args, &body, &[("SC_GH_SECRET", "wrong-secret")]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(bad.stdout.is_empty());
    assert!(
        stderr(&bad).contains("signature mismatch") && stderr(&bad).contains("bad_signature"),
        "{}",
        stderr(&bad)
    );
    assert!(!stderr(&bad).contains("wrong-secret"));

    let unset = normalize(&args, &body, &[]);
    assert_eq!(unset.status.code(), Some(1));
    assert!(
        stderr(&unset).contains("SC_GH_SECRET"),
        "{}",
        stderr(&unset)
    );
}

#[test]
fn no_verify_skips_signatures_but_not_parsing() {
    let body = fixture("github/push_default_branch.json");
    let o = normalize(
        &[
            "--provider",
            "github",
            "--no-verify",
            "--header",
            "X-GitHub-Event: push",
        ],
        &body,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(lines(&o)[0]["labels"]["branch"], "master");
    let o = normalize(&["--provider", "github", "--no-verify"], &body, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("missing header X-GitHub-Event"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_input_exits_1_with_a_typed_error_and_never_panics() {
    let cases: Vec<(Vec<&str>, Vec<u8>, &str)> = vec![
        (
            vec!["--provider", "nagios"],
            b"{}".to_vec(),
            "unknown_provider",
        ),
        (
            vec!["--provider", "alertmanager"],
            fixture("alertmanager/malformed_truncated.json"),
            "malformed",
        ),
        (
            vec!["--provider", "pagerduty", "--no-verify"],
            fixture("pagerduty/malformed_bad_severity.json"),
            "payload.severity",
        ),
        (
            vec!["--provider", "alertmanager", "--max-body-bytes", "100"],
            fixture("alertmanager/firing_single.json"),
            "too_large",
        ),
        (
            vec!["--provider", "github"],
            b"{}".to_vec(),
            "secrets.webhook_secret",
        ),
        (
            vec!["--provider", "grafana", "--no-verify"],
            vec![0xff, 0xfe, 0x00, 0x7b],
            "malformed",
        ),
        (
            vec![
                "--provider",
                "generic",
                "--no-verify",
                "--options",
                "{\"summary\": \"nope\"}",
            ],
            b"{}".to_vec(),
            "options.summary",
        ),
        (
            vec!["--provider", "alertmanager", "--header", "no colon"],
            b"{}".to_vec(),
            "expected \"Name: value\"",
        ),
    ];
    for (args, body, want) in cases {
        let o = normalize(&args, &body, &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn sns_subscription_confirmation_is_reported_with_exit_0() {
    let cert =
        std::fs::read_to_string(fixtures().join("cloudwatch/signing/test-cert.pem")).unwrap();
    let opts = serde_json::json!({
        "certificates": {"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-fixture.pem": cert}
    })
    .to_string();
    let args = [
        "--provider",
        "cloudwatch",
        "--options",
        &opts,
        "--now",
        "2024-05-01T09:00:05Z",
    ];
    let o = normalize(
        &args,
        &fixture("cloudwatch/subscription_confirmation.json"),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).contains("Action=ConfirmSubscription"),
        "{}",
        stderr(&o)
    );
    // The same alarm verified (SignatureVersion 1) and normalized...
    let alarm = fixture("cloudwatch/alarm_firing.json");
    let ok = normalize(
        &[
            "--provider",
            "cloudwatch",
            "--options",
            &opts,
            "--now",
            "2024-05-01T10:04:00Z",
        ],
        &alarm,
        &[],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(lines(&ok)[0]["status"], "firing");
    // ...but replayed a day later it is refused.
    let late = normalize(
        &[
            "--provider",
            "cloudwatch",
            "--options",
            &opts,
            "--now",
            "2024-05-02T10:04:00Z",
        ],
        &alarm,
        &[],
    );
    assert_eq!(late.status.code(), Some(1));
    assert!(stderr(&late).contains("expired"), "{}", stderr(&late));
}
