//! Hostile plugins (hand-written WAT): each ends in a clean typed error, and the host
//! and a well-behaved plugin keep working afterwards.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use signalcraft_core::clock::ManualClock;
use signalcraft_core::remediation::{FollowUp, RemediationStatus};
use signalcraft_plugins::manifest::{Capabilities, Limits};
use signalcraft_plugins::{HostConfig, PluginError, PluginHost};

const HTTP_IMPORT: &str =
    r#"(import "signalcraft:host/v1" "http_request" (func $http (param i32 i32) (result i64)))"#;
const KV_IMPORT: &str =
    r#"(import "signalcraft:host/v1" "kv_get" (func $kv_get (param i32 i32) (result i64)))"#;

fn limits() -> Limits {
    Limits {
        fuel: 5_000_000,
        memory_bytes: 1 << 20,
        timeout_ms: 2_000,
    }
}

/// One host per test binary, with every plugin loaded (modules compiled once).
fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let clock = Arc::new(ManualClock::new("2026-11-27T03:00:00Z".parse().unwrap()));
        let host = PluginHost::new(HostConfig::default(), clock).unwrap();
        let none = Capabilities::default;
        let ok = ok_result();
        let load = |name: &str, wasm: Vec<u8>, caps: Capabilities, limits: Limits| {
            host.load_manifest(manifest_for(name, &wasm, caps, limits))
                .unwrap_or_else(|e| panic!("load {name}: {e}"));
        };
        load("good", wat_module("", "", &ok), none(), limits());
        load(
            "spin",
            wat_module("", "", "(loop $l (br $l)) (unreachable)"),
            none(),
            limits(),
        );
        load(
            "spin-unmetered",
            wat_module("", "", "(loop $l (br $l)) (unreachable)"),
            none(),
            Limits {
                fuel: 0,
                timeout_ms: 100,
                ..limits()
            },
        );
        load(
            "hog",
            wat_module("", "", "(loop $l (drop (memory.grow (i32.const 4))) (br $l)) (unreachable)"),
            none(),
            limits(),
        );
        load("trap", wat_module("", "", "(unreachable)"), none(), limits());
        load(
            "recurse",
            wat_module("", "(func $r (param i64) (result i64) (call $r (i64.add (local.get 0) (i64.const 1))))", "(call $r (i64.const 0))"),
            none(),
            limits(),
        );
        load(
            "oob-result",
            wat_module("", "", "(i64.or (i64.shl (i64.const 0xfff0) (i64.const 32)) (i64.const 4096))"),
            none(),
            limits(),
        );
        load(
            "bad-utf8",
            wat_module("", r#"(data (i32.const 200) "\ff\fe\fd")"#, "(i64.or (i64.shl (i64.const 200) (i64.const 32)) (i64.const 3))"),
            none(),
            limits(),
        );
        load(
            "bad-json",
            wat_module("", r#"(data (i32.const 200) "{not json")"#, "(i64.or (i64.shl (i64.const 200) (i64.const 32)) (i64.const 9))"),
            none(),
            limits(),
        );
        // Calls http_request to a host not on its allowlist; returns the ok document
        // only if it saw the DENIED code (-1), else traps.
        let url = r#"{"method":"GET","url":"http://127.0.0.1:9/steal"}"#;
        let http_body = format!(
            "(if (i64.ne (call $http (i32.const 300) (i32.const {})) (i64.const -1)) (then (unreachable))) {ok}",
            url.len()
        );
        load(
            "sneaky-http",
            wat_module(
                HTTP_IMPORT,
                &format!("(data (i32.const 300) \"{}\")", url.replace('"', "\\\"")),
                &http_body,
            ),
            Capabilities {
                allowed_hosts: vec!["127.0.0.1:8080".into()],
                ..none()
            },
            limits(),
        );
        load(
            "sneaky-kv",
            wat_module(
                KV_IMPORT,
                "",
                &format!("(if (i64.ne (call $kv_get (i32.const 16) (i32.const 3)) (i64.const -1)) (then (unreachable))) {ok}"),
            ),
            none(),
            limits(),
        );
        let other = r#"{"status":"success","message":"x","follow_up":{"type":"resolve","incident_id":"inc-OTHER"}}"#;
        load(
            "other-incident",
            wat_module(
                "",
                &format!("(data (i32.const 500) \"{}\")", other.replace('"', "\\\"")),
                &format!("(i64.or (i64.shl (i64.const 500) (i64.const 32)) (i64.const {}))", other.len()),
            ),
            none(),
            limits(),
        );
        let own = r#"{"status":"success","message":"x","incident_id":"inc-1","follow_up":{"type":"note","text":"hi","incident_id":"inc-1"}}"#;
        load(
            "own-incident",
            wat_module(
                "",
                &format!("(data (i32.const 500) \"{}\")", own.replace('"', "\\\"")),
                &format!("(i64.or (i64.shl (i64.const 500) (i64.const 32)) (i64.const {}))", own.len()),
            ),
            none(),
            limits(),
        );
        host
    })
}

fn run(name: &str) -> Result<signalcraft_core::remediation::RemediationOutcome, PluginError> {
    host().invoke(&request(name, serde_json::Value::Null))
}

/// After a hostile run, the well-behaved plugin still works.
fn assert_good_still_works() {
    let out = run("good").expect("good plugin after a hostile one");
    assert_eq!(out.status, RemediationStatus::Success);
    assert_eq!(out.message, "ok");
}

#[test]
fn good_plugin_reports_usage() {
    let out = run("good").unwrap();
    assert_eq!(out.status, RemediationStatus::Success);
    assert!(out.fuel_used > 0, "fuel used {}", out.fuel_used);
    assert_eq!(out.memory_peak, 65_536, "one page declared");
    assert!(out.duration > Duration::ZERO);
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let e = run("spin").unwrap_err();
    assert!(
        matches!(
            e,
            PluginError::OutOfFuel {
                fuel: 5_000_000,
                ..
            }
        ),
        "{e}"
    );
    assert_good_still_works();
}

#[test]
fn infinite_loop_without_fuel_times_out_by_epoch() {
    let start = Instant::now();
    let e = run("spin-unmetered").unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, PluginError::Timeout { .. }), "{e}");
    assert!(
        took >= Duration::from_millis(100),
        "stopped early: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "stopped late: {took:?}");
    assert_good_still_works();
}

#[test]
fn memory_growth_past_limit_is_stopped() {
    let e = run("hog").unwrap_err();
    match e {
        PluginError::MemoryLimit { wanted, limit, .. } => {
            assert_eq!(limit, 1 << 20);
            assert!(wanted > limit);
        }
        other => panic!("expected MemoryLimit, got {other}"),
    }
    assert_good_still_works();
}

#[test]
fn unreachable_is_a_trap() {
    let e = run("trap").unwrap_err();
    assert!(
        matches!(&e, PluginError::Trap { reason, .. } if reason.contains("unreachable")),
        "{e}"
    );
    assert_good_still_works();
}

#[test]
fn stack_overflow_is_a_trap() {
    let e = run("recurse").unwrap_err();
    assert!(
        matches!(&e, PluginError::Trap { reason, .. } if reason.contains("stack")),
        "{e}"
    );
    assert_good_still_works();
}

#[test]
fn out_of_bounds_result_pointer_is_an_abi_error() {
    let e = run("oob-result").unwrap_err();
    assert!(
        matches!(&e, PluginError::Abi { reason, .. } if reason.contains("outside linear memory")),
        "{e}"
    );
    assert_good_still_works();
}

#[test]
fn invalid_utf8_and_json_are_abi_errors() {
    let e = run("bad-utf8").unwrap_err();
    assert!(
        matches!(&e, PluginError::Abi { reason, .. } if reason.contains("UTF-8")),
        "{e}"
    );
    let e = run("bad-json").unwrap_err();
    assert!(
        matches!(&e, PluginError::Abi { reason, .. } if reason.contains("JSON")),
        "{e}"
    );
    assert_good_still_works();
}

#[test]
fn disallowed_host_is_denied_and_the_guest_sees_the_code() {
    let e = run("sneaky-http").unwrap_err();
    match &e {
        PluginError::Denied { reason, .. } => assert!(reason.contains("127.0.0.1:9"), "{reason}"),
        other => panic!("expected Denied, got {other}"),
    }
    let core: signalcraft_core::remediation::RemediationError = e.into();
    assert!(matches!(
        core,
        signalcraft_core::remediation::RemediationError::Denied(_)
    ));
    assert_good_still_works();
}

#[test]
fn kv_without_capability_is_denied() {
    let e = run("sneaky-kv").unwrap_err();
    assert!(
        matches!(&e, PluginError::Denied { reason, .. } if reason.contains("kv")),
        "{e}"
    );
}

#[test]
fn acting_on_another_incident_is_denied() {
    let e = run("other-incident").unwrap_err();
    assert!(
        matches!(&e, PluginError::Denied { reason, .. } if reason.contains("inc-OTHER")),
        "{e}"
    );
    let out = run("own-incident").unwrap();
    assert_eq!(out.follow_up, Some(FollowUp::Note { text: "hi".into() }));
}

#[test]
fn importing_a_missing_host_function_is_refused_at_load() {
    for (module, name) in [
        ("signalcraft:host/v1", "exec"),
        ("wasi_snapshot_preview1", "fd_write"),
    ] {
        let wasm = wat_module(
            &format!("(import \"{module}\" \"{name}\" (func))"),
            "",
            &ok_result(),
        );
        let e = host()
            .load_manifest(manifest_for(
                "bad-import",
                &wasm,
                Capabilities::default(),
                limits(),
            ))
            .unwrap_err();
        assert!(
            matches!(&e, PluginError::UnknownImport { module: m, name: n, .. } if m == module && n == name),
            "{e}"
        );
    }
    assert!(host().plugin("bad-import").is_none());
    assert_good_still_works();
}

#[test]
fn hash_mismatch_is_refused() {
    let wasm = wat_module("", "", &ok_result());
    let mut m = manifest_for("tampered", &wasm, Capabilities::default(), limits());
    m.sha256 = "ab".repeat(32);
    let e = host().load_manifest(m).unwrap_err();
    assert!(matches!(e, PluginError::HashMismatch { .. }), "{e}");
    assert!(host().plugin("tampered").is_none());
}

#[test]
fn missing_exports_and_wrong_abi_version_are_refused() {
    let wasm = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    let e = host()
        .load_manifest(manifest_for(
            "empty",
            &wasm,
            Capabilities::default(),
            limits(),
        ))
        .unwrap_err();
    assert!(
        matches!(&e, PluginError::Abi { reason, .. } if reason.contains("alloc")),
        "{e}"
    );

    let wasm = wat_module(
        "",
        r#"(func (export "signalcraft_abi_version") (result i32) (i32.const 2))"#,
        &ok_result(),
    );
    let e = host()
        .load_manifest(manifest_for("v2", &wasm, Capabilities::default(), limits()))
        .unwrap_err();
    assert!(
        matches!(&e, PluginError::Abi { reason, .. } if reason.contains("version 2")),
        "{e}"
    );

    let wasm = wat_module(
        "",
        r#"(func (export "signalcraft_abi_version") (result i32) (i32.const 1))"#,
        &ok_result(),
    );
    host()
        .load_manifest(manifest_for("v1", &wasm, Capabilities::default(), limits()))
        .unwrap();
}

#[test]
fn initial_memory_above_limit_is_a_memory_limit_error() {
    let wasm = wat::parse_str(format!(
        r#"(module (memory (export "memory") 32)
             (func (export "alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "remediate") (param i32 i32) (result i64) {}))"#,
        ok_result()
    ))
    .unwrap();
    host()
        .load_manifest(manifest_for(
            "fat",
            &wasm,
            Capabilities::default(),
            limits(),
        ))
        .unwrap();
    let e = run("fat").unwrap_err();
    assert!(matches!(e, PluginError::MemoryLimit { .. }), "{e}");
    assert_good_still_works();
}

#[test]
fn unknown_plugin_and_invalid_params_are_typed() {
    assert!(matches!(
        run("nope").unwrap_err(),
        PluginError::UnknownPlugin(_)
    ));
    let e = host()
        .invoke(&request("good", serde_json::json!({"surprise": 1})))
        .unwrap_err();
    assert!(matches!(e, PluginError::InvalidParams { .. }), "{e}");
}

#[test]
fn a_running_plugin_can_be_cancelled_from_another_thread() {
    let wasm = wat_module("", "", "(loop $l (br $l)) (unreachable)");
    host()
        .load_manifest(manifest_for(
            "spin-long",
            &wasm,
            Capabilities::default(),
            Limits {
                fuel: 0,
                timeout_ms: 30_000,
                ..limits()
            },
        ))
        .unwrap();
    let cancel = signalcraft_plugins::CancelHandle::new();
    let c2 = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        c2.cancel();
    });
    let start = Instant::now();
    let e = host()
        .invoke_cancellable(&request("spin-long", serde_json::Value::Null), &cancel)
        .unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(e, PluginError::Cancelled { .. }), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_good_still_works();
}

#[test]
fn initialize_runs_first_and_bad_alloc_pointers_are_abi_errors() {
    // remediate traps unless _initialize ran before it.
    let wasm = wat_module(
        "",
        r#"(global $ready (mut i32) (i32.const 0))
           (func (export "_initialize") (global.set $ready (i32.const 1)))"#,
        &format!(
            "(if (i32.eqz (global.get $ready)) (then (unreachable))) {}",
            ok_result()
        ),
    );
    host()
        .load_manifest(manifest_for(
            "reactor",
            &wasm,
            Capabilities::default(),
            limits(),
        ))
        .unwrap();
    assert_eq!(run("reactor").unwrap().status, RemediationStatus::Success);

    for (name, ptr) in [("alloc-oob", "0xffffff00"), ("alloc-null", "0")] {
        let wasm = wat::parse_str(format!(
            r#"(module (memory (export "memory") 1)
                 (func (export "alloc") (param i32) (result i32) (i32.const {ptr}))
                 (func (export "remediate") (param i32 i32) (result i64) (i64.const 0)))"#
        ))
        .unwrap();
        host()
            .load_manifest(manifest_for(name, &wasm, Capabilities::default(), limits()))
            .unwrap();
        let e = run(name).unwrap_err();
        assert!(
            matches!(&e, PluginError::Abi { reason, .. } if reason.contains("alloc")),
            "{e}"
        );
    }
    assert_good_still_works();
}
