//! [`FileJournal`]: the durable [`Journal`] of ingest records, as segment files in
//! one directory, with group commit.
//!
//! # Files
//! * `journal.lock`: held locked (`File::try_lock`) while a [`FileJournal`] is open,
//!   so a second open of the directory, from this or another process, fails with
//!   [`StoreError::Locked`].
//! * `journal-<first seq, 20 digits>.log`: segments, named by the sequence number of
//!   their first record (so they sort by name). Each starts with a 16-byte header
//!   (the magic `SCJOURNL`, format version 1 as u32 LE, 4 zero bytes), then records
//!   framed as `[payload len u32 LE][crc32 u32 LE][seq u64 LE][payload]`, where the
//!   CRC-32 (IEEE) covers the length bytes, the seq bytes and the payload. A segment
//!   is closed once the next record would take it over
//!   [`JournalOptions::segment_bytes`] (a larger record gets a segment of its own),
//!   or early, before the next append, once it is a quarter full and all released.
//!   `release` deletes closed segments whose records are all released; `open`
//!   deletes those the store has applied.
//!
//! # Group commit
//! One writer thread owns the active segment. It takes every append waiting (up to
//! [`JournalOptions::max_group_bytes`]), frames them into one buffer, writes it with
//! one `write_all`, calls `sync_data` once, runs the `append_then` callbacks in
//! sequence order and only then answers the callers. Appends that arrive meanwhile
//! form the next group. Before each group the writer waits briefly (at most
//! [`JournalOptions::group_wait`], only while appends keep arriving) for as many
//! appends as it answered last time, so a closed loop of appenders shares one sync
//! instead of alternating between two half groups. `append` only awaits channels, so
//! it never blocks a tokio worker on I/O.
//!
//! # Failures
//! * Open: damage in the last segment that no good record follows (a short frame, a
//!   length past the end, a checksum mismatch, zeros or stale bytes where a write
//!   never landed) is a torn tail: a write the crash interrupted, never acknowledged.
//!   It is cut off and the file synced. Anything else (damage followed by a good
//!   record, any damage in an earlier segment, a bad header, sequence numbers that do
//!   not ascend by one across files, records missing between the store's applied
//!   number and the first segment) is [`StoreError::Corrupt`] naming the file and
//!   byte offset. Damage inside the very last record cannot be told from a torn
//!   write and drops that record.
//! * Append: a failed write or sync answers every append of that group not yet synced
//!   with [`StoreError::Io`]; the segment is truncated back to its last synced length
//!   (and synced) before the next group, and their sequence numbers are handed out
//!   again (they were never acknowledged nor passed to a callback). If that truncation
//!   fails, every later append fails: nothing is acknowledged that is not durable and
//!   no half record is left before a good one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use signalcraft_core::journal::{Journal, JournalSeq, OnDurable};
use signalcraft_core::store::StoreError;
use tokio::sync::{mpsc, oneshot};

use crate::error::io_error;

/// The first bytes of every segment.
const MAGIC: &[u8; 8] = b"SCJOURNL";
/// The segment format version this build writes and reads.
const VERSION: u32 = 1;
/// Bytes of the segment header: magic, version, reserved.
const HEADER_LEN: u64 = 16;
/// Bytes of a record frame before its payload: length, CRC, seq.
const FRAME_LEN: usize = 16;
/// The lock file's name inside the journal directory.
const LOCK_FILE: &str = "journal.lock";
/// How long the gathering step waits for the next append before it writes what it
/// has (see [`gather`]).
const GATHER_IDLE_GAP: Duration = Duration::from_micros(150);

/// Tuning of a [`FileJournal`]; [`JournalOptions::default`] suits the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOptions {
    /// A segment is closed (and a new one started) once the next record would take
    /// it over this many bytes; released records are deleted a segment at a time.
    /// Default 64 MiB.
    pub segment_bytes: u64,
    /// At most about this many payload bytes are written with one sync (a group
    /// stops taking appends once it holds this many). Default 16 MiB.
    pub max_group_bytes: usize,
    /// How long the writer may wait for the appenders it just answered to come back
    /// before it writes a group (only while appends keep arriving, at most 150 µs
    /// apart); zero writes whatever is waiting at once. Default 1 ms.
    pub group_wait: Duration,
    /// How many appends may wait for the writer before `append` itself waits.
    /// Default 4096.
    pub queue: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_bytes: 64 << 20,
            max_group_bytes: 16 << 20,
            group_wait: Duration::from_millis(1),
            queue: 4096,
        }
    }
}

/// A snapshot of a journal's counters since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Records appended and durable.
    pub appends: u64,
    /// `sync_data` calls that made records durable (one per group, or two when a
    /// group spans a segment rotation). Fewer syncs than appends means group commit.
    pub syncs: u64,
    /// Bytes written for durable records (frames and payloads).
    pub bytes: u64,
    /// Appends answered with an error.
    pub failed_appends: u64,
    /// Wall time spent writing and syncing groups, in nanoseconds.
    pub write_nanos: u64,
    /// Bytes of a torn tail cut off the last segment at open.
    pub torn_bytes_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    appends: AtomicU64,
    syncs: AtomicU64,
    bytes: AtomicU64,
    failed_appends: AtomicU64,
    write_nanos: AtomicU64,
    torn_bytes_dropped: AtomicU64,
}

/// What the journal knows about one segment file.
#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    /// Sequence number of its first record (its name).
    first: JournalSeq,
    /// Sequence number of its last durable record; `first - 1` while it has none.
    last: JournalSeq,
    /// Durable length in bytes (header included): replay reads no further.
    len: u64,
}

/// State shared by the handle and the writer thread.
#[derive(Debug, Default)]
struct Shared {
    /// Every segment in order; the last one is the writer's active segment.
    segments: Mutex<Vec<Segment>>,
    /// Held for reading by `replay` and for writing by `release`, so a replay never
    /// sees a file vanish under it. The writer never takes it.
    files: RwLock<()>,
    /// The highest durable sequence number (or the applied number opened with).
    last_seq: AtomicU64,
    /// The highest `through` passed to `release`.
    released: AtomicU64,
    counters: Counters,
}

/// One append waiting for the writer.
struct Req {
    record: Vec<u8>,
    on_durable: Option<OnDurable>,
    reply: oneshot::Sender<Result<JournalSeq, StoreError>>,
}

/// The durable, file-backed [`Journal`] (see the module doc for format and
/// failure handling).
///
/// Dropping it lets the writer finish every append already handed over, then
/// joins the writer thread (so a drop may wait for a sync or two) and releases the
/// directory lock.
///
/// `append_then` callbacks run on the writer thread; one that panics stops the
/// writer, and every append after it fails with [`StoreError::Closed`] (fail-stop:
/// a consumer fed by the callbacks would otherwise miss a record).
///
/// ```no_run
/// # async fn demo() -> Result<(), signalcraft_core::store::StoreError> {
/// use signalcraft_core::journal::Journal;
/// let applied = 0; // the highest sequence number the store has applied
/// let journal = signalcraft_store::FileJournal::open("/var/lib/signalcraft/journal", applied)?;
/// for (seq, record) in journal.replay(applied).await? {
///     // apply `record`, then commit `seq` as applied with the store
/// #   let _ = (seq, record);
/// }
/// let seq = journal.append(b"one ingest request".to_vec()).await?; // durable now
/// journal.release(seq).await?; // once the store has applied it
/// # Ok(()) }
/// ```
pub struct FileJournal {
    dir: PathBuf,
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Req>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Held locked for the journal's lifetime.
    _lock: File,
}

impl std::fmt::Debug for FileJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileJournal")
            .field("dir", &self.dir)
            .field("last_seq", &self.shared.last_seq.load(Ordering::Relaxed))
            .field("segments", &self.shared.segments.lock().len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl FileJournal {
    /// Opens (creating it if needed) the journal in `dir`, with default options.
    /// `applied` is the highest sequence number the store has applied: numbering
    /// continues after the larger of it and the last record on disk. See
    /// [`FileJournal::open_with`].
    pub fn open(dir: impl AsRef<Path>, applied: JournalSeq) -> Result<FileJournal, StoreError> {
        Self::open_with(dir, applied, JournalOptions::default())
    }

    /// Opens the journal in `dir` (created if missing) with `options`.
    ///
    /// Scans every segment that may hold records after `applied` and checks each
    /// record; cuts a torn tail off the last segment; deletes segments whose records
    /// are all at or below `applied` (the store has them). Errors:
    /// [`StoreError::Locked`] when the directory is open elsewhere,
    /// [`StoreError::Corrupt`] (naming the file and byte offset) for damage that is
    /// not a torn tail or for records missing after `applied`, [`StoreError::Io`].
    pub fn open_with(
        dir: impl AsRef<Path>,
        applied: JournalSeq,
        options: JournalOptions,
    ) -> Result<FileJournal, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| file_err(&dir, "create directory", &e))?;
        let lock = lock_dir(&dir)?;
        let shared = Arc::new(Shared::default());
        let active = recover(&dir, applied, &shared)?;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let writer = WriterState {
            dir: dir.clone(),
            active,
            shared: shared.clone(),
            options,
            poisoned: None,
            buf: Vec::new(),
            #[cfg(test)]
            fault: None,
        };
        let thread = std::thread::Builder::new()
            .name("signalcraft-journal".into())
            .spawn(move || run(writer, rx))
            .map_err(|e| StoreError::Io(format!("cannot start journal writer thread: {e}")))?;
        Ok(FileJournal {
            dir,
            shared,
            tx: Some(tx),
            thread: Some(thread),
            _lock: lock,
        })
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many segment files the journal holds (the active one included).
    pub fn segment_count(&self) -> usize {
        self.shared.segments.lock().len()
    }

    /// The counters since open.
    pub fn stats(&self) -> JournalStats {
        let c = &self.shared.counters;
        JournalStats {
            appends: c.appends.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            failed_appends: c.failed_appends.load(Ordering::Relaxed),
            write_nanos: c.write_nanos.load(Ordering::Relaxed),
            torn_bytes_dropped: c.torn_bytes_dropped.load(Ordering::Relaxed),
        }
    }

    async fn submit(
        &self,
        record: Vec<u8>,
        on_durable: Option<OnDurable>,
    ) -> Result<JournalSeq, StoreError> {
        if u32::try_from(record.len()).is_err() {
            return Err(StoreError::Codec(format!(
                "journal record of {} bytes is over the 4 GiB limit",
                record.len()
            )));
        }
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Req {
            record,
            on_durable,
            reply,
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for FileJournal {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has answered every queued append.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl Journal for FileJournal {
    async fn append(&self, record: Vec<u8>) -> Result<JournalSeq, StoreError> {
        self.submit(record, None).await
    }

    async fn append_then(
        &self,
        record: Vec<u8>,
        on_durable: OnDurable,
    ) -> Result<JournalSeq, StoreError> {
        self.submit(record, Some(on_durable)).await
    }

    /// Reads the segments that hold records after `after` (up to their durable
    /// length, checking every record) on a blocking thread.
    async fn replay(&self, after: JournalSeq) -> Result<Vec<(JournalSeq, Vec<u8>)>, StoreError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || replay_files(&shared, after))
            .await
            .map_err(|e| StoreError::Io(format!("journal replay task failed: {e}")))?
    }

    /// Deletes, oldest first, every segment but the active one whose records are all
    /// at or below `through`, then syncs the directory.
    ///
    /// An active segment at least a quarter of [`JournalOptions::segment_bytes`]
    /// long whose records are all released is closed before the next append, so a
    /// later release can delete it too.
    async fn release(&self, through: JournalSeq) -> Result<(), StoreError> {
        self.shared.released.fetch_max(through, Ordering::AcqRel);
        let deletable = {
            let segments = self.shared.segments.lock();
            segments.len() > 1 && segments[0].last <= through
        };
        if !deletable {
            // The common case (called after every applied batch): no file to delete.
            return Ok(());
        }
        let shared = self.shared.clone();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || release_files(&shared, &dir, through))
            .await
            .map_err(|e| StoreError::Io(format!("journal release task failed: {e}")))?
    }

    fn last_seq(&self) -> JournalSeq {
        self.shared.last_seq.load(Ordering::Acquire)
    }
}

// ---------------------------------------------------------------------------
// Open and recovery

/// Creates and locks `dir/journal.lock`.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| file_err(&path, "open lock file", &e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(format!(
            "journal directory {} is already open (lock file {} is held)",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(file_err(&path, "lock", &e)),
    }
}

/// The writer's handle on the segment it appends to.
struct Active {
    file: File,
    path: PathBuf,
    /// Durable length: everything before it is synced records.
    len: u64,
    /// The next sequence number to hand out.
    next: JournalSeq,
}

/// Scans `dir`, repairs a torn tail, deletes applied segments and returns the
/// active segment; fills `shared.segments` and `shared.last_seq`.
fn recover(dir: &Path, applied: JournalSeq, shared: &Shared) -> Result<Active, StoreError> {
    let mut found = list_segments(dir)?;
    let mut dir_changed = false;
    // Segments followed by one starting at or below `applied + 1` hold only applied
    // records: delete them without reading them.
    let keep_from = found
        .windows(2)
        .take_while(|w| w[1].0.saturating_sub(1) <= applied)
        .count();
    for (_, path) in found.drain(..keep_from) {
        remove(path.as_path())?;
        dir_changed = true;
    }

    let mut segments: Vec<Segment> = Vec::with_capacity(found.len());
    let count = found.len();
    for (i, (first, path)) in found.into_iter().enumerate() {
        match segments.last() {
            None if first > applied.saturating_add(1) => {
                return Err(StoreError::Corrupt(format!(
                    "journal file {} starts at record {first} but the store has applied only \
                     through {applied}: records {} to {} are missing",
                    path.display(),
                    applied.saturating_add(1),
                    first - 1
                )));
            }
            Some(prev) if first != prev.last.saturating_add(1) => {
                return Err(StoreError::Corrupt(format!(
                    "journal file {} starts at record {first} but {} ends at record {}",
                    path.display(),
                    prev.path.display(),
                    prev.last
                )));
            }
            _ => {}
        }
        let is_last = i + 1 == count;
        let data = std::fs::read(&path).map_err(|e| file_err(&path, "read", &e))?;
        let walked = walk(&path, &data, first, is_last, |_, _| {})?;
        let mut len = walked.end as u64;
        if walked.torn {
            shared
                .counters
                .torn_bytes_dropped
                .fetch_add(data.len() as u64 - len, Ordering::Relaxed);
            len = cut_torn_tail(&path, len)?;
            dir_changed = true;
        }
        segments.push(Segment {
            last: first - 1 + walked.count,
            first,
            path,
            len,
        });
    }

    let disk_last = segments.last().map_or(0, |s| s.last);
    let next = disk_last.max(applied).saturating_add(1);
    let active = if next != disk_last.saturating_add(1) {
        // The store is ahead of everything on disk: all of it is applied.
        for s in segments.drain(..) {
            remove(&s.path)?;
        }
        None
    } else {
        segments.last()
    };
    let active = match active {
        Some(s) => {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&s.path)
                .map_err(|e| file_err(&s.path, "open", &e))?;
            file.seek(SeekFrom::Start(s.len))
                .map_err(|e| file_err(&s.path, "seek", &e))?;
            Active {
                file,
                path: s.path.clone(),
                len: s.len,
                next,
            }
        }
        None => {
            let (file, path) = create_segment(dir, next)?;
            segments.push(Segment {
                path: path.clone(),
                first: next,
                last: next - 1,
                len: HEADER_LEN,
            });
            dir_changed = true;
            Active {
                file,
                path,
                len: HEADER_LEN,
                next,
            }
        }
    };
    if dir_changed {
        sync_dir(dir)?;
    }
    shared.last_seq.store(next - 1, Ordering::Release);
    *shared.segments.lock() = segments;
    Ok(active)
}

/// Every `journal-<20 digits>.log` in `dir`, sorted by first sequence number.
fn list_segments(dir: &Path) -> Result<Vec<(JournalSeq, PathBuf)>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| file_err(dir, "list", &e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| file_err(dir, "list", &e))?;
        let name = entry.file_name();
        if let Some(first) = name.to_str().and_then(parse_segment_name) {
            found.push((first, entry.path()));
        }
    }
    found.sort_by_key(|(first, _)| *first);
    Ok(found)
}

/// The file name of the segment whose first record is `first`.
fn segment_name(first: JournalSeq) -> String {
    format!("journal-{first:020}.log")
}

/// The first sequence number in a segment file name, if it is one.
fn parse_segment_name(name: &str) -> Option<JournalSeq> {
    let digits = name.strip_prefix("journal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|first| *first > 0)
}

/// The 16-byte segment header.
fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Cuts the segment at `path` to `len` (rewriting the header if even it was torn)
/// and syncs it; returns the new length.
fn cut_torn_tail(path: &Path, len: u64) -> Result<u64, StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| file_err(path, "open", &e))?;
    let len = if len < HEADER_LEN {
        file.set_len(0)
            .and_then(|()| file.write_all(&header()))
            .map_err(|e| file_err(path, "rewrite torn header of", &e))?;
        HEADER_LEN
    } else {
        len
    };
    file.set_len(len)
        .and_then(|()| file.sync_data())
        .map_err(|e| file_err(path, "truncate torn tail of", &e))?;
    Ok(len)
}

/// Creates (or recreates, empty) the segment whose first record will be `first`,
/// with its header synced; the caller syncs the directory.
fn create_segment(dir: &Path, first: JournalSeq) -> Result<(File, PathBuf), StoreError> {
    let path = dir.join(segment_name(first));
    let result = (|| {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.write_all(&header())?;
        file.sync_data()?;
        Ok::<_, std::io::Error>(file)
    })();
    match result {
        Ok(file) => Ok((file, path)),
        Err(e) => {
            // Best effort: a half-made segment would only be recreated next time.
            let _ = std::fs::remove_file(&path);
            Err(file_err(&path, "create", &e))
        }
    }
}

fn remove(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(file_err(path, "delete", &e)),
    }
}

/// Makes creations and deletions in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| file_err(dir, "sync directory", &e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// An I/O error naming the operation and the file.
fn file_err(path: &Path, what: &str, e: &std::io::Error) -> StoreError {
    let base = io_error(e);
    let msg = match base {
        StoreError::Io(m) => m,
        other => other.to_string(),
    };
    StoreError::Io(format!("journal: cannot {what} {}: {msg}", path.display()))
}

/// What [`walk`] found in one segment.
#[derive(Debug)]
struct Walked {
    /// Byte offset after the last good record.
    end: usize,
    /// Good records.
    count: u64,
    /// Whether bytes after `end` are a torn tail (only when allowed).
    torn: bool,
}

/// Checks the header and every record of one segment's bytes, calling `each` with
/// every good record in order. With `tail_may_be_torn` (the last segment at open),
/// damage that no good record follows is a torn tail (a write the crash cut, or
/// zeros or stale blocks where it never landed): reported, not an error. Any other
/// damage is [`StoreError::Corrupt`] naming the file and byte offset (and the good
/// record found after it), so an acknowledged record is never silently dropped.
fn walk(
    path: &Path,
    data: &[u8],
    first: JournalSeq,
    tail_may_be_torn: bool,
    mut each: impl FnMut(JournalSeq, &[u8]),
) -> Result<Walked, StoreError> {
    let corrupt = |offset: usize, what: &str| {
        StoreError::Corrupt(format!(
            "journal file {}: {what} at byte offset {offset}",
            path.display()
        ))
    };
    let header = header();
    if data.len() < header.len() {
        // A crash right after the file was created: nothing was ever written to it.
        if tail_may_be_torn && header.starts_with(data) {
            return Ok(Walked {
                end: 0,
                count: 0,
                torn: true,
            });
        }
        return Err(corrupt(0, "short segment header"));
    }
    if &data[..8] != MAGIC {
        return Err(corrupt(0, "not a journal segment (bad magic)"));
    }
    let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if version != VERSION {
        return Err(corrupt(
            8,
            &format!("unsupported segment format version {version} (this build reads {VERSION})"),
        ));
    }
    if data[12..16] != [0; 4] {
        return Err(corrupt(12, "reserved segment header bytes are not zero"));
    }
    let mut off = header.len();
    let mut expected = first;
    let mut count = 0u64;
    while off < data.len() {
        let what = match frame_at(data, off) {
            Frame::Good { seq, payload, end } if seq == expected => {
                each(seq, payload);
                count += 1;
                expected += 1;
                off = end;
                continue;
            }
            Frame::Good { seq, .. } => {
                return Err(corrupt(
                    off,
                    &format!("record has sequence number {seq}, expected {expected}"),
                ));
            }
            Frame::Short => "incomplete record header".to_owned(),
            Frame::PastEnd { len } => format!("record length {len} runs past the end of the file"),
            Frame::BadChecksum => "record checksum mismatch".to_owned(),
        };
        let rest = data.len() - off;
        let what = format!("{what} (record {expected}, {rest} bytes to the end of the file)");
        if !tail_may_be_torn {
            return Err(corrupt(off, &what));
        }
        return match good_record_after(data, off + 1, expected) {
            None => Ok(Walked {
                end: off,
                count,
                torn: true,
            }),
            Some((at, seq)) => Err(corrupt(
                off,
                &format!("{what}, followed by good record {seq} at byte offset {at}"),
            )),
        };
    }
    Ok(Walked {
        end: off,
        count,
        torn: false,
    })
}

/// What the bytes at one offset hold.
enum Frame<'a> {
    /// A record whose checksum matches.
    Good {
        seq: JournalSeq,
        payload: &'a [u8],
        /// Offset after the record.
        end: usize,
    },
    /// Fewer bytes than a frame header.
    Short,
    /// The length field points past the end of the data.
    PastEnd { len: usize },
    /// The checksum does not match.
    BadChecksum,
}

/// Reads the record frame at `off` (`off < data.len()`).
fn frame_at(data: &[u8], off: usize) -> Frame<'_> {
    let rest = data.len() - off;
    if rest < FRAME_LEN {
        return Frame::Short;
    }
    let len_bytes: [u8; 4] = [data[off], data[off + 1], data[off + 2], data[off + 3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    let crc = u32::from_le_bytes([data[off + 4], data[off + 5], data[off + 6], data[off + 7]]);
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&data[off + 8..off + 16]);
    if len > rest - FRAME_LEN {
        return Frame::PastEnd { len };
    }
    let end = off + FRAME_LEN + len;
    let payload = &data[off + FRAME_LEN..end];
    if checksum(&len_bytes, &seq_bytes, payload) != crc {
        return Frame::BadChecksum;
    }
    Frame::Good {
        seq: u64::from_le_bytes(seq_bytes),
        payload,
        end,
    }
}

/// The first good record at or after `from` whose sequence number could follow
/// `expected` in these bytes (greater, by at most one per 16 bytes left): evidence
/// that damage before it is not a torn tail. Only the sequence number is compared
/// at most offsets, so scanning a whole segment stays cheap (this runs only when a
/// segment is damaged).
fn good_record_after(
    data: &[u8],
    from: usize,
    expected: JournalSeq,
) -> Option<(usize, JournalSeq)> {
    let limit = expected.saturating_add((data.len().saturating_sub(from) / FRAME_LEN) as u64);
    (from..data.len().saturating_sub(FRAME_LEN - 1)).find_map(|at| {
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&data[at + 8..at + 16]);
        let seq = u64::from_le_bytes(seq);
        if seq <= expected || seq > limit {
            return None;
        }
        match frame_at(data, at) {
            Frame::Good { seq, .. } => Some((at, seq)),
            _ => None,
        }
    })
}

/// CRC-32 of a record's length bytes, sequence bytes and payload.
fn checksum(len: &[u8; 4], seq: &[u8; 8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(seq);
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `buf`.
fn frame(buf: &mut Vec<u8>, seq: JournalSeq, payload: &[u8]) {
    // `submit` refused records over u32::MAX bytes.
    let len = (payload.len() as u32).to_le_bytes();
    let seq = seq.to_le_bytes();
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&checksum(&len, &seq, payload).to_le_bytes());
    buf.extend_from_slice(&seq);
    buf.extend_from_slice(payload);
}

// ---------------------------------------------------------------------------
// Replay and release

fn replay_files(
    shared: &Shared,
    after: JournalSeq,
) -> Result<Vec<(JournalSeq, Vec<u8>)>, StoreError> {
    let _files = shared.files.read();
    let segments = shared.segments.lock().clone();
    let mut out = Vec::new();
    for s in segments.iter().filter(|s| s.last > after) {
        let mut file = File::open(&s.path).map_err(|e| file_err(&s.path, "open", &e))?;
        // Only the durable length: the writer may be appending beyond it.
        let len = usize::try_from(s.len)
            .map_err(|_| StoreError::Io(format!("{} is too large", s.path.display())))?;
        let mut data = vec![0u8; len];
        file.read_exact(&mut data)
            .map_err(|e| file_err(&s.path, "read", &e))?;
        walk(&s.path, &data, s.first, false, |seq, payload| {
            if seq > after {
                out.push((seq, payload.to_vec()));
            }
        })?;
    }
    Ok(out)
}

fn release_files(shared: &Shared, dir: &Path, through: JournalSeq) -> Result<(), StoreError> {
    let _files = shared.files.write();
    let victims: Vec<PathBuf> = {
        let segments = shared.segments.lock();
        // Never the last (active) segment; only a prefix, so no gap can appear.
        let closed = segments.len().saturating_sub(1);
        segments[..closed]
            .iter()
            .take_while(|s| s.last <= through)
            .map(|s| s.path.clone())
            .collect()
    };
    if victims.is_empty() {
        return Ok(());
    }
    let mut deleted = 0;
    let mut result = Ok(());
    for path in &victims {
        if let Err(e) = remove(path) {
            result = Err(e);
            break;
        }
        deleted += 1;
    }
    shared.segments.lock().drain(..deleted);
    if deleted > 0 {
        sync_dir(dir)?;
    }
    result
}

// ---------------------------------------------------------------------------
// The writer thread

struct WriterState {
    dir: PathBuf,
    active: Active,
    shared: Arc<Shared>,
    options: JournalOptions,
    /// Set when a failed write could not be undone: every later append fails.
    poisoned: Option<String>,
    /// The group's framed records (reused between groups).
    buf: Vec<u8>,
    /// Tests: the next write stops halfway with ENOSPC.
    #[cfg(test)]
    fault: Option<()>,
}

type Replies = Vec<(
    oneshot::Sender<Result<JournalSeq, StoreError>>,
    Result<JournalSeq, StoreError>,
)>;

fn run(mut w: WriterState, mut rx: mpsc::Receiver<Req>) {
    // Appends that arrived while the previous group was written (taken before its
    // callers were answered), and how many callers that group answered.
    let mut carried: Vec<Req> = Vec::new();
    let mut answered = 0usize;
    loop {
        let mut group = std::mem::take(&mut carried);
        // Callers just answered usually come straight back: expect them too.
        let expected = group.len() + answered;
        if group.is_empty() {
            match rx.blocking_recv() {
                Some(r) => group.push(r),
                None => return,
            }
        }
        gather(&mut rx, &mut group, expected, &w.options);
        let replies = w.commit(group);
        let mut bytes = 0;
        while bytes < w.options.max_group_bytes {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.record.len();
                    carried.push(r);
                }
                Err(_) => break,
            }
        }
        answered = replies.len();
        for (tx, result) in replies {
            let _ = tx.send(result);
        }
    }
}

/// Adds waiting appends to `group`: everything queued, then, while the group is
/// smaller than `expected`, whatever keeps arriving (no gap over
/// [`GATHER_IDLE_GAP`], at most `group_wait` in all), up to `max_group_bytes`.
fn gather(
    rx: &mut mpsc::Receiver<Req>,
    group: &mut Vec<Req>,
    expected: usize,
    options: &JournalOptions,
) {
    let mut bytes: usize = group.iter().map(|r| r.record.len()).sum();
    let mut started: Option<(Instant, Instant)> = None;
    while bytes < options.max_group_bytes {
        match rx.try_recv() {
            Ok(r) => {
                bytes += r.record.len();
                group.push(r);
                if let Some((_, last)) = started.as_mut() {
                    *last = Instant::now();
                }
                continue;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => return,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if group.len() >= expected || options.group_wait.is_zero() {
            return;
        }
        let now = Instant::now();
        let (first, last) = *started.get_or_insert((now, now));
        if now - first >= options.group_wait || now - last >= GATHER_IDLE_GAP {
            return;
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// Records framed in the buffer but not yet synced.
type Pending = Vec<(
    Option<OnDurable>,
    oneshot::Sender<Result<JournalSeq, StoreError>>,
)>;

impl WriterState {
    /// Writes a group (rotating segments as needed) and returns each caller's
    /// reply; callbacks of durable records have run, in order.
    fn commit(&mut self, group: Vec<Req>) -> Replies {
        let mut replies: Replies = Vec::with_capacity(group.len());
        if let Some(why) = &self.poisoned {
            let c = &self.shared.counters;
            c.failed_appends
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            for r in group {
                replies.push((r.reply, Err(StoreError::Io(why.clone()))));
            }
            return replies;
        }
        let started = Instant::now();
        let mut pending: Pending = Vec::new();
        self.buf.clear();
        let mut failure: Option<StoreError> = None;
        if self.active_is_released() {
            // Best effort: if the new segment cannot be made, keep the active one.
            let _ = self.rotate();
        }
        for req in group {
            if let Some(e) = &failure {
                replies.push((req.reply, Err(same_error(e))));
                continue;
            }
            let size = (FRAME_LEN + req.record.len()) as u64;
            let filled = self.active.len + self.buf.len() as u64;
            if filled > HEADER_LEN && filled + size > self.options.segment_bytes {
                if let Err(e) = self.flush(&mut pending, &mut replies) {
                    failure = Some(e);
                } else if let Err(e) = self.rotate() {
                    failure = Some(e);
                }
                if let Some(e) = &failure {
                    replies.push((req.reply, Err(same_error(e))));
                    continue;
                }
            }
            let seq = self.active.next + pending.len() as u64;
            frame(&mut self.buf, seq, &req.record);
            pending.push((req.on_durable, req.reply));
        }
        if failure.is_none() {
            // The error is already in the replies of the records it concerns.
            let _ = self.flush(&mut pending, &mut replies);
        }
        let failed = replies.iter().filter(|(_, r)| r.is_err()).count() as u64;
        let c = &self.shared.counters;
        c.failed_appends.fetch_add(failed, Ordering::Relaxed);
        c.write_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        replies
    }

    /// Writes and syncs the buffered records; on success runs their callbacks and
    /// queues their replies, on failure undoes the write and queues the error.
    fn flush(&mut self, pending: &mut Pending, replies: &mut Replies) -> Result<(), StoreError> {
        if pending.is_empty() {
            return Ok(());
        }
        let written = self.write_buffer();
        self.shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = written {
            let err = file_err(&self.active.path, "append to", &e);
            self.undo(&err);
            self.buf.clear();
            for (_, reply) in pending.drain(..) {
                replies.push((reply, Err(same_error(&err))));
            }
            return Err(err);
        }
        let first = self.active.next;
        let n = pending.len() as u64;
        self.active.len += self.buf.len() as u64;
        self.active.next += n;
        let last = self.active.next - 1;
        {
            let mut segments = self.shared.segments.lock();
            if let Some(s) = segments.last_mut() {
                s.last = last;
                s.len = self.active.len;
            }
        }
        self.shared.last_seq.store(last, Ordering::Release);
        let c = &self.shared.counters;
        c.appends.fetch_add(n, Ordering::Relaxed);
        c.bytes.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.buf.clear();
        for (i, (on_durable, reply)) in pending.drain(..).enumerate() {
            let seq = first + i as u64;
            if let Some(f) = on_durable {
                f(seq);
            }
            replies.push((reply, Ok(seq)));
        }
        Ok(())
    }

    /// Writes the buffer at the durable end of the active segment and syncs it.
    fn write_buffer(&mut self) -> std::io::Result<()> {
        let file = &mut self.active.file;
        file.seek(SeekFrom::Start(self.active.len))?;
        #[cfg(test)]
        if self.fault.take().is_some() {
            // A write cut short by a full disk: half the group reaches the file.
            file.write_all(&self.buf[..self.buf.len() / 2])?;
            return Err(std::io::Error::from_raw_os_error(28));
        }
        file.write_all(&self.buf)?;
        file.sync_data()
    }

    /// Cuts the active segment back to its durable length after a failed write or
    /// sync; if that fails too, poisons the journal.
    fn undo(&mut self, cause: &StoreError) {
        let len = self.active.len;
        let file = &mut self.active.file;
        let undone = file
            .set_len(len)
            .and_then(|()| file.seek(SeekFrom::Start(len)))
            .and_then(|_| file.sync_data());
        if let Err(e) = undone {
            self.poisoned = Some(format!(
                "journal {} is unusable: after a failed append ({cause}) its segment {} could \
                 not be cut back to {len} bytes ({e}); reopen the journal",
                self.dir.display(),
                self.active.path.display()
            ));
        }
    }

    /// Whether the active segment holds records, all released, and is large enough
    /// (a quarter of `segment_bytes`) to be worth closing early.
    fn active_is_released(&self) -> bool {
        let has_records = self.active.len > HEADER_LEN;
        let last = self.active.next - 1;
        has_records
            && last <= self.shared.released.load(Ordering::Acquire)
            && self.active.len >= self.options.segment_bytes / 4
    }

    /// Closes the active segment and starts one named after the next record.
    fn rotate(&mut self) -> Result<(), StoreError> {
        let next = self.active.next;
        let (file, path) = create_segment(&self.dir, next)?;
        if let Err(e) = sync_dir(&self.dir) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        self.shared.segments.lock().push(Segment {
            path: path.clone(),
            first: next,
            last: next - 1,
            len: HEADER_LEN,
        });
        self.active = Active {
            file,
            path,
            len: HEADER_LEN,
            next,
        };
        Ok(())
    }
}

/// A copy of a group's error for each of its callers.
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Io(m) => StoreError::Io(m.clone()),
        other => StoreError::Io(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer over a fresh journal in `dir`, driven synchronously.
    fn writer(dir: &Path, segment_bytes: u64) -> WriterState {
        let shared = Arc::new(Shared::default());
        let active = recover(dir, 0, &shared).unwrap();
        WriterState {
            dir: dir.to_path_buf(),
            active,
            shared,
            options: JournalOptions {
                segment_bytes,
                ..JournalOptions::default()
            },
            poisoned: None,
            buf: Vec::new(),
            fault: None,
        }
    }

    /// Commits `records` as one group; returns each result and the callbacks run.
    fn commit(
        w: &mut WriterState,
        records: &[&[u8]],
    ) -> (Vec<Result<JournalSeq, StoreError>>, Vec<JournalSeq>) {
        let called = Arc::new(Mutex::new(Vec::new()));
        let mut rxs = Vec::new();
        let group = records
            .iter()
            .map(|r| {
                let (reply, rx) = oneshot::channel();
                rxs.push(rx);
                let called = called.clone();
                Req {
                    record: r.to_vec(),
                    on_durable: Some(Box::new(move |s| called.lock().push(s))),
                    reply,
                }
            })
            .collect();
        for (tx, result) in w.commit(group) {
            let _ = tx.send(result);
        }
        let results = rxs
            .into_iter()
            .map(|mut rx| rx.try_recv().unwrap())
            .collect();
        let called = called.lock().clone();
        (results, called)
    }

    fn seqs(results: &[Result<JournalSeq, StoreError>]) -> Vec<JournalSeq> {
        results.iter().map(|r| *r.as_ref().unwrap()).collect()
    }

    fn io_message(r: &Result<JournalSeq, StoreError>) -> String {
        match r {
            Err(StoreError::Io(m)) => m.clone(),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_write_is_cut_off_and_its_numbers_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1 << 20);
        let (r, called) = commit(&mut w, &[b"a", b"b"]);
        assert_eq!(seqs(&r), vec![1, 2]);
        assert_eq!(called, vec![1, 2]);
        let durable = std::fs::metadata(&w.active.path).unwrap().len();

        w.fault = Some(());
        let (r, called) = commit(&mut w, &[b"ccccccccccccccccccccccc", b"d"]);
        assert!(io_message(&r[0]).contains("disk full"), "{:?}", r[0]);
        assert!(io_message(&r[1]).contains("disk full"));
        assert!(
            called.is_empty(),
            "no callback for a record that is not durable"
        );
        // The half-written group is gone from the file.
        assert_eq!(std::fs::metadata(&w.active.path).unwrap().len(), durable);
        assert!(w.poisoned.is_none());
        assert_eq!(w.shared.last_seq.load(Ordering::Relaxed), 2);

        let (r, called) = commit(&mut w, &[b"e"]);
        assert_eq!(seqs(&r), vec![3]);
        assert_eq!(called, vec![3]);
        let expected = vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"e".to_vec())];
        assert_eq!(replay_files(&w.shared, 0).unwrap(), expected);
        let c = &w.shared.counters;
        assert_eq!(c.failed_appends.load(Ordering::Relaxed), 2);
        assert_eq!(c.appends.load(Ordering::Relaxed), 3);

        // Reopened: nothing torn, nothing lost.
        let shared = Shared::default();
        recover(dir.path(), 0, &shared).unwrap();
        assert_eq!(replay_files(&shared, 0).unwrap(), expected);
        assert_eq!(
            shared.counters.torn_bytes_dropped.load(Ordering::Relaxed),
            0
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_that_cannot_be_undone_fails_every_later_append() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1 << 20);
        assert_eq!(seqs(&commit(&mut w, &[b"a"]).0), vec![1]);
        // Writes to /dev/full fail with ENOSPC and it cannot be truncated.
        w.active.file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let (r, called) = commit(&mut w, &[b"b"]);
        assert!(io_message(&r[0]).contains("disk full"), "{:?}", r[0]);
        assert!(called.is_empty());
        assert!(w.poisoned.is_some());
        let (r, called) = commit(&mut w, &[b"c", b"d"]);
        for result in &r {
            let m = io_message(result);
            assert!(m.contains("unusable") && m.contains("reopen"), "{m}");
        }
        assert!(called.is_empty());
        // What was acknowledged is intact on disk.
        let shared = Shared::default();
        recover(dir.path(), 0, &shared).unwrap();
        assert_eq!(replay_files(&shared, 0).unwrap(), vec![(1, b"a".to_vec())]);
    }

    #[test]
    fn a_group_spanning_rotations_is_numbered_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        // Header 16 + one 60-byte record (frame 76) per 100-byte segment.
        let mut w = writer(dir.path(), 100);
        let records: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 60]).collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let (r, called) = commit(&mut w, &refs);
        assert_eq!(seqs(&r), vec![1, 2, 3, 4, 5]);
        assert_eq!(called, vec![1, 2, 3, 4, 5]);
        assert_eq!(w.shared.segments.lock().len(), 5);
        assert_eq!(w.shared.counters.syncs.load(Ordering::Relaxed), 5);
        let expected: Vec<_> = (1..=5).zip(records).collect();
        assert_eq!(replay_files(&w.shared, 0).unwrap(), expected);
    }

    #[test]
    fn segment_names_round_trip_and_sort_by_number() {
        assert_eq!(segment_name(42), "journal-00000000000000000042.log");
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert!(segment_name(9) < segment_name(10));
        for bad in [
            "journal-42.log",
            "journal-0000000000000000004x.log",
            "journal-00000000000000000000.log",
            "journal-00000000000000000042.log.tmp",
            "journal.lock",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
