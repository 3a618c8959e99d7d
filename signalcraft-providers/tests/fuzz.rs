//! Property tests: every parser, fed arbitrary bytes or mutated fixtures, returns
//! events or a typed error — it never panics and never hangs (each case is bounded by
//! the body limit and serde_json's recursion limit).

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};
use signalcraft_providers::sources::{Integration, Registry, Verification};

/// (type name, parse-only provider, verifying provider)
type Built = (String, Box<dyn Provider>, Box<dyn Provider>);
/// (provider index, headers, body)
type Fixture = (usize, Vec<(String, String)>, Vec<u8>);

struct Corpus {
    providers: Vec<Built>,
    fixtures: Vec<Fixture>,
}

fn read_headers(path: &Path) -> Vec<(String, String)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let registry = Registry::builtin();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let mut providers = Vec::new();
        let mut fixtures = Vec::new();
        for ty in registry.types() {
            let parse_only = Integration::new(ty, "fuzz").with_max_body_bytes(64 * 1024);
            let mut verifying = parse_only.clone();
            let (required, _) = registry.get(ty).unwrap().secret_names();
            for s in required {
                verifying = verifying.with_secret(*s, "fuzz-secret");
            }
            if ty == "datadog" {
                verifying = verifying.with_secret("token", "fuzz-secret");
            }
            if ty == "grafana" {
                verifying = verifying.with_secret("hmac_secret", "fuzz-secret");
            }
            let idx = providers.len();
            providers.push((
                ty.to_string(),
                registry
                    .build_with(&parse_only, Verification::Skip)
                    .unwrap(),
                registry.build(&verifying).unwrap(),
            ));
            let dir = root.join(ty);
            for e in fs::read_dir(&dir).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".json")
                    && !name.contains(".expected.")
                    && !name.contains("integration")
                {
                    let case = name.trim_end_matches(".json");
                    fixtures.push((
                        idx,
                        read_headers(&dir.join(format!("{case}.headers"))),
                        fs::read(dir.join(&name)).unwrap(),
                    ));
                }
            }
        }
        Corpus {
            providers,
            fixtures,
        }
    })
}

/// Runs parse and verify; panics (failing the property) only on a panic inside.
fn exercise(p: &dyn Provider, req: &InboundRequest) {
    let now = "2026-01-01T00:00:00Z".parse().unwrap();
    let _ = p.verify(req, now);
    match p.parse(req) {
        Ok(events) => {
            for e in events {
                // Normalized events always serialize.
                serde_json::to_vec(&e).unwrap();
            }
        }
        Err(e) => {
            // Errors render and carry a kind.
            assert!(!e.to_string().is_empty());
            assert!(!e.kind().is_empty());
        }
    }
}

fn header_for(provider: &str) -> Vec<(String, String)> {
    let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    match provider {
        "github" => h("X-GitHub-Event", "push"),
        "sentry" => h("Sentry-Hook-Resource", "metric_alert"),
        _ => Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for (name, parse_only, verifying) in &corpus().providers {
            let req = InboundRequest { headers: header_for(name), body: bytes.clone(), ..Default::default() };
            exercise(parse_only.as_ref(), &req);
            exercise(verifying.as_ref(), &req);
        }
    }

    #[test]
    fn arbitrary_json_values_never_panic(v in arb_json()) {
        let body = serde_json::to_vec(&v).unwrap();
        for (name, parse_only, _) in &corpus().providers {
            let req = InboundRequest { headers: header_for(name), body: body.clone(), ..Default::default() };
            exercise(parse_only.as_ref(), &req);
        }
    }

    #[test]
    fn mutated_fixtures_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let c = corpus();
        let (idx, headers, body) = &c.fixtures[pick.index(c.fixtures.len())];
        let mut body = body.clone();
        for (at, byte, op) in edits {
            if body.is_empty() { break; }
            let i = at.index(body.len());
            match op {
                0 => body[i] = byte,
                1 => { body.remove(i); }
                2 => body.insert(i, byte),
                _ => body.truncate(i),
            }
        }
        let (_, parse_only, verifying) = &c.providers[*idx];
        let req = InboundRequest { headers: headers.clone(), body, ..Default::default() };
        exercise(parse_only.as_ref(), &req);
        exercise(verifying.as_ref(), &req);
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9_ :./-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("firing"),
            Just("resolved"),
            Just("trigger"),
            Just("resolve"),
            Just("ALARM"),
            Just("Notification"),
            Just("pipeline"),
            Just("deployment"),
            Just("4"),
            Just("critical"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("version"),
            Just("alerts"),
            Just("status"),
            Just("labels"),
            Just("annotations"),
            Just("Type"),
            Just("Message"),
            Just("payload"),
            Just("event_action"),
            Just("dedup_key"),
            Just("summary"),
            Just("source"),
            Just("severity"),
            Just("object_kind"),
            Just("project"),
            Just("object_attributes"),
            Just("data"),
            Just("metric_alert"),
            Just("action"),
            Just("id"),
            Just("title"),
            Just("repository"),
            Just("ref"),
            Just("routing_key"),
            Just("checks"),
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::vec((keys, inner), 0..6).prop_map(|kv| {
                serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

#[test]
fn deep_nesting_and_huge_bodies_are_refused_not_crashed() {
    let registry = Registry::builtin();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = vec![b' '; (1 << 20) + 1];
    for ty in registry.types() {
        let p = registry
            .build_with(&Integration::new(ty, "fuzz"), Verification::Skip)
            .unwrap();
        let mut req = InboundRequest::from_body(deep.clone());
        req.headers = header_for(ty);
        assert!(p.parse(&req).is_err(), "{ty}: deep nesting");
        req.body = huge.clone();
        match p.parse(&req) {
            Err(ProviderError::TooLarge { size, limit, .. }) => {
                assert_eq!((size, limit), ((1 << 20) + 1, 1 << 20), "{ty}");
            }
            other => panic!("{ty}: want TooLarge for 1 MiB + 1, got {other:?}"),
        }
    }
}
