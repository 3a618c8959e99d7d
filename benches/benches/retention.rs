//! Retention sweep cost on redb (`RetentionPolicy::for_engine`, what the server runs
//! every `[retention] interval`): a store of 20,000 closed incidents (2 alerts and 4
//! timeline records each, engine-shaped records) of which
//!
//! * none is due: the steady hourly cost (reads every incident and alert record);
//! * 1,000 more are due: the sweep removes them (incident + alerts + timeline).
//!
//! Also prints the process CPU time (user + sys) per sweep, less noisy than wall time
//! on a shared machine.
//!
//! Run: `cargo bench -p signalcraft-benches --bench retention`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use jiff::Timestamp;
use signalcraft_benches::probe::process_cpu;
use signalcraft_core::engine::AlertRecord;
use signalcraft_core::incident::{Incident, IncidentState, Urgency};
use signalcraft_core::model::{Event, Severity};
use signalcraft_core::store::{Store, Table, WriteBatch};
use signalcraft_core::testing::fixtures::firing_alert;
use signalcraft_store::RedbStore;
use signalcraft_store::RetentionPolicy;

const KEPT: u64 = 20_000;
const DUE: u64 = 1_000;
const DAY: i64 = 86_400;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("ts")
}

/// Writes incidents `from..from + n`, closed at `closed_at`, with their records.
fn incidents(from: u64, n: u64, closed_at: Timestamp) -> Vec<WriteBatch> {
    let mut out = Vec::new();
    let mut b = WriteBatch::new();
    for number in from..from + n {
        let mut fps = Vec::new();
        for k in 0..2 {
            let Event::Alert(a) = firing_alert(&format!("Disk{number}x{k}"), "db-1:9100") else {
                unreachable!("the fixture is an alert")
            };
            let rec = AlertRecord {
                fingerprint: a.fingerprint(),
                alert: a,
                first_seen: closed_at,
                last_seen: closed_at,
                resolved_at: Some(closed_at),
                groups: Vec::new(),
                payload_elided: false,
            };
            fps.push(rec.fingerprint);
            b.put(Table::Alerts, rec.fingerprint.to_string(), &rec)
                .expect("encode");
        }
        let inc = Incident {
            id: Incident::id_for(number),
            number,
            title: format!("Disk{number} is firing"),
            state: IncidentState::Closed,
            severity: Severity::Critical,
            urgency: Urgency::High,
            service: Some("db".into()),
            group_key: format!("{{}}:{{alertname=\"Disk{number}\"}}"),
            route: "route".into(),
            receiver: "oncall".into(),
            group_labels: Default::default(),
            escalation_policy: None,
            assignees: vec!["ann".into()],
            roles: BTreeMap::new(),
            notes: Vec::new(),
            runbooks: Vec::new(),
            alerts: fps,
            created_at: closed_at,
            updated_at: closed_at,
            acknowledged_at: None,
            mitigated_at: None,
            resolved_at: Some(closed_at),
            closed_at: Some(closed_at),
            timeline_len: 4,
            paging_generation: 0,
            round_robin_cursor: 0,
        };
        b.put(Table::Incidents, inc.id.clone(), &inc)
            .expect("encode");
        for seq in 0..4 {
            b.put(
                Table::Timeline,
                Incident::timeline_key(&inc.id, seq),
                &serde_json::json!({"seq": seq, "at": closed_at, "kind": "state_changed",
                    "actor": {"kind": "system"}, "detail": {"from": "open", "to": "resolved"}}),
            )
            .expect("encode");
        }
        if b.len() >= 2_000 {
            out.push(std::mem::take(&mut b));
        }
    }
    if !b.is_empty() {
        out.push(b);
    }
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path().join("r.redb")).expect("open"));
    // Due ones get low numbers; the kept ones are closed recently.
    let now = t(100 * DAY);
    rt.block_on(async {
        for b in incidents(DUE + 1, KEPT, t(99 * DAY)) {
            store.commit(b).await.expect("commit");
        }
    });
    let policy = RetentionPolicy::for_engine(Duration::from_secs(30 * DAY as u64));
    let sweep = || async { policy.run(store.as_ref(), now).await.expect("sweep") };

    // CPU per sweep (process user + sys), before criterion.
    for (label, due) in [("nothing due", 0), ("1,000 due", DUE)] {
        let mut cpu = Duration::ZERO;
        let runs = 5;
        for _ in 0..runs {
            rt.block_on(async {
                for b in incidents(1, due, t(DAY)) {
                    store.commit(b).await.expect("commit");
                }
            });
            let c0 = process_cpu();
            let r = rt.block_on(sweep());
            cpu += process_cpu() - c0;
            assert_eq!(r.incidents, due, "{r:?}");
        }
        println!(
            "retention sweep, {} incidents kept, {label}: {:.1} ms CPU per sweep (mean of {runs})",
            KEPT,
            cpu.as_secs_f64() * 1e3 / f64::from(runs)
        );
    }

    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let mut g = c.benchmark_group("retention");
    g.bench_function("sweep_nothing_due_20000", |b| {
        b.iter(|| rt.block_on(sweep()));
    });
    g.bench_function("sweep_removing_1000_of_21000", |b| {
        b.iter_batched(
            || {
                rt.block_on(async {
                    for b in incidents(1, DUE, t(DAY)) {
                        store.commit(b).await.expect("commit");
                    }
                })
            },
            |()| {
                let r = rt.block_on(sweep());
                assert_eq!(r.incidents, DUE);
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
    c.final_summary();
}
