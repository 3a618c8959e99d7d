//! WASM remediation plugin host: invocation overhead and module load.
//!
//! `cargo bench -p signalcraft-benches --features plugins --bench plugins`
//!
//! * `invoke/raw_1k`: fresh `Store` from the cached `InstancePre` (pooling allocator,
//!   fuel, epoch deadline, memory limiter), `alloc`, copy 1 KiB in, `remediate`,
//!   copy 1 KiB out. The trivial plugin is hand-written WAT.
//! * `invoke/full_1k`: the same through `PluginHost::invoke`: parameter validation,
//!   input JSON serialisation (~1 KiB), output JSON parsing (~1 KiB).
//! * `load/cached`: `PluginHost::load` of a manifest whose module is in the
//!   precompiled cache (read + SHA-256 of the module, read + SHA-256 of the cache
//!   file, `Module::deserialize`, export checks, `instantiate_pre`).
//! * `load/compile`: the same without a cache (cranelift compile), for comparison.
//!
//! After criterion, a single-threaded loop times 20,000 individual invocations and
//! prints p50/p90/p99 and invocations per second.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use signalcraft_core::clock::SystemClock;
use signalcraft_core::remediation::RemediationRequest;
use signalcraft_plugins::manifest::sha256_hex;
use signalcraft_plugins::{HostConfig, PluginHost};

/// A ~1 KiB ABI v1 output document.
fn output_doc() -> String {
    let head = r#"{"status":"success","message":""#;
    let tail = r#""}"#;
    let pad = "x".repeat(1024 - head.len() - tail.len());
    format!("{head}{pad}{tail}")
}

/// The trivial plugin: bump `alloc`, and `remediate` returns the 1 KiB document.
fn trivial_wat() -> Vec<u8> {
    let doc = output_doc();
    let text = format!(
        r#"(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 4096))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $top))
    (global.set $top (i32.add (global.get $top) (local.get $n)))
    (local.get $p))
  (func (export "dealloc") (param i32 i32))
  (data (i32.const 16) "{data}")
  (func (export "remediate") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {len}))))"#,
        data = doc.replace('"', "\\\""),
        len = doc.len()
    );
    wat::parse_str(text).expect("bench WAT")
}

struct Fixture {
    _dir: tempfile_dir::Dir,
    manifest: PathBuf,
    cache: PathBuf,
}

/// Minimal temp dir (the benches crate has tempfile only as a dev-dependency of the
/// store bench; this keeps the plugins bench self-contained).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir()
                .join(format!("signalcraft-plugin-bench-{}", std::process::id()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn fixture() -> Fixture {
    let dir = tempfile_dir::Dir::new();
    let wasm = trivial_wat();
    std::fs::write(dir.path().join("trivial.wasm"), &wasm).expect("write wasm");
    let manifest = dir.path().join("plugin.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"name = "trivial"
version = "1.0.0"
module = "trivial.wasm"
sha256 = "{}"
[limits]
fuel = 10_000_000
memory_bytes = 1_048_576
timeout_ms = 1000
[params.service]
type = "string"
"#,
            sha256_hex(&wasm)
        ),
    )
    .expect("write manifest");
    let cache = dir.path().join("cache");
    Fixture {
        _dir: dir,
        manifest,
        cache,
    }
}

fn host(cache: Option<&Path>) -> PluginHost {
    PluginHost::new(
        HostConfig {
            cache_dir: cache.map(Path::to_path_buf),
            ..HostConfig::default()
        },
        Arc::new(SystemClock),
    )
    .expect("host")
}

/// A request whose ABI input document is about 1 KiB.
fn request_1k() -> RemediationRequest {
    let mut req = RemediationRequest {
        plugin: "trivial".into(),
        incident_id: "inc-0000000042".into(),
        incident: serde_json::json!({"id": "inc-0000000042", "title": "", "severity": "critical"}),
        alerts: vec![serde_json::json!({"labels": {"alertname": "ApiDown", "service": "api"}})],
        service: Some(serde_json::json!({"name": "api"})),
        runbooks: vec!["https://runbooks.example/api".into()],
        params: serde_json::json!({"service": "api"}),
        dry_run: false,
    };
    let base = serde_json::to_vec(&req).expect("json").len();
    req.incident["title"] =
        serde_json::Value::String("t".repeat(1024usize.saturating_sub(base + 16)));
    req
}

fn bench_invoke(c: &mut Criterion) {
    let fx = fixture();
    let host = host(None);
    host.load(&fx.manifest).expect("load");
    let input = vec![b'i'; 1024];
    let req = request_1k();
    assert_eq!(
        host.call_raw("trivial", &input).expect("raw").output.len(),
        1024
    );
    host.invoke(&req).expect("invoke");

    let mut g = c.benchmark_group("invoke");
    g.bench_function("raw_1k", |b| {
        b.iter(|| black_box(host.call_raw("trivial", black_box(&input)).expect("raw")))
    });
    g.bench_function("full_1k", |b| {
        b.iter(|| black_box(host.invoke(black_box(&req)).expect("invoke")))
    });
    g.finish();
}

fn bench_load(c: &mut Criterion) {
    let fx = fixture();
    let cached = host(Some(&fx.cache));
    cached.load(&fx.manifest).expect("warm the cache");
    let uncached = host(None);
    let mut g = c.benchmark_group("load");
    g.bench_function("cached", |b| {
        b.iter(|| black_box(cached.load(&fx.manifest).expect("load")))
    });
    g.sample_size(20);
    g.bench_function("compile", |b| {
        b.iter(|| black_box(uncached.load(&fx.manifest).expect("load")))
    });
    g.finish();
}

/// Per-invocation latency distribution and single-thread throughput.
fn latency_report() {
    let fx = fixture();
    let host = host(None);
    host.load(&fx.manifest).expect("load");
    let input = vec![b'i'; 1024];
    let req = request_1k();
    for (name, full) in [("raw_1k", false), ("full_1k", true)] {
        for _ in 0..2_000 {
            if full {
                host.invoke(&req).expect("invoke");
            } else {
                host.call_raw("trivial", &input).expect("raw");
            }
        }
        let n = 20_000;
        let mut samples = Vec::with_capacity(n);
        let start = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            if full {
                black_box(host.invoke(&req).expect("invoke"));
            } else {
                black_box(host.call_raw("trivial", &input).expect("raw"));
            }
            samples.push(t.elapsed());
        }
        let total = start.elapsed();
        samples.sort();
        let pct = |p: f64| samples[((n as f64 * p) as usize).min(n - 1)];
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "latency invoke/{name}: n={n} p50={:.1}µs p90={:.1}µs p99={:.1}µs max={:.1}µs throughput={:.0}/s (one thread)",
            us(pct(0.50)),
            us(pct(0.90)),
            us(pct(0.99)),
            us(samples[n - 1]),
            n as f64 / total.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench_invoke, bench_load);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    latency_report();
}
