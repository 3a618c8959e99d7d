//! 10,000 sequential invocations do not grow the process's memory. Its own test
//! binary, so no other test allocates while RSS is measured.

mod common;

use std::sync::Arc;

use common::*;
use signalcraft_core::clock::ManualClock;
use signalcraft_plugins::manifest::{Capabilities, Limits};
use signalcraft_plugins::{HostConfig, PluginHost};

/// Resident set size in bytes, from /proc/self/statm (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn ten_thousand_invocations_do_not_grow_memory() {
    let clock = Arc::new(ManualClock::new("2026-11-27T03:00:00Z".parse().unwrap()));
    let host = PluginHost::new(HostConfig::default(), clock).unwrap();
    // Logs once and allocates a little per run, so host calls and guest growth are
    // part of what is measured.
    let wasm = wat_module(
        r#"(import "signalcraft:host/v1" "log" (func $log (param i32 i32 i32)))"#,
        r#"(data (i32.const 100) "tick")"#,
        &format!(
            "(call $log (i32.const 1) (i32.const 100) (i32.const 4)) (drop (memory.grow (i32.const 2))) {}",
            ok_result()
        ),
    );
    host.load_manifest(manifest_for(
        "soak",
        &wasm,
        Capabilities::default(),
        Limits::default(),
    ))
    .unwrap();
    let req = request("soak", serde_json::Value::Null);
    for _ in 0..1_000 {
        host.invoke(&req).unwrap();
    }
    let before = rss_bytes();
    let mut fuel = 0;
    for _ in 0..10_000 {
        let out = host.invoke(&req).unwrap();
        assert_eq!(out.memory_peak, 3 * 65_536);
        fuel += out.fuel_used;
    }
    let after = rss_bytes();
    assert!(fuel > 0);
    let growth = after.saturating_sub(before);
    // Generous: a leak of even 1 KiB per run would be ~10 MiB.
    assert!(
        growth < 8 << 20,
        "RSS grew by {growth} bytes over 10,000 runs ({before} → {after})"
    );
}
