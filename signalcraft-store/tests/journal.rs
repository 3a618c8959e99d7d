//! FileJournal: durability across reopen, group commit under concurrency, torn
//! tails, corruption, the applied number, release, the directory lock, rotation, a
//! failed segment creation (ENOSPC from /dev/full), and with real child processes: a
//! child killed with SIGKILL while appending, and a child under a file size limit
//! (RLIMIT_FSIZE, SIGXFSZ ignored) whose writes fail halfway.
//!
//! The child is this same test binary re-executed with `CHILD_ENV` set; the test
//! `child_process_entry` is its entry point and does nothing in a normal run.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use signalcraft_core::journal::{Journal, JournalSeq};
use signalcraft_core::store::StoreError;
use signalcraft_store::FileJournal;
use signalcraft_store::journal::JournalOptions;

/// Segment files of `dir`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("journal-") && name.ends_with(".log")
        })
        .collect();
    files.sort();
    files
}

fn tiny(segment_bytes: u64) -> JournalOptions {
    JournalOptions {
        segment_bytes,
        ..JournalOptions::default()
    }
}

/// A record whose bytes say which one it is.
fn record(i: usize, len: usize) -> Vec<u8> {
    let mut r = format!("record-{i}:").into_bytes();
    r.resize(len.max(r.len()), (i % 251) as u8);
    r
}

async fn append_all(j: &FileJournal, records: &[Vec<u8>]) -> Vec<JournalSeq> {
    let mut seqs = Vec::new();
    for r in records {
        seqs.push(j.append(r.clone()).await.unwrap());
    }
    seqs
}

fn numbered(first: JournalSeq, records: &[Vec<u8>]) -> Vec<(JournalSeq, Vec<u8>)> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| (first + i as u64, r.clone()))
        .collect()
}

fn corrupt_message(e: StoreError) -> String {
    match e {
        StoreError::Corrupt(m) => m,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn appended_records_survive_reopen_and_replay_after_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Vec<u8>> = vec![
        b"first".to_vec(),
        Vec::new(),
        record(2, 30_000),
        record(3, 300),
    ];
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        assert_eq!(j.last_seq(), 0);
        assert_eq!(append_all(&j, &records).await, vec![1, 2, 3, 4]);
        assert_eq!(j.last_seq(), 4);
        // Replay on the open journal reads what is durable.
        assert_eq!(j.replay(0).await.unwrap(), numbered(1, &records));
    }
    let j = FileJournal::open(dir.path(), 0).unwrap();
    assert_eq!(j.last_seq(), 4);
    assert_eq!(j.replay(0).await.unwrap(), numbered(1, &records));
    assert_eq!(j.replay(2).await.unwrap(), numbered(3, &records[2..]));
    assert!(j.replay(4).await.unwrap().is_empty());
    assert_eq!(j.append(b"next".to_vec()).await.unwrap(), 5);
    assert_eq!(segments(dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_syncs_and_get_contiguous_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(FileJournal::open(dir.path(), 0).unwrap());
    let (tasks, per) = (64usize, 8usize);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let j = j.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..per {
                let r = record(t * per + i, 200);
                mine.push((j.append(r.clone()).await.unwrap(), r));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort();
    let n = (tasks * per) as u64;
    let seqs: Vec<JournalSeq> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    // Replay holds each record under the number its append returned, in order.
    assert_eq!(j.replay(0).await.unwrap(), all);
    let stats = j.stats();
    assert_eq!(stats.appends, n);
    assert_eq!(stats.failed_appends, 0);
    assert!(
        stats.syncs < stats.appends,
        "group commit: {} syncs for {} appends",
        stats.syncs,
        stats.appends
    );
    assert_eq!(stats.bytes, n * (16 + 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_then_callbacks_run_in_order_even_when_the_caller_went_away() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(FileJournal::open(dir.path(), 0).unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for t in 0..8usize {
        let (j, seen) = (j.clone(), seen.clone());
        handles.push(tokio::spawn(async move {
            for i in 0..10 {
                let seen = seen.clone();
                j.append_then(
                    record(t * 10 + i, 50),
                    Box::new(move |s| seen.lock().push(s)),
                )
                .await
                .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(*seen.lock(), (1..=80).collect::<Vec<_>>());

    // A caller dropped once its record is handed over: the callback still runs.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let fut = j.append_then(
        b"orphan".to_vec(),
        Box::new(move |s| {
            let _ = tx.send(s);
        }),
    );
    tokio::select! {
        biased;
        // Not expected (a sync takes longer than one poll), but harmless.
        _ = fut => {}
        () = std::future::ready(()) => {}
    }
    assert_eq!(rx.await.unwrap(), 81);
    assert_eq!(j.replay(80).await.unwrap(), vec![(81, b"orphan".to_vec())]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_open() {
    let records: Vec<Vec<u8>> = (0..3).map(|i| record(i, 1000)).collect();

    // Garbage appended after the last record (a frame header that runs past the end).
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        append_all(&j, &records).await;
    }
    let seg = segments(dir.path()).remove(0);
    let good_len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[0xAB; 40])
        .unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        assert_eq!(j.stats().torn_bytes_dropped, 40);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
        assert_eq!(j.replay(0).await.unwrap(), numbered(1, &records));
        assert_eq!(j.append(b"after".to_vec()).await.unwrap(), 4);
    }
    let j = FileJournal::open(dir.path(), 0).unwrap();
    assert_eq!(j.replay(3).await.unwrap(), vec![(4, b"after".to_vec())]);
    drop(j);

    // The last record cut in half: it is dropped and its number handed out again
    // (it was never acknowledged by a completed sync).
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        append_all(&j, &records).await;
    }
    let seg = segments(dir.path()).remove(0);
    let len = std::fs::metadata(&seg).unwrap().len();
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    file.set_len(len - 500).unwrap();
    drop(file);
    let j = FileJournal::open(dir.path(), 0).unwrap();
    assert_eq!(j.last_seq(), 2);
    assert_eq!(j.replay(0).await.unwrap(), numbered(1, &records[..2]));
    assert_eq!(j.append(b"again".to_vec()).await.unwrap(), 3);
    assert_eq!(j.replay(2).await.unwrap(), vec![(3, b"again".to_vec())]);
    drop(j);

    // Zeros after the last record (a file extended but never written).
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        append_all(&j, &records).await;
    }
    let seg = segments(dir.path()).remove(0);
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    file.set_len(len + 8192).unwrap();
    drop(file);
    let j = FileJournal::open(dir.path(), 0).unwrap();
    assert_eq!(j.stats().torn_bytes_dropped, 8192);
    assert_eq!(j.replay(0).await.unwrap(), numbered(1, &records));
    drop(j);

    // The last record complete in length but with a bad checksum.
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        append_all(&j, &records).await;
    }
    let seg = segments(dir.path()).remove(0);
    flip_byte(&seg, len - 1);
    let j = FileJournal::open(dir.path(), 0).unwrap();
    assert_eq!(j.replay(0).await.unwrap(), numbered(1, &records[..2]));
}

fn flip_byte(path: &Path, offset: u64) {
    let mut data = std::fs::read(path).unwrap();
    data[offset as usize] ^= 0x5A;
    std::fs::write(path, data).unwrap();
}

#[tokio::test]
async fn every_cut_of_the_last_segment_opens_with_the_whole_records_before_it() {
    let records: Vec<Vec<u8>> = (0..4).map(|i| record(i, 20)).collect();
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        append_all(&j, &records).await;
    }
    let seg = segments(dir.path()).remove(0);
    let full = std::fs::read(&seg).unwrap();
    assert_eq!(full.len(), 16 + 4 * 36);
    for cut in 0..=full.len() {
        std::fs::write(&seg, &full[..cut]).unwrap();
        let j = FileJournal::open(dir.path(), 0).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let whole = cut.saturating_sub(16) / 36;
        assert_eq!(
            j.replay(0).await.unwrap(),
            numbered(1, &records[..whole]),
            "cut at {cut}"
        );
        assert_eq!(j.last_seq(), whole as u64);
    }
}

#[tokio::test]
async fn every_damaged_byte_is_corrupt_unless_it_is_in_the_last_record() {
    let records: Vec<Vec<u8>> = (0..4).map(|i| record(i, 20)).collect();
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        append_all(&j, &records).await;
    }
    let seg = segments(dir.path()).remove(0);
    let full = std::fs::read(&seg).unwrap();
    let last_record = full.len() - 36;
    for pos in 0..full.len() {
        let mut damaged = full.clone();
        damaged[pos] ^= 0x5A;
        std::fs::write(&seg, &damaged).unwrap();
        let opened = FileJournal::open(dir.path(), 0);
        if pos < last_record {
            // The header, or a record that good records follow: never dropped silently.
            let msg = corrupt_message(opened.map(|_| ()).unwrap_err());
            assert!(msg.contains("byte offset"), "byte {pos}: {msg}");
        } else {
            // Indistinguishable from a torn write: the last record is dropped.
            let j = opened.unwrap_or_else(|e| panic!("byte {pos}: {e}"));
            assert_eq!(
                j.replay(0).await.unwrap(),
                numbered(1, &records[..3]),
                "byte {pos}"
            );
        }
    }
}

#[tokio::test]
async fn damage_before_the_last_record_is_corrupt_naming_file_and_offset() {
    let records: Vec<Vec<u8>> = (0..5).map(|i| record(i, 100)).collect();

    // A flipped payload byte in record 2 of 5.
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        append_all(&j, &records).await;
    }
    let seg = segments(dir.path()).remove(0);
    // Header 16, each record 16 + 100: record 2 starts at 16 + 116.
    flip_byte(&seg, 16 + 116 + 16 + 50);
    let msg = corrupt_message(FileJournal::open(dir.path(), 0).unwrap_err());
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(name), "{msg}");
    assert!(msg.contains("byte offset 132"), "{msg}");
    assert!(msg.contains("checksum"), "{msg}");
    assert!(
        msg.contains("followed by good record 3 at byte offset 248"),
        "{msg}"
    );
    // The file is left as it was: nothing cut off.
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 16 + 5 * 116);

    // Damage in the last record of an earlier segment (one record per segment).
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open_with(dir.path(), 0, tiny(200)).unwrap();
        append_all(&j, &records).await;
    }
    let files = segments(dir.path());
    assert_eq!(files.len(), 5);
    let len = std::fs::metadata(&files[1]).unwrap().len();
    let file = OpenOptions::new().write(true).open(&files[1]).unwrap();
    file.set_len(len - 10).unwrap();
    drop(file);
    let msg = corrupt_message(FileJournal::open(dir.path(), 0).unwrap_err());
    assert!(
        msg.contains(files[1].file_name().unwrap().to_str().unwrap()),
        "{msg}"
    );

    // A bad header.
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        append_all(&j, &records).await;
    }
    let seg = segments(dir.path()).remove(0);
    flip_byte(&seg, 0);
    let msg = corrupt_message(FileJournal::open(dir.path(), 0).unwrap_err());
    assert!(
        msg.contains("magic") && msg.contains("byte offset 0"),
        "{msg}"
    );

    // A segment missing in the middle: numbers do not ascend by one across files.
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open_with(dir.path(), 0, tiny(200)).unwrap();
        append_all(&j, &records).await;
    }
    let files = segments(dir.path());
    std::fs::remove_file(&files[2]).unwrap();
    let msg = corrupt_message(FileJournal::open(dir.path(), 0).unwrap_err());
    assert!(
        msg.contains(files[3].file_name().unwrap().to_str().unwrap())
            && msg.contains("starts at record 4"),
        "{msg}"
    );
}

#[tokio::test]
async fn numbering_continues_after_the_applied_number_when_it_is_ahead() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        append_all(&j, &[record(0, 10), record(1, 10)]).await;
    }
    {
        let j = FileJournal::open(dir.path(), 100).unwrap();
        assert_eq!(j.last_seq(), 100);
        // Everything on disk is applied: nothing to replay.
        assert!(j.replay(0).await.unwrap().is_empty());
        assert_eq!(j.append(b"x".to_vec()).await.unwrap(), 101);
    }
    // Reopening with an applied number behind the journal replays from there.
    let j = FileJournal::open(dir.path(), 100).unwrap();
    assert_eq!(j.replay(100).await.unwrap(), vec![(101, b"x".to_vec())]);
    assert_eq!(j.append(b"y".to_vec()).await.unwrap(), 102);
    // On a fresh directory too.
    let fresh = tempfile::tempdir().unwrap();
    let j = FileJournal::open(fresh.path(), 7).unwrap();
    assert_eq!(j.append(b"z".to_vec()).await.unwrap(), 8);
}

#[tokio::test]
async fn records_missing_after_the_applied_number_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = FileJournal::open_with(dir.path(), 0, tiny(100)).unwrap();
        append_all(&j, &(0..6).map(|i| record(i, 50)).collect::<Vec<_>>()).await;
        j.release(4).await.unwrap();
    }
    // The store says it applied only through 2, but records 3 and 4 are gone.
    let msg = corrupt_message(FileJournal::open(dir.path(), 2).unwrap_err());
    assert!(msg.contains("records 3 to 4 are missing"), "{msg}");
    // With the right applied number it opens.
    let j = FileJournal::open(dir.path(), 4).unwrap();
    assert_eq!(j.replay(4).await.unwrap().len(), 2);
}

#[tokio::test]
async fn release_deletes_whole_applied_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Vec<u8>> = (0..10).map(|i| record(i, 100)).collect();
    let j = FileJournal::open_with(dir.path(), 0, tiny(300)).unwrap();
    append_all(&j, &records).await;
    // 16 header + 2 × 116 per segment: records 1-2, 3-4, …, 9-10.
    assert_eq!(segments(dir.path()).len(), 5);
    assert_eq!(j.segment_count(), 5);

    j.release(5).await.unwrap();
    // Segments 1-2 and 3-4 are gone; 5-6 still holds record 6.
    let left = segments(dir.path());
    assert_eq!(left.len(), 3);
    assert!(left[0].ends_with("journal-00000000000000000005.log"));
    assert_eq!(j.replay(5).await.unwrap(), numbered(6, &records[5..]));
    // Replay after a lower number returns what is kept.
    assert_eq!(j.replay(0).await.unwrap(), numbered(5, &records[4..]));

    j.release(u64::MAX).await.unwrap();
    assert_eq!(segments(dir.path()).len(), 1, "the active segment stays");
    assert_eq!(j.replay(0).await.unwrap(), numbered(9, &records[8..]));
    assert_eq!(j.append(b"more".to_vec()).await.unwrap(), 11);
    drop(j);

    let j = FileJournal::open_with(dir.path(), 10, tiny(300)).unwrap();
    assert_eq!(j.replay(10).await.unwrap(), vec![(11, b"more".to_vec())]);
    assert_eq!(j.append(b"later".to_vec()).await.unwrap(), 12);
}

#[tokio::test]
async fn a_large_fully_released_active_segment_is_closed_at_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    // 16 + 3 × 116 = 364 bytes: a quarter of 1,200 (300) is exceeded, the limit is not.
    let j = FileJournal::open_with(dir.path(), 0, tiny(1200)).unwrap();
    let records: Vec<Vec<u8>> = (0..3).map(|i| record(i, 100)).collect();
    append_all(&j, &records).await;
    j.release(2).await.unwrap();
    j.append(b"x".to_vec()).await.unwrap();
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "record 3 is not released yet"
    );
    j.release(4).await.unwrap();
    assert_eq!(j.append(b"y".to_vec()).await.unwrap(), 5);
    // Closed before "y": a new segment starts at 5 and the old one can go.
    let files = segments(dir.path());
    assert_eq!(files.len(), 2);
    assert!(files[1].ends_with("journal-00000000000000000005.log"));
    j.release(4).await.unwrap();
    let files = segments(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(j.replay(0).await.unwrap(), vec![(5, b"y".to_vec())]);

    // A small released segment stays (no file per group under light load).
    j.release(5).await.unwrap();
    j.append(b"z".to_vec()).await.unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
}

#[tokio::test]
async fn open_deletes_segments_the_store_has_applied() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Vec<u8>> = (0..10).map(|i| record(i, 100)).collect();
    {
        let j = FileJournal::open_with(dir.path(), 0, tiny(300)).unwrap();
        append_all(&j, &records).await;
    }
    assert_eq!(segments(dir.path()).len(), 5);
    let j = FileJournal::open_with(dir.path(), 6, tiny(300)).unwrap();
    // Files holding only records up to 6 (1-2, 3-4, 5-6) are deleted.
    assert_eq!(segments(dir.path()).len(), 2);
    assert_eq!(j.replay(6).await.unwrap(), numbered(7, &records[6..]));
}

#[tokio::test]
async fn a_second_open_of_the_directory_is_refused_while_it_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let j = FileJournal::open(dir.path(), 0).unwrap();
    j.append(b"a".to_vec()).await.unwrap();
    match FileJournal::open(dir.path(), 0).unwrap_err() {
        StoreError::Locked(m) => assert!(m.contains("journal.lock"), "{m}"),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(j);
    let j = FileJournal::open(dir.path(), 0).unwrap();
    assert_eq!(j.append(b"b".to_vec()).await.unwrap(), 2);
}

/// Another process sees the lock too: util-linux `flock -n` on the lock file fails
/// while the journal is open and succeeds once it is dropped.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_directory_lock_is_visible_to_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("journal.lock");
    let try_lock = || {
        std::process::Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
            .expect("util-linux flock")
    };
    let j = FileJournal::open(dir.path(), 0).unwrap();
    assert!(!try_lock().success(), "flock -n must fail while open");
    drop(j);
    assert!(try_lock().success(), "flock -n must succeed once closed");
}

#[tokio::test]
async fn many_segments_round_trip_and_big_records_get_their_own() {
    let dir = tempfile::tempdir().unwrap();
    // Sizes from 0 to ~9 KB; segments of 4 KiB; every 50th record is 20 KB.
    let records: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            if i % 50 == 49 {
                record(i, 20_000)
            } else {
                record(i, (i * 997) % 9000)
            }
        })
        .collect();
    {
        let j = FileJournal::open_with(dir.path(), 0, tiny(4096)).unwrap();
        assert_eq!(
            append_all(&j, &records).await,
            (1..=300).collect::<Vec<_>>()
        );
    }
    let files = segments(dir.path());
    assert!(files.len() > 100, "{} segments", files.len());
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        // Over the limit only when the segment holds a single record.
        if len > 4096 {
            let data = std::fs::read(f).unwrap();
            let first_len = u32::from_le_bytes(data[16..20].try_into().unwrap()) as u64;
            assert_eq!(len, 16 + 16 + first_len, "{}", f.display());
        }
    }
    let j = FileJournal::open_with(dir.path(), 0, tiny(4096)).unwrap();
    assert_eq!(j.replay(0).await.unwrap(), numbered(1, &records));
    assert_eq!(j.replay(150).await.unwrap(), numbered(151, &records[150..]));
}

/// A segment that cannot be created (its name is a symlink to /dev/full, so writing
/// its header fails with ENOSPC): the append gets an I/O error, nothing is
/// acknowledged, and the next append succeeds with the number the failed one had.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_disk_at_rotation_fails_the_append_and_later_appends_recover() {
    let dir = tempfile::tempdir().unwrap();
    let j = FileJournal::open_with(dir.path(), 0, tiny(100)).unwrap();
    assert_eq!(j.append(record(0, 60)).await.unwrap(), 1);
    std::os::unix::fs::symlink(
        "/dev/full",
        dir.path().join("journal-00000000000000000002.log"),
    )
    .unwrap();
    match j.append(record(1, 60)).await.unwrap_err() {
        StoreError::Io(m) => assert!(m.contains("disk full"), "{m}"),
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(j.last_seq(), 1);
    assert_eq!(j.stats().failed_appends, 1);
    assert_eq!(j.append(record(2, 60)).await.unwrap(), 2);
    assert_eq!(
        j.replay(0).await.unwrap(),
        vec![(1, record(0, 60)), (2, record(2, 60))]
    );
    drop(j);
    let j = FileJournal::open_with(dir.path(), 0, tiny(100)).unwrap();
    assert_eq!(
        j.replay(0).await.unwrap(),
        vec![(1, record(0, 60)), (2, record(2, 60))]
    );
}

// ---------------------------------------------------------------- child processes

const CHILD_ENV: &str = "SIGNALCRAFT_JOURNAL_TEST_CHILD";
const DIR_ENV: &str = "SIGNALCRAFT_JOURNAL_TEST_DIR";

/// The payload of the record tagged `tag` (what the parent expects back).
fn tagged(tag: u64, len: usize) -> Vec<u8> {
    record(tag as usize, len)
}

/// Entry point of the child process (no-op unless `CHILD_ENV` is set).
#[test]
fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    // The harness printed "test child_process_entry ... " without a newline.
    println!();
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("dir env"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        match mode.as_str() {
            "append" => child_append(&dir).await,
            "fill" => child_fill(&dir).await,
            other => panic!("unknown child mode {other}"),
        }
    });
    std::process::exit(0);
}

/// Eight appenders append 2 KB records forever, printing `ACK <seq> <tag>`.
async fn child_append(dir: &Path) {
    let j = Arc::new(FileJournal::open(dir, 0).expect("child open"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let tags = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (j, out, tags) = (j.clone(), out.clone(), tags.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let tag = tags.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let seq = j.append(tagged(tag, 2000)).await.expect("append");
                let mut out = out.lock();
                let _ = writeln!(out, "ACK {seq} {tag}");
                let _ = out.flush();
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Appends 30 KB records until one fails, then a 10-byte one; prints
/// `ACK <seq> <tag> <len>`, `ERR <error>` and `DONE`.
async fn child_fill(dir: &Path) {
    let j = FileJournal::open(dir, 0).expect("child open");
    for tag in 0..10_000u64 {
        match j.append(tagged(tag, 30_000)).await {
            Ok(seq) => println!("ACK {seq} {tag} 30000"),
            Err(e) => {
                println!("ERR {e:?}");
                // The segment was cut back: a small record still fits under the limit.
                match j.append(tagged(tag + 1, 10)).await {
                    Ok(seq) => println!("ACK {seq} {} 10", tag + 1),
                    Err(e) => println!("ERR2 {e:?}"),
                }
                println!("STATS {:?}", j.stats());
                println!("DONE");
                return;
            }
        }
    }
    println!("NOFAIL");
}

fn child(mode: &str, dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().expect("exe"));
    c.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, mode)
    .env(DIR_ENV, dir);
    c
}

/// `(seq, tag, len)` of every complete `ACK` line.
fn acks(stdout: &str) -> Vec<(JournalSeq, u64, usize)> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("ACK ")?.split(' ');
            let seq = f.next()?.parse().ok()?;
            let tag = f.next()?.parse().ok()?;
            let len = f.next().map_or(Some(2000), |v| v.parse().ok())?;
            Some((seq, tag, len))
        })
        .collect()
}

#[test]
fn a_killed_appender_loses_nothing_it_acknowledged() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut last = 0;
    for round in 0..3 {
        let mut c = child("append", dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let mut acked = Vec::new();
        // Kill it mid-stream, after a number of acknowledgements that varies by round.
        while acked.len() < 150 + round * 70 {
            let line = lines.next().expect("child output").unwrap();
            acked.extend(acks(&line));
        }
        c.kill().unwrap();
        c.wait().unwrap();
        // Complete lines written before the kill are acknowledgements too.
        for line in lines {
            match line {
                Ok(l) if !l.is_empty() => acked.extend(acks(&l)),
                _ => break,
            }
        }
        rt.block_on(async {
            let j = FileJournal::open(dir.path(), 0).unwrap();
            let replayed: std::collections::BTreeMap<JournalSeq, Vec<u8>> =
                j.replay(last).await.unwrap().into_iter().collect();
            for (seq, tag, len) in &acked {
                assert_eq!(
                    replayed.get(seq),
                    Some(&tagged(*tag, *len)),
                    "round {round}: acknowledged record {seq} (tag {tag}) survived"
                );
            }
            // Numbers continue where the previous round's records end.
            assert_eq!(replayed.keys().next(), Some(&(last + 1)), "round {round}");
            last = j.last_seq();
            assert!(last >= acked.iter().map(|a| a.0).max().unwrap());
        });
    }
}

#[test]
fn a_file_size_limit_fails_appends_cleanly_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // 4 MiB (bash counts 1024-byte blocks) or 2 MiB (dash, 512): either cuts a write.
    let script = r#"trap '' XFSZ; ulimit -f 4096 || exit 97; exec "$0" "$@""#;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .args(child("fill", dir.path()).get_args())
        .env(CHILD_ENV, "fill")
        .env(DIR_ENV, dir.path())
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(97),
        "this shell cannot set a file size limit"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "no panic: {stdout}");
    assert!(stdout.contains("DONE"), "the limit was hit: {stdout}");
    let err = stdout.lines().find(|l| l.starts_with("ERR ")).unwrap();
    assert!(
        err.contains("Io(") && err.contains("file size limit"),
        "a clear I/O error: {err}"
    );
    let acked = acks(&stdout);
    assert!(acked.len() > 10, "{stdout}");
    // The small record after the failure was acknowledged with the failed number.
    let (small_seq, _, small_len) = *acked.last().unwrap();
    assert_eq!(small_len, 10);
    assert_eq!(small_seq, acked.len() as u64);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let j = FileJournal::open(dir.path(), 0).unwrap();
        // Nothing torn: the failed write was cut off before the next one.
        assert_eq!(j.stats().torn_bytes_dropped, 0);
        let expected: Vec<(JournalSeq, Vec<u8>)> = acked
            .iter()
            .map(|(seq, tag, len)| (*seq, tagged(*tag, *len)))
            .collect();
        assert_eq!(j.replay(0).await.unwrap(), expected);
    });
}
