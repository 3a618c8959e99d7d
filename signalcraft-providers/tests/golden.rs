//! The golden test: walks `fixtures/<provider>/<case>.json`, parses each body with the
//! provider named by the folder, and compares the normalized events (or the typed
//! error) with `<case>.expected.json`.
//!
//! * `<case>.headers` (optional): `Name: value` lines sent with the body.
//! * `<case>.integration.json`, else `integration.json` in the folder (optional): the
//!   integration (options, limits) the case runs under.
//! * Requests carry `received_at = 2026-01-01T00:00:00Z`.
//! * Parsing only (`Verification::Skip`); signatures have their own tests.
//!
//! Folders in [`NOT_PROVIDERS`] hold other crates' fixtures and are skipped; any
//! other folder must be named after a registered provider.
//!
//! `UPDATE_GOLDEN=1 cargo test -p signalcraft-providers --test golden` rewrites the
//! expected files. Review every changed file by eye: they are the contract.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use signalcraft_core::provider::InboundRequest;
use signalcraft_providers::sources::{Integration, Registry, Verification};

/// Fixture folders that belong to other crates (`store`: signalcraft-store's
/// schema-1 database).
const NOT_PROVIDERS: &[&str] = &["store"];

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn is_case(name: &str) -> bool {
    name.ends_with(".json")
        && !name.ends_with(".expected.json")
        && !name.ends_with(".integration.json")
        && name != "integration.json"
}

/// Reads `Name: value` lines.
pub fn read_headers(path: &Path) -> Vec<(String, String)> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line needs a colon");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

fn integration_for(dir: &Path, provider: &str, case: &str) -> Integration {
    for p in [
        dir.join(format!("{case}.integration.json")),
        dir.join("integration.json"),
    ] {
        if let Ok(text) = fs::read_to_string(&p) {
            return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
    Integration::new(provider, format!("{provider}-fixture"))
}

#[test]
fn golden_fixtures() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let registry = Registry::builtin();
    let received_at = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut failures = Vec::new();
    let mut providers_seen = Vec::new();
    let mut dirs: Vec<_> = fs::read_dir(fixtures_root())
        .expect("fixtures/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .filter(|p| !NOT_PROVIDERS.iter().any(|n| p.ends_with(n)))
        .collect();
    dirs.sort();
    for dir in dirs {
        let provider = dir.file_name().unwrap().to_str().unwrap().to_string();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| is_case(n))
            .collect();
        names.sort();
        let (mut ok_cases, mut err_cases) = (0, 0);
        for name in names {
            let case = name.trim_end_matches(".json");
            let integration = integration_for(&dir, &provider, case);
            assert_eq!(
                integration.provider_type,
                provider,
                "{}/{case}: integration type",
                dir.display()
            );
            let provider_impl = registry
                .build_with(&integration, Verification::Skip)
                .unwrap_or_else(|e| panic!("{provider}/{case}: {e}"));
            let req = InboundRequest {
                headers: read_headers(&dir.join(format!("{case}.headers"))),
                body: fs::read(dir.join(&name)).unwrap(),
                url: None,
                received_at: Some(received_at),
            };
            let actual = match provider_impl.parse(&req) {
                Ok(events) => {
                    ok_cases += 1;
                    for e in &events {
                        assert_eq!(
                            &*e.source().provider,
                            provider.as_str(),
                            "{provider}/{case}"
                        );
                        assert_eq!(
                            &*e.source().integration,
                            integration.key.as_str(),
                            "{provider}/{case}"
                        );
                    }
                    json!({ "events": events })
                }
                Err(e) => {
                    err_cases += 1;
                    json!({ "error": e.kind(), "message": e.to_string() })
                }
            };
            let expected_path = dir.join(format!("{case}.expected.json"));
            if update {
                let mut text = serde_json::to_string_pretty(&actual).unwrap();
                text.push('\n');
                fs::write(&expected_path, text).unwrap();
                continue;
            }
            match fs::read_to_string(&expected_path) {
                Err(_) => failures.push(format!("{provider}/{case}: no {case}.expected.json (run with UPDATE_GOLDEN=1 and review)")),
                Ok(text) => {
                    let expected: Value = serde_json::from_str(&text).unwrap();
                    if expected != actual {
                        failures.push(format!(
                            "{provider}/{case}: mismatch\n--- expected\n{}\n--- actual\n{}",
                            serde_json::to_string_pretty(&expected).unwrap(),
                            serde_json::to_string_pretty(&actual).unwrap()
                        ));
                    }
                }
            }
        }
        assert!(
            ok_cases >= 3,
            "{provider}: only {ok_cases} cases produce events; want several"
        );
        assert!(err_cases >= 1, "{provider}: no malformed case");
        providers_seen.push(provider);
    }
    let mut want: Vec<String> = registry.types().map(String::from).collect();
    want.sort();
    assert_eq!(
        providers_seen, want,
        "every registered provider has a fixture folder"
    );
    assert!(
        failures.is_empty(),
        "{} golden failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
