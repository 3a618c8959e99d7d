//! On-call benches: who is on call at a random instant, and rendering one year of
//! final shifts, for a Europe/Berlin schedule with 3 layers (weekly primary, a daily
//! business-hours layer restricted to 09:00–17:00, a weekend layer restricted to
//! Saturday 10:00 → Sunday 18:00) and 200 overrides spread over 2026.
//!
//! Run: `cargo bench -p signalcraft-benches --bench oncall`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use signalcraft_core::oncall::{
    CompiledSchedule, Override, Restriction, Rotation, Schedule, ScheduleIndex, ScheduleLayer,
    ShiftLength, Weekday,
};

/// xorshift64*: deterministic instants without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const YEAR_START: &str = "2026-01-01T00:00:00Z";
const YEAR_END: &str = "2027-01-01T00:00:00Z";

fn schedule() -> CompiledSchedule {
    let people = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    let from: Timestamp = YEAR_START.parse().unwrap();
    let year_secs = 365 * 86_400u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let overrides = (0..200)
        .map(|i| {
            let start = from + SignedDuration::from_secs((rng.next() % year_secs) as i64);
            let len = 4 * 3600 + (rng.next() % (8 * 3600)) as i64;
            Override {
                id: Some(format!("o{i}")),
                user: format!("cover{}", i % 7),
                start,
                end: start + SignedDuration::from_secs(len),
            }
        })
        .collect();
    let s = Schedule {
        id: "bench".into(),
        name: "Bench".into(),
        time_zone: "Europe/Berlin".into(),
        layers: vec![
            ScheduleLayer {
                name: "primary".into(),
                rotation: Rotation {
                    participants: people("p", 5),
                    shift_length: ShiftLength::Weeks(1),
                    start: "2025-12-29".parse().unwrap(),
                    handoff_time: "09:00".into(),
                },
                restrictions: vec![],
            },
            ScheduleLayer {
                name: "business hours".into(),
                rotation: Rotation {
                    participants: people("b", 4),
                    shift_length: ShiftLength::Days(1),
                    start: "2025-12-29".parse().unwrap(),
                    handoff_time: "09:00".into(),
                },
                restrictions: vec![Restriction::TimeOfDay {
                    start: "09:00".into(),
                    end: "17:00".into(),
                }],
            },
            ScheduleLayer {
                name: "weekend".into(),
                rotation: Rotation {
                    participants: people("w", 3),
                    shift_length: ShiftLength::Weeks(1),
                    start: "2025-12-29".parse().unwrap(),
                    handoff_time: "00:00".into(),
                },
                restrictions: vec![Restriction::Weekly {
                    start_day: Weekday::Saturday,
                    start: "10:00".into(),
                    end_day: Weekday::Sunday,
                    end: "18:00".into(),
                }],
            },
        ],
        overrides,
        handoff_notifications: Default::default(),
    };
    CompiledSchedule::new(s).unwrap()
}

fn instants(n: usize) -> Vec<Timestamp> {
    let from: Timestamp = YEAR_START.parse().unwrap();
    let mut rng = Rng(42);
    (0..n)
        .map(|_| {
            from + SignedDuration::from_nanos((rng.next() % (365 * 86_400_000_000_000)) as i64)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let s = schedule();
    let (from, to): (Timestamp, Timestamp) =
        (YEAR_START.parse().unwrap(), YEAR_END.parse().unwrap());
    let ts = instants(4096);

    let mut g = c.benchmark_group("oncall/who_is_on_call");
    g.throughput(Throughput::Elements(1));
    g.bench_function("direct", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(s.who_is_on_call(black_box(ts[i])).map(|o| o.user.len()))
        })
    });
    let idx = ScheduleIndex::build(&s, from, to);
    g.bench_function("index", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(idx.who_is_on_call(black_box(ts[i])).map(|o| o.user.len()))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("oncall/render");
    g.bench_function("one_year", |b| {
        b.iter(|| black_box(s.render(from, to).len()))
    });
    g.bench_function("index_build_one_year", |b| {
        b.iter(|| black_box(ScheduleIndex::build(&s, from, to).shifts().len()))
    });
    g.finish();
    eprintln!("one year renders {} final shifts", s.render(from, to).len());
}

criterion_group!(benches, bench);
criterion_main!(benches);
