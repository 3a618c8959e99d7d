//! When every pooled instance slot is busy, a run fails fast with `Busy` and the host
//! recovers as soon as a slot frees. Its own binary: it needs a one-slot host.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use signalcraft_core::clock::ManualClock;
use signalcraft_plugins::manifest::{Capabilities, Limits};
use signalcraft_plugins::{CancelHandle, HostConfig, PluginError, PluginHost};

#[test]
fn exhausted_pool_is_busy_then_recovers() {
    let clock = Arc::new(ManualClock::new("2026-11-27T03:00:00Z".parse().unwrap()));
    let host = PluginHost::new(
        HostConfig {
            max_concurrent_runs: 1,
            ..HostConfig::default()
        },
        clock,
    )
    .unwrap();
    let limits = Limits {
        fuel: 0,
        timeout_ms: 30_000,
        ..Limits::default()
    };
    let spin = wat_module("", "", "(loop $l (br $l)) (unreachable)");
    host.load_manifest(manifest_for("spin", &spin, Capabilities::default(), limits))
        .unwrap();
    let good = wat_module("", "", &ok_result());
    host.load_manifest(manifest_for(
        "good",
        &good,
        Capabilities::default(),
        Limits::default(),
    ))
    .unwrap();

    let cancel = CancelHandle::new();
    let (h, c) = (host.clone(), cancel.clone());
    // The spinner itself may meet `Busy` if it starts while a `good` probe below holds
    // the slot; it retries until it owns the slot (then it spins until cancelled).
    let spinner = std::thread::spawn(move || {
        loop {
            match h.invoke_cancellable(&request("spin", serde_json::Value::Null), &c) {
                Err(PluginError::Busy(_)) => std::thread::sleep(Duration::from_millis(1)),
                other => return other,
            }
        }
    });
    // Poll until the spinner holds the only slot and `good` is refused.
    let start = Instant::now();
    let busy = loop {
        match host.invoke(&request("good", serde_json::Value::Null)) {
            Err(e @ PluginError::Busy(_)) => break e,
            Ok(_) if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            other => panic!("expected Busy while the slot is taken, got {other:?}"),
        }
    };
    assert!(busy.to_string().contains("capacity"), "{busy}");
    cancel.cancel();
    let e = spinner.join().unwrap().unwrap_err();
    assert!(matches!(e, PluginError::Cancelled { .. }), "{e}");
    host.invoke(&request("good", serde_json::Value::Null))
        .expect("slot is free again");
}
