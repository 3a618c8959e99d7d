//! Benchmarks live in `benches/benches/` (criterion, `cargo bench -p signalcraft-benches`)
//! and the load generator in `benches/src/bin/`. Results are recorded in BENCHMARKS.md.

pub mod probe;
