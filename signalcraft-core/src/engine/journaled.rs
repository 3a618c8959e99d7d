//! Journaled ingest ([`EngineBuilder::journal`](super::EngineBuilder::journal)): an
//! ingest call returns once its events are durable in the [`Journal`]; the engine
//! decides on them and commits the outcome to the Store in the background.
//!
//! # Contract
//! * [`Engine::submit`] encodes the events as one journal record and returns after
//!   the journal made it durable. A submitted event is never lost: either the Store
//!   holds its outcome, or the journal holds it and [`Engine::recover`] replays it.
//! * One applier task takes the records in journal order, as many as are waiting (at
//!   most [`EngineBuilder::journal_apply_batch`](super::EngineBuilder::journal_apply_batch)
//!   events, default [`APPLY_BATCH`]), decides on them in one decision and commits the
//!   outcome together with the highest sequence number it covers (`Table::Meta`, key
//!   [`JOURNAL_APPLIED_KEY`]), so a record's outcome and the mark that it was
//!   applied are written atomically. Decisions and commits overlap as for
//!   [`Engine::ingest_begin`]. Committed records are released from the journal.
//! * Submitted-but-unapplied events wait for the applier as their encoded journal
//!   record (the bytes just made durable), not as decoded [`Event`]s: the applier
//!   decodes each record when it takes it. A queued alert costs its JSON (about
//!   360 bytes in `benches/compare-alertmanager.sh`, against ~2.4 KB for a decoded
//!   `Alert` with its label maps), and the decoded events of a request are freed as
//!   soon as the request is encoded.
//! * Each record carries the time the journal accepted it, and its events are decided
//!   at that time (clamped to the decision's clock and to the previous record's time),
//!   so an alert's first/last seen and its group's `group_wait` count from acceptance,
//!   however far behind the applier is or however late a replay after a crash runs.
//! * Submitted-but-unapplied events are bounded, by count
//!   ([`EngineBuilder::journal_max_lag`](super::EngineBuilder::journal_max_lag)) and by
//!   the bytes of their queued records ([`Engine::set_journal_max_lag_bytes`]):
//!   `submit` waits while the applier is that far behind, so memory stays bounded and
//!   a slow store slows ingest down instead of queueing without limit.
//! * When a commit fails, the engine's core is rebuilt from the Store (as after any
//!   failed commit) and the applier replays the journal from the Store's applied mark
//!   before taking new records, retrying with back-off while the Store keeps failing.
//! * [`Engine::journal_settled`] waits until everything submitted so far is
//!   committed (tests, shutdown, read-your-writes).
//! * A caller that holds its request in a registered wire format can journal the
//!   request's own bytes instead ([`Engine::submit_encoded`]): a version 3 record
//!   carries the format's name, a context string and the payload, and the applier
//!   decodes it with the [`RecordFormat`] registered under that name
//!   ([`Engine::register_journal_format`], before [`Engine::recover`] so a replay can
//!   read it). The caller validates the payload first (a record that its format cannot
//!   decode is reported as corrupt when applied), and such a record skips the
//!   in-memory settling of re-sends below (use it when the journal is behind anyway).
//!   The reference server journals Alertmanager `POST /api/v2/alerts` bodies this way:
//!   no event is encoded for the journal, and the applier parses ~140 bytes of posted
//!   JSON per alert instead of ~360 bytes of encoded [`Event`].
//! * Re-sends need no journal: while the applier is caught up (nothing submitted
//!   is unapplied), an identical re-send of a known firing alert is settled at once
//!   in memory, exactly as a decision would settle it (last seen moves; nothing is
//!   written, as for any duplicate), and only the other events are journaled. With
//!   events in flight every event is journaled, so a re-send never overtakes an
//!   earlier change of the same alert. A Prometheus that re-sends every alert on
//!   every evaluation costs no fsync in the steady state.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use super::shell::Engine;
use crate::CoreError;
use crate::journal::{Journal, JournalSeq};
use crate::model::{ActionEvent, Alert, ChangeEvent, Event};
use crate::store::{StoreError, StoreExt, Table};

/// `Table::Meta` key holding the highest journal sequence number whose events the
/// Store holds the outcome of (a JSON number).
pub const JOURNAL_APPLIED_KEY: &str = "journal/applied";

/// Default for the most events the applier decides on in one decision.
pub const APPLY_BATCH: usize = 20_000;

/// Default bound on submitted-but-unapplied events.
pub const DEFAULT_MAX_LAG: usize = 100_000;

/// Default bound on the bytes of submitted-but-unapplied journal records (no bound
/// until [`Engine::set_journal_max_lag_bytes`] sets one).
pub const DEFAULT_MAX_LAG_BYTES: usize = usize::MAX;

/// Longest pause between retries of a failing replay.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Version of the journal record format this build writes. Version 1 wrote each
/// [`Event`] with its own internally tagged form (`{"kind":"alert",…}`), which serde
/// decodes through a buffer that cannot hold a [`RawPayload`](crate::model::RawPayload),
/// so a record with a raw payload could not be read back; version 2 tags each event
/// externally (`{"alert":{…}}`), decoded in one pass. Both are read.
const RECORD_VERSION: u32 = 2;

/// First bytes of a version 3 record (a request journaled in a registered wire format
/// by [`Engine::submit_encoded`]). Versions 1 and 2 are JSON objects, which never
/// start with a NUL byte.
const RAW_MAGIC: &[u8; 5] = b"\0SCJ3";

/// A wire format whose payloads the journal can hold as they arrived, decoded into
/// events only when applied ([`Engine::register_journal_format`],
/// [`Engine::submit_encoded`]).
pub trait RecordFormat: Send + Sync {
    /// Decodes a payload journaled with `context` and accepted at `at` into events.
    /// Must give the same events for the same input every time (a replay after a
    /// crash decodes it again). An error reports the record as corrupt.
    fn decode(&self, context: &str, payload: &[u8], at: Timestamp)
    -> Result<Vec<Event>, CoreError>;
}

/// Registered [`RecordFormat`]s by name.
type Formats = parking_lot::RwLock<std::collections::HashMap<String, Arc<dyn RecordFormat>>>;

/// Encodes a version 3 record: [`RAW_MAGIC`], the acceptance time (seconds `i64`,
/// nanoseconds `i32`, little endian), the format name and the context (each a `u16`
/// little-endian length and UTF-8 bytes), then the payload to the end.
fn encode_raw(
    format: &str,
    context: &str,
    payload: &[u8],
    at: Timestamp,
) -> Result<Vec<u8>, CoreError> {
    let len16 = |what: &str, s: &str| {
        u16::try_from(s.len()).map_err(|_| {
            CoreError::from(StoreError::Codec(format!(
                "journal record: {what} longer than 65535 bytes"
            )))
        })
    };
    let (flen, clen) = (len16("format name", format)?, len16("context", context)?);
    let mut out =
        Vec::with_capacity(RAW_MAGIC.len() + 16 + format.len() + context.len() + payload.len());
    out.extend_from_slice(RAW_MAGIC);
    out.extend_from_slice(&at.as_second().to_le_bytes());
    out.extend_from_slice(&at.subsec_nanosecond().to_le_bytes());
    out.extend_from_slice(&flen.to_le_bytes());
    out.extend_from_slice(format.as_bytes());
    out.extend_from_slice(&clen.to_le_bytes());
    out.extend_from_slice(context.as_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Decodes a version 3 record (after [`RAW_MAGIC`]) with its registered format.
fn decode_raw(body: &[u8], formats: &Formats) -> Result<Received, String> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err("truncated version 3 header".into());
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn text<'a>(b: &mut &'a [u8], what: &str) -> Result<&'a str, String> {
        let n = take(b, 2)?;
        let n = u16::from_le_bytes([n[0], n[1]]) as usize;
        std::str::from_utf8(take(b, n)?).map_err(|_| format!("{what} is not UTF-8"))
    }
    let mut b = body;
    let mut secs = [0u8; 8];
    secs.copy_from_slice(take(&mut b, 8)?);
    let mut nanos = [0u8; 4];
    nanos.copy_from_slice(take(&mut b, 4)?);
    let at = Timestamp::new(i64::from_le_bytes(secs), i32::from_le_bytes(nanos))
        .map_err(|e| format!("acceptance time: {e}"))?;
    let format = text(&mut b, "format name")?;
    let context = text(&mut b, "context")?;
    let decoder = formats.read().get(format).cloned().ok_or_else(|| {
        format!("format {format:?} has no decoder (Engine::register_journal_format before recover)")
    })?;
    let events = decoder
        .decode(context, b, at)
        .map_err(|e| format!("format {format:?}: {e}"))?;
    Ok(Received {
        at: Some(at),
        events,
    })
}

/// An event as a version 2 record writes it.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum EventOut<'a> {
    Alert(&'a Alert),
    Change(&'a ChangeEvent),
    Action(&'a ActionEvent),
}

/// An event as a version 2 record is read.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum EventIn {
    Alert(Alert),
    Change(ChangeEvent),
    Action(ActionEvent),
}

impl From<EventIn> for Event {
    fn from(e: EventIn) -> Self {
        match e {
            EventIn::Alert(a) => Event::Alert(a),
            EventIn::Change(c) => Event::Change(c),
            EventIn::Action(a) => Event::Action(a),
        }
    }
}

/// A journal record, as written.
#[derive(Serialize)]
struct RecordOut<'a> {
    v: u32,
    /// When the journal accepted the events (the engine's clock at submit).
    at: Timestamp,
    events: Vec<EventOut<'a>>,
}

/// A version 2 journal record, as read back.
#[derive(Deserialize)]
struct RecordIn {
    v: u32,
    /// Absent in records written before it was added.
    #[serde(default)]
    at: Option<Timestamp>,
    events: Vec<EventIn>,
}

/// The events of one journal record, as the applier decides on them.
#[derive(Debug, PartialEq)]
pub(super) struct Received {
    /// When the journal accepted them (`None` for records that do not say): the
    /// decision's time for these events, so timers such as `group_wait` count from
    /// acceptance however far behind the applier is.
    pub(super) at: Option<Timestamp>,
    /// The events, in order.
    pub(super) events: Vec<Event>,
}

/// A version 1 journal record, as read back.
#[derive(Deserialize)]
struct RecordInV1 {
    v: u32,
    events: Vec<Event>,
}

/// Encodes events accepted at `at` as one journal record.
pub(super) fn encode_record(events: &[Event], at: Timestamp) -> Result<Vec<u8>, CoreError> {
    let events = events
        .iter()
        .map(|e| match e {
            Event::Alert(a) => EventOut::Alert(a),
            Event::Change(c) => EventOut::Change(c),
            Event::Action(a) => EventOut::Action(a),
        })
        .collect();
    serde_json::to_vec(&RecordOut {
        v: RECORD_VERSION,
        at,
        events,
    })
    .map_err(|e| StoreError::Codec(format!("journal record: {e}")).into())
}

/// Decodes one journal record (any version; version 3 with `formats`).
fn decode_record(seq: JournalSeq, bytes: &[u8], formats: &Formats) -> Result<Received, CoreError> {
    let corrupt =
        |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("journal record {seq}: {e}"));
    if let Some(body) = bytes.strip_prefix(RAW_MAGIC.as_slice()) {
        return decode_raw(body, formats).map_err(|e| corrupt(&e).into());
    }
    let (v, at, events) = match serde_json::from_slice::<RecordIn>(bytes) {
        Ok(rec) => (
            rec.v,
            rec.at,
            rec.events.into_iter().map(Event::from).collect(),
        ),
        // Not the version 2 layout: a version 1 record (or damage, reported as such).
        Err(_) => {
            let rec: RecordInV1 = serde_json::from_slice(bytes).map_err(|e| corrupt(&e))?;
            if rec.v != 1 {
                return Err(corrupt(&format_args!(
                    "format version {} in a version 1 layout",
                    rec.v
                ))
                .into());
            }
            (rec.v, None, rec.events)
        }
    };
    if v != 1 && v != RECORD_VERSION {
        return Err(corrupt(&format_args!(
            "format version {v}, this build reads 1 and {RECORD_VERSION}"
        ))
        .into());
    }
    Ok(Received { at, events })
}

/// Reads the Store's applied mark ([`JOURNAL_APPLIED_KEY`]; 0 when absent). Open the
/// journal with it, so its sequence numbers continue after it.
pub async fn journal_applied(store: &dyn crate::store::Store) -> Result<JournalSeq, CoreError> {
    Ok(store
        .get_json::<JournalSeq>(Table::Meta, JOURNAL_APPLIED_KEY)
        .await?
        .unwrap_or(0))
}

/// A durable record on its way to the applier: its encoded bytes (decoded by the
/// applier, see the module doc).
struct Entry {
    seq: JournalSeq,
    record: Vec<u8>,
    lag: LagGuard,
}

/// Counts events (and their record's bytes) as submitted-but-unapplied until dropped.
struct LagGuard {
    n: usize,
    bytes: usize,
    state: Arc<Lag>,
}

impl Drop for LagGuard {
    fn drop(&mut self) {
        self.state.events.fetch_sub(self.n, Ordering::AcqRel);
        self.state.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        self.state.freed.notify_waiters();
    }
}

#[derive(Default)]
struct Lag {
    events: AtomicUsize,
    bytes: AtomicUsize,
    freed: Notify,
}

/// The journaled-ingest state of an engine.
pub(super) struct Journaled {
    journal: Arc<dyn Journal>,
    tx: mpsc::UnboundedSender<Entry>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Entry>>>,
    lag: Arc<Lag>,
    max_lag: usize,
    /// Bound on the bytes of queued records ([`Engine::set_journal_max_lag_bytes`]).
    max_lag_bytes: AtomicUsize,
    /// Most events per decision.
    apply_batch: usize,
    /// Highest sequence number committed to the Store.
    applied: AtomicU64,
    /// Highest sequence number handed to the applier.
    durable: AtomicU64,
    /// Notified whenever `applied` moves.
    applied_moved: Notify,
    /// Wire formats of version 3 records.
    formats: Formats,
}

impl Journaled {
    pub(super) fn new(journal: Arc<dyn Journal>, max_lag: usize, apply_batch: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Journaled {
            journal,
            tx,
            rx: Mutex::new(Some(rx)),
            lag: Arc::new(Lag::default()),
            max_lag: max_lag.max(1),
            max_lag_bytes: AtomicUsize::new(DEFAULT_MAX_LAG_BYTES),
            apply_batch: apply_batch.max(1),
            applied: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            applied_moved: Notify::new(),
            formats: Formats::default(),
        }
    }

    /// Whether a submit must wait for the applier: the lag is at its bound of events
    /// or of bytes. A submit into an empty queue never waits, so one record larger
    /// than the byte bound still goes through.
    fn lag_full(&self) -> bool {
        let events = self.lag.events.load(Ordering::Acquire);
        events >= self.max_lag
            || (events > 0
                && self.lag.bytes.load(Ordering::Acquire)
                    >= self.max_lag_bytes.load(Ordering::Relaxed))
    }

    fn mark_applied(&self, seq: JournalSeq) {
        self.applied.fetch_max(seq, Ordering::AcqRel);
        self.applied_moved.notify_waiters();
    }
}

impl Engine {
    fn journaled(&self) -> Result<&Journaled, CoreError> {
        self.journal_state()
            .ok_or_else(|| CoreError::InvalidConfig {
                path: "engine.journal".into(),
                message: "this engine has no journal (EngineBuilder::journal)".into(),
            })
    }

    /// Makes events durable in the journal and queues them for the background
    /// decision; returns their journal sequence number (see the module doc). Waits
    /// first while the applier is [`EngineBuilder::journal_max_lag`] events behind.
    /// Returns 0 when every event was an identical re-send settled in memory (see
    /// the module doc) and nothing needed the journal.
    ///
    /// [`EngineBuilder::journal_max_lag`]: super::EngineBuilder::journal_max_lag
    pub async fn submit(&self, events: Vec<Event>) -> Result<JournalSeq, CoreError> {
        let j = self.journaled()?;
        self.start_applier();
        self.mark_ingest();
        let events = self.settle_resends(j, events);
        if events.is_empty() {
            return Ok(0);
        }
        let n = events.len();
        let record = encode_record(&events, self.now())?;
        // The queue holds the record's bytes; the decoded events go now.
        drop(events);
        self.append_record(j, n, record).await
    }

    /// Registers a wire format for [`Engine::submit_encoded`] under `name`. Register
    /// every format the journal may hold before [`Engine::recover`], which replays it;
    /// a record whose format is not registered is reported as corrupt when applied.
    /// No effect on an engine without a journal.
    pub fn register_journal_format(&self, name: &str, format: Arc<dyn RecordFormat>) {
        if let Some(j) = self.journal_state() {
            j.formats.write().insert(name.to_owned(), format);
        }
    }

    /// Makes a request durable in the journal as it arrived, in the wire format
    /// registered as `format` ([`Engine::register_journal_format`]), with a
    /// `context` the format's decoder gets back (such as the integration's name), and
    /// queues it for the background decision; returns its sequence number. `events`
    /// is how many events the payload decodes into (the lag bound counts them). The
    /// caller has validated the payload: the applier decodes it at the time the
    /// journal accepted it, and a payload that does not decode is reported as a
    /// corrupt record. Unlike [`Engine::submit`], re-sends are not settled in memory
    /// (the payload is not decoded here); prefer `submit` while the journal is caught
    /// up ([`Engine::journal_lag`] is zero).
    pub async fn submit_encoded(
        &self,
        format: &str,
        context: &str,
        payload: &[u8],
        events: usize,
    ) -> Result<JournalSeq, CoreError> {
        let j = self.journaled()?;
        if !j.formats.read().contains_key(format) {
            return Err(CoreError::InvalidConfig {
                path: "engine.journal".into(),
                message: format!("journal format {format:?} is not registered"),
            });
        }
        self.start_applier();
        self.mark_ingest();
        let record = encode_raw(format, context, payload, self.now())?;
        self.append_record(j, events, record).await
    }

    /// Appends an encoded record of `n` events once the lag allows it (see the module
    /// doc) and hands it to the applier once durable.
    async fn append_record(
        &self,
        j: &Journaled,
        n: usize,
        record: Vec<u8>,
    ) -> Result<JournalSeq, CoreError> {
        loop {
            let freed = j.lag.freed.notified();
            if !j.lag_full() {
                break;
            }
            freed.await;
        }
        j.lag.events.fetch_add(n, Ordering::AcqRel);
        j.lag.bytes.fetch_add(record.len(), Ordering::AcqRel);
        let lag = LagGuard {
            n,
            bytes: record.len(),
            state: j.lag.clone(),
        };
        let queued = record.clone();
        let tx = j.tx.clone();
        // Owned by the journal from here on: it runs once the record is durable, or is
        // dropped (releasing the lag) when the append fails.
        let on_durable = Box::new(move |seq: JournalSeq| {
            let _ = tx.send(Entry {
                seq,
                record: queued,
                lag,
            });
        });
        let seq = j.journal.append_then(record, on_durable).await?;
        j.durable.fetch_max(seq, Ordering::AcqRel);
        Ok(seq)
    }

    /// Settles identical re-sends in memory while nothing submitted is unapplied;
    /// returns the events that still need the journal, in order.
    fn settle_resends(&self, j: &Journaled, events: Vec<Event>) -> Vec<Event> {
        if j.lag.events.load(Ordering::Acquire) != 0
            || !events.iter().any(|e| matches!(e, Event::Alert(_)))
        {
            return events;
        }
        let now = self.now();
        let mut effects = Vec::new();
        let mut events = Some(events);
        let settled = self.with_core_mut(|core| {
            let events = events.take().unwrap_or_default();
            // Checked again under the core lock: the applier decides under it too.
            if j.lag.events.load(Ordering::Acquire) != 0 {
                return events;
            }
            // Within the request, an event never overtakes an earlier journaled one
            // about the same alert: after a journaled alert its fingerprint is never
            // settled here, and after any other journaled event nothing is.
            let mut kept_fps = std::collections::HashSet::new();
            let mut settling = true;
            events
                .into_iter()
                .filter(|e| {
                    let Event::Alert(a) = e else {
                        settling = false;
                        return true;
                    };
                    if settling {
                        let after_kept =
                            !kept_fps.is_empty() && kept_fps.contains(&a.fingerprint());
                        if !after_kept && core.settle_if_resend(a, now, &mut effects) {
                            return false;
                        }
                        kept_fps.insert(a.fingerprint());
                    }
                    true
                })
                .collect()
        });
        let rest = settled.or(events).unwrap_or_default();
        for e in effects {
            if let super::effects::Effect::Event(ev) = e {
                self.emit(&ev);
            }
        }
        rest
    }

    /// Waits until every event submitted before this call is committed to the Store.
    pub async fn journal_settled(&self) -> Result<(), CoreError> {
        let j = self.journaled()?;
        let target = j.durable.load(Ordering::Acquire);
        loop {
            let moved = j.applied_moved.notified();
            if j.applied.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            moved.await;
        }
    }

    /// The highest journal sequence number whose outcome is committed.
    pub fn journal_applied_seq(&self) -> Option<JournalSeq> {
        self.journal_state()
            .map(|j| j.applied.load(Ordering::Acquire))
    }

    /// Bounds the bytes of submitted-but-unapplied journal records (the memory the
    /// applier's queue holds; default: no bound beyond
    /// [`EngineBuilder::journal_max_lag`](super::EngineBuilder::journal_max_lag)).
    /// `submit` waits while the queued records reach it; a record alone in the queue
    /// is never held back. No effect on an engine without a journal.
    pub fn set_journal_max_lag_bytes(&self, bytes: usize) {
        if let Some(j) = self.journal_state() {
            j.max_lag_bytes.store(bytes.max(1), Ordering::Relaxed);
            j.lag.freed.notify_waiters();
        }
    }

    /// Events and record bytes submitted but not yet applied (0, 0 without a journal).
    pub fn journal_lag(&self) -> (usize, usize) {
        self.journal_state().map_or((0, 0), |j| {
            (
                j.lag.events.load(Ordering::Acquire),
                j.lag.bytes.load(Ordering::Acquire),
            )
        })
    }

    /// Replays every journal record after the Store's applied mark (called by
    /// [`Engine::recover`] after the core is loaded). Returns the last sequence number
    /// replayed (the applied mark when there was nothing to replay).
    pub(super) async fn replay_journal(&self) -> Result<JournalSeq, CoreError> {
        let Some(j) = self.journal_state() else {
            return Ok(0);
        };
        let applied = journal_applied(self.store().as_ref()).await?;
        j.mark_applied(applied);
        let records = j.journal.replay(applied).await?;
        let mut batch: Vec<Received> = Vec::new();
        let mut events = 0;
        let mut through = applied;
        for (seq, bytes) in records {
            let received = decode_record(seq, &bytes, &j.formats)?;
            events += received.events.len();
            batch.push(received);
            through = seq;
            if events >= j.apply_batch {
                self.apply_now(std::mem::take(&mut batch), through).await?;
                events = 0;
            }
        }
        if through > applied {
            self.apply_now(batch, through).await?;
        }
        j.durable.fetch_max(through, Ordering::AcqRel);
        Ok(through)
    }

    /// Decides on replayed events and commits them with the applied mark `through`.
    async fn apply_now(&self, events: Vec<Received>, through: JournalSeq) -> Result<(), CoreError> {
        let pending = self.ingest_begin_marked(events, Some(through)).await?;
        pending.wait().await?;
        if let Some(j) = self.journal_state() {
            // Released before marked, so a settled engine has released what it applied.
            let released = j.journal.release(through).await;
            j.mark_applied(through);
            released?;
        }
        Ok(())
    }

    /// Reports an applier problem through the event sink.
    fn journal_trouble(&self, reason: String) {
        self.emit(&super::events::EngineEvent::JournalTrouble { reason });
    }

    /// Starts the applier task once (on the first submit).
    fn start_applier(&self) {
        let Some(j) = self.journal_state() else {
            return;
        };
        let Some(rx) = j.rx.lock().take() else {
            return;
        };
        let apply_batch = j.apply_batch;
        tokio::spawn(Engine::apply_loop(self.downgrade(), rx, apply_batch));
    }

    /// The applier: takes durable records in order and decides on them in batches
    /// (see the module doc). It holds the engine only while it works on a batch, so
    /// it ends once the last [`Engine`] is dropped (which closes its channel).
    async fn apply_loop(
        weak: super::shell::WeakEngine,
        mut rx: mpsc::UnboundedReceiver<Entry>,
        apply_batch: usize,
    ) {
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Poked by a failed commit, so the replay starts without waiting for a submit.
        let poke = Arc::new(Notify::new());
        let mut commits = tokio::task::JoinSet::new();
        // Records at or below this were replayed after a failure; skip their copies.
        let mut skip_through: JournalSeq = 0;
        loop {
            let first = tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => Some(e),
                    None => break,
                },
                () = poke.notified() => None,
            };
            if first.is_none() || failed.load(Ordering::Acquire) {
                while commits.join_next().await.is_some() {}
                if failed.load(Ordering::Acquire) {
                    let Some(through) = Engine::replay_until_ok(&weak).await else {
                        break;
                    };
                    skip_through = through;
                    failed.store(false, Ordering::Release);
                }
            }
            let Some(first) = first else {
                continue;
            };
            let Some(this) = weak.upgrade() else {
                break;
            };
            let mut entries = vec![first];
            let mut n = entries[0].lag.n;
            while n < apply_batch {
                match rx.try_recv() {
                    Ok(e) => {
                        n += e.lag.n;
                        entries.push(e);
                    }
                    Err(_) => break,
                }
            }
            // Reap finished commits (their results were handled in the task).
            while commits.try_join_next().is_some() {}
            entries.retain(|e| e.seq > skip_through);
            let Some(through) = entries.last().map(|e| e.seq) else {
                continue;
            };
            let mut events = Vec::with_capacity(entries.len());
            let mut guards = Vec::with_capacity(entries.len());
            let mut decoded = Ok(());
            for e in entries {
                if decoded.is_ok() {
                    let formats = this.journal_state().map(|j| &j.formats);
                    let decoded_one = match formats {
                        Some(f) => decode_record(e.seq, &e.record, f),
                        None => Err(CoreError::from(StoreError::Closed)),
                    };
                    match decoded_one {
                        Ok(received) => events.push(received),
                        Err(err) => decoded = Err(err),
                    }
                }
                guards.push(e.lag);
            }
            let begun = match decoded {
                Ok(()) => this.ingest_begin_marked(events, Some(through)).await,
                Err(e) => Err(e),
            };
            match begun {
                Ok(pending) => {
                    let engine = this.clone();
                    let (failed, poke) = (failed.clone(), poke.clone());
                    commits.spawn(async move {
                        match pending.wait().await {
                            Ok(_) => {
                                if let Some(j) = engine.journal_state() {
                                    if let Err(e) = j.journal.release(through).await {
                                        engine.journal_trouble(format!(
                                            "journal release failed: {e}"
                                        ));
                                    }
                                    // Off the lag before marked applied: a settled
                                    // engine is caught up (see `settle_resends`).
                                    drop(guards);
                                    j.mark_applied(through);
                                }
                                return;
                            }
                            Err(e) => {
                                engine.journal_trouble(format!(
                                    "committing journaled events through {through} failed \
                                     (they stay in the journal and are replayed): {e}"
                                ));
                                failed.store(true, Ordering::Release);
                                poke.notify_one();
                            }
                        }
                        drop(guards);
                    });
                }
                Err(e) => {
                    this.journal_trouble(format!(
                        "deciding on journaled events through {through} failed \
                         (they stay in the journal and are replayed): {e}"
                    ));
                    drop(guards);
                    failed.store(true, Ordering::Release);
                    poke.notify_one();
                }
            }
        }
        while commits.join_next().await.is_some() {}
    }

    /// Replays the journal from the Store's applied mark until it succeeds; returns
    /// the last sequence number replayed, or `None` once the engine was dropped (the
    /// next start replays instead). The engine is not held between attempts.
    async fn replay_until_ok(weak: &super::shell::WeakEngine) -> Option<JournalSeq> {
        let mut pause = Duration::from_millis(50);
        loop {
            let engine = weak.upgrade()?;
            match engine.replay_journal().await {
                Ok(through) => return Some(through),
                Err(e) => {
                    engine.journal_trouble(format!("replaying the journal failed, retrying: {e}"));
                    drop(engine);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, RawPayload, Source};

    fn alert(raw: Option<&str>) -> Event {
        let mut a = Alert::firing(
            Source {
                provider: "p".into(),
                integration: "i".into(),
            },
            "s",
            Labels::from([("alertname".to_string(), "Down".to_string())]),
        );
        if let Some(raw) = raw {
            a.raw = RawPayload::from_json(raw).unwrap();
        }
        Event::Alert(a)
    }

    #[test]
    fn records_round_trip_with_raw_payloads() {
        let events = vec![alert(Some(r#"{"a": [1, 2]}"#)), alert(None)];
        let at: Timestamp = "2026-03-02T10:00:00.5Z".parse().unwrap();
        let bytes = encode_record(&events, at).unwrap();
        assert!(bytes.starts_with(br#"{"v":2,"at":"2026-03-02T10:00:00.5Z","events":[{"alert":{"#));
        assert_eq!(
            decode_record(7, &bytes, &Formats::default()).unwrap(),
            Received {
                at: Some(at),
                events
            }
        );
    }

    #[test]
    fn version_1_records_are_still_read() {
        let events = vec![alert(None)];
        let v1 = serde_json::to_vec(&serde_json::json!({"v": 1, "events": &events})).unwrap();
        assert!(String::from_utf8_lossy(&v1).contains(r#""kind":"alert""#));
        assert_eq!(
            decode_record(3, &v1, &Formats::default()).unwrap(),
            Received { at: None, events }
        );
    }

    #[test]
    fn version_2_records_without_an_acceptance_time_are_still_read() {
        let events = vec![alert(None)];
        let with_at = encode_record(&events, Timestamp::UNIX_EPOCH).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&with_at).unwrap();
        v.as_object_mut().unwrap().remove("at");
        let without = serde_json::to_vec(&v).unwrap();
        assert_eq!(
            decode_record(2, &without, &Formats::default()).unwrap(),
            Received { at: None, events }
        );
    }

    #[test]
    fn unknown_versions_and_damage_are_corrupt_records() {
        let v3 = br#"{"v":3,"events":[]}"#;
        let err = decode_record(4, v3, &Formats::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("journal record 4") && err.contains("version 3"),
            "{err}"
        );
        let err = decode_record(5, b"{\"v\":2,\"ev", &Formats::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("journal record 5"), "{err}");
    }

    /// A test format: the payload is a comma-separated list of alert names, the
    /// context the integration.
    struct Names;

    impl RecordFormat for Names {
        fn decode(
            &self,
            context: &str,
            payload: &[u8],
            at: Timestamp,
        ) -> Result<Vec<Event>, CoreError> {
            let text = std::str::from_utf8(payload)
                .map_err(|_| CoreError::from(StoreError::Codec("not UTF-8".into())))?;
            Ok(text
                .split(',')
                .map(|name| {
                    let mut a = Alert::firing(
                        Source {
                            provider: "names".into(),
                            integration: context.into(),
                        },
                        name,
                        Labels::from([("alertname".to_string(), name.to_string())]),
                    );
                    a.starts_at = Some(at);
                    Event::Alert(a)
                })
                .collect())
        }
    }

    #[test]
    fn version_3_records_decode_with_their_registered_format() {
        let formats = Formats::default();
        formats
            .write()
            .insert("names".into(), Arc::new(Names) as Arc<dyn RecordFormat>);
        let at: Timestamp = "2026-03-02T10:00:00.123456789Z".parse().unwrap();
        let bytes = encode_raw("names", "intg", b"Down,Up", at).unwrap();
        assert!(bytes.starts_with(RAW_MAGIC));
        let got = decode_record(9, &bytes, &formats).unwrap();
        assert_eq!(got.at, Some(at));
        let want = Names.decode("intg", b"Down,Up", at).unwrap();
        assert_eq!(got.events, want);
        let Event::Alert(a) = &got.events[1] else {
            panic!("not an alert: {:?}", got.events[1]);
        };
        assert_eq!(a.source.integration.as_ref(), "intg");
        assert_eq!(a.starts_at, Some(at));

        // An unregistered format, a cut header, a payload the format rejects: corrupt.
        let other = encode_raw("other", "", b"x", at).unwrap();
        let err = decode_record(10, &other, &formats).unwrap_err().to_string();
        assert!(
            err.contains("journal record 10") && err.contains("\"other\""),
            "{err}"
        );
        for cut in [
            RAW_MAGIC.len() + 3,
            RAW_MAGIC.len() + 13,
            RAW_MAGIC.len() + 15,
        ] {
            let err = decode_record(11, &bytes[..cut], &formats)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("journal record 11") && err.contains("truncated"),
                "{err}"
            );
        }
        let bad = encode_raw("names", "", &[0xff, 0xfe], at).unwrap();
        let err = decode_record(12, &bad, &formats).unwrap_err().to_string();
        assert!(
            err.contains("journal record 12") && err.contains("not UTF-8"),
            "{err}"
        );
        // Version 1 and 2 records still decode beside version 3 ones.
        let v2 = encode_record(&[alert(None)], at).unwrap();
        assert_eq!(decode_record(13, &v2, &formats).unwrap().events.len(), 1);
    }
}
