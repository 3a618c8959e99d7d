//! `signalcraft apply` and `signalcraft check-config` accept the same structure in
//! YAML as in TOML (by file extension or `--format`), with the same validation errors
//! carrying paths. Runs the real binary.

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signalcraft"))
        .args(args)
        .output()
        .expect("run signalcraft");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh, empty store in `dir/data`.
fn data_dir(dir: &Path) -> String {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    drop(signalcraft_store::RedbStore::open(data.join("signalcraft.redb")).unwrap());
    data.display().to_string()
}

const ONCALL_YAML: &str = r#"
users:
  - id: ann
    name: Ann
    contact_methods:
      - { id: sms, kind: sms, address: "+15550001111" }
    notification_rules:
      high: [{ delay_minutes: 0, contact_method: sms }]
  - id: bob
    name: Bob
escalation_policies:
  - id: db
    name: DB
    levels:
      - targets: [{ type: user, id: ann }]
        delay_minutes: 10
      - targets: [{ type: user, id: bob }]
        delay_minutes: 10
services:
  - id: api
    name: API
"#;

/// The same desired state in TOML.
const ONCALL_TOML: &str = r#"
[[users]]
id = "ann"
name = "Ann"
contact_methods = [{ id = "sms", kind = "sms", address = "+15550001111" }]
notification_rules = { high = [{ delay_minutes = 0, contact_method = "sms" }] }

[[users]]
id = "bob"
name = "Bob"

[[escalation_policies]]
id = "db"
name = "DB"
levels = [
  { targets = [{ type = "user", id = "ann" }], delay_minutes = 10 },
  { targets = [{ type = "user", id = "bob" }], delay_minutes = 10 },
]

[[services]]
id = "api"
name = "API"
"#;

#[test]
fn apply_yaml_plans_applies_and_matches_the_same_toml() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let yaml = dir.path().join("oncall.yaml");
    std::fs::write(&yaml, ONCALL_YAML).unwrap();
    let y = yaml.to_str().unwrap();

    let (code, out, err) = run(&["apply", "--data-dir", &data, "--dry-run", y]);
    assert_eq!(code, Some(2), "{out}{err}");
    for line in [
        "+ create user ann",
        "+ create user bob",
        "+ create escalation_policy db",
        "+ create service api",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let (code, out, err) = run(&["apply", "--data-dir", &data, y]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("applied 4 change(s)"), "{out}");

    // The TOML spelling of the same state is in sync with what the YAML applied.
    let toml = dir.path().join("oncall.toml");
    std::fs::write(&toml, ONCALL_TOML).unwrap();
    let (code, out, err) = run(&[
        "apply",
        "--data-dir",
        &data,
        "--dry-run",
        toml.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("no changes"), "{out}");

    // Drift in YAML: one field changed.
    std::fs::write(&yaml, ONCALL_YAML.replace("name: Bob", "name: Robert")).unwrap();
    let (code, out, _) = run(&["apply", "--data-dir", &data, "--dry-run", y]);
    assert_eq!(code, Some(2));
    assert!(out.contains("~ update user bob (name)"), "{out}");

    // --format overrides the extension.
    let txt = dir.path().join("oncall.txt");
    std::fs::write(&txt, ONCALL_YAML).unwrap();
    let t = txt.to_str().unwrap();
    let (code, out, err) = run(&[
        "apply",
        "--data-dir",
        &data,
        "--dry-run",
        "--format",
        "yaml",
        t,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, err) = run(&["apply", "--data-dir", &data, "--dry-run", t]);
    assert_eq!(code, Some(1), "YAML read as TOML must fail: {err}");
    assert!(err.contains("line "), "{err}");
}

#[test]
fn apply_yaml_errors_name_the_path_and_apply_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let yaml = dir.path().join("bad.yml");
    let cases: &[(&str, &str)] = &[
        // Unknown field in a user.
        ("users:\n  - id: ann\n    nmae: typo\n", "users[0]"),
        // A policy naming a user that does not exist.
        (
            "escalation_policies:\n  - id: p\n    name: P\n    levels:\n      - targets: [{ type: user, id: ghost }]\n        delay_minutes: 5\n",
            "ghost",
        ),
        // A section that is not a list.
        ("users:\n  id: ann\n", "users"),
        // null where a value is needed.
        ("users:\n  - id: ann\n    name: ~\n", "users[0].name"),
        // A syntax error: named by line.
        ("users:\n  - id: ann\n   name: [\n", "line "),
    ];
    for (text, want) in cases {
        std::fs::write(&yaml, text).unwrap();
        let (code, out, err) = run(&["apply", "--data-dir", &data, yaml.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{text}\n{out}{err}");
        assert!(err.contains(want), "{want:?} not in {err:?} for:\n{text}");
    }
    // Nothing was applied by any of them.
    std::fs::write(&yaml, "users: []\n").unwrap();
    let (code, out, _) = run(&[
        "apply",
        "--data-dir",
        &data,
        "--dry-run",
        "--prune",
        yaml.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("no changes"), "{out}");
}

#[test]
fn check_config_reads_yaml_and_prints_every_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "server:\n  listen: nope\nintegrations:\n  - name: a\n    type: prometheus\n    key: literal\nroute:\n  group_wait: soon\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    for path in [
        "server:",
        "integrations[0].type",
        "integrations[0].key",
        "route",
    ] {
        assert!(err.contains(path), "missing {path} in:\n{err}");
    }
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "route:\n  group_wait: 5s\n  group_by: [alertname, service]\n  routes:\n    - matchers: ['severity=\"page\"']\n      group_wait: 1s\n",
    )
    .unwrap();
    let (code, out, err) = run(&["check-config", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("ok:"), "{out}");
}

/// `--format json`: stdout is one JSON array of {path, message}, the same errors the
/// text format prints, and `[]` (exit 0) for a valid file.
#[test]
fn check_config_json_lists_every_error_as_path_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "server:\n  listen: nope\nintegrations:\n  - name: a\n    type: prometheus\n    key: literal\nroute:\n  group_wait: soon\n",
    )
    .unwrap();
    let (code, out, _) = run(&["check-config", "--format", "json", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&out).expect("stdout is a JSON array");
    let (text_code, _, text_err) = run(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(text_code, Some(1));
    assert_eq!(
        list.len() + 1,
        text_err.lines().count(),
        "one entry per text error line (plus the summary line):\n{out}\n{text_err}"
    );
    for e in &list {
        let path = e["path"].as_str().expect("path is a string");
        let message = e["message"].as_str().expect("message is a string");
        assert!(
            text_err.contains(&format!("error: {path}: {message}")),
            "{e} not in the text output:\n{text_err}"
        );
    }
    for path in ["integrations[0].type", "integrations[0].key"] {
        assert!(
            list.iter().any(|e| e["path"] == path),
            "missing {path} in {out}"
        );
    }
    let good = dir.path().join("good.yml");
    std::fs::write(&good, "route:\n  group_wait: 5s\n  group_by: [alertname]\n").unwrap();
    let (code, out, err) = run(&["check-config", "--format", "json", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.trim(), "[]");
    let (code, _, err) = run(&["check-config", "--format", "xml", good.to_str().unwrap()]);
    assert_eq!(code, Some(2), "clap rejects an unknown format: {err}");
}
