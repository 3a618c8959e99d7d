//! Measurement helpers shared by the benches: percentiles of sorted latencies, the
//! load average, and the fsync cost of the disk under a directory, so every printed
//! figure carries the conditions it was measured in.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// The `p` quantile (0.0–1.0) of latencies sorted ascending; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize;
    sorted[i]
}

/// User + system CPU time of this process so far, from `/proc/self/stat` (Linux;
/// zero elsewhere), so figures survive a machine shared with other work.
pub fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // The kernel reports in USER_HZ, 100 on every Linux we run on.
    Duration::from_millis(ticks * 10)
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`; empty elsewhere).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// 200 synchronous 4 KiB writes (write + `sync_data`, what `dd oflag=dsync` does) in
/// a probe file under `dir`; returns the p50/p99 line with the load average.
pub fn disk_report(dir: &Path) -> std::io::Result<String> {
    let path = dir.join("fsync.probe");
    let mut f = std::fs::File::create(&path)?;
    let page = [0x5au8; 4096];
    let mut lat = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all(&page)?;
        f.sync_data()?;
        lat.push(t.elapsed());
    }
    lat.sort();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(format!(
        "disk: synchronous 4 KiB write (write + fdatasync) p50 {:.2} ms, p99 {:.2} ms; load average {}",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        load_average()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&v, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
