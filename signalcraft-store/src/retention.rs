//! Retention: remove closed incidents older than a configured age, together with
//! their alerts and timeline, optionally archiving the timeline to JSON Lines first.
//!
//! It works over any [`Store`] (redb, in-memory, later PostgreSQL) and treats
//! incident records as generic JSON. The fields it relies on are configurable; the
//! defaults ([`RetentionPolicy::new`]) are:
//!
//! * `state` (string): the incident is closed when it is one of `closed_states`
//!   (`"resolved"`, `"closed"`);
//! * `closed_at`, else `resolved_at`: when it closed, an RFC 3339 string or an
//!   integer of milliseconds since the Unix epoch; a closed incident without either is
//!   kept (never guessed);
//! * `alerts` (optional): the keys of its alerts in [`Table::Alerts`], as strings or
//!   objects with a `fingerprint` field. An alert is removed only if its own record
//!   has no `incident_id` or the same one (a fingerprint that fired again and now
//!   belongs to a newer incident is kept);
//! * timeline entries are the keys of [`Table::Timeline`] starting with `"<incident id>/"`.
//!
//! The incidents of one scan page are removed in one atomic batch (each with its
//! alerts and timeline), so a crash in the middle never leaves half an incident.
//! Archived lines are written and flushed before the batch commits: a crash in between may archive an incident's
//! timeline twice, never lose it.

use std::io::Write;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use signalcraft_core::store::{Scan, Store, Table, WriteBatch};

use crate::error::Error;

/// Which incidents to remove, and where their parts live.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    /// Remove incidents closed longer ago than this.
    pub max_age: Duration,
    /// The table of incident records.
    pub incidents: Table,
    /// The field holding the incident state.
    pub state_field: String,
    /// The states that count as closed.
    pub closed_states: Vec<String>,
    /// Fields holding the closing time, tried in order.
    pub closed_at_fields: Vec<String>,
    /// Field listing the incident's alert keys (`None`: alerts are not removed).
    pub alerts_field: Option<String>,
    /// Field of an alert record naming its incident (guards re-fired fingerprints).
    pub alert_incident_field: String,
    /// Remove timeline entries `"<incident id>/…"` (`false`: keep them).
    pub timeline: bool,
    /// Incidents read per scan page.
    pub page_size: usize,
}

impl RetentionPolicy {
    /// The default field mapping (see the module docs) with the given age.
    pub fn new(max_age: Duration) -> Self {
        RetentionPolicy {
            max_age,
            incidents: Table::Incidents,
            state_field: "state".into(),
            closed_states: vec!["resolved".into(), "closed".into()],
            closed_at_fields: vec!["closed_at".into(), "resolved_at".into()],
            alerts_field: Some("alerts".into()),
            alert_incident_field: "incident_id".into(),
            timeline: true,
            page_size: 500,
        }
    }
}

/// What one retention run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Incidents removed.
    pub incidents: u64,
    /// Alerts removed.
    pub alerts: u64,
    /// Timeline entries removed.
    pub timeline_entries: u64,
    /// Lines written to the archive.
    pub archived: u64,
}

impl RetentionPolicy {
    /// When a record closed, if it is closed.
    fn closed_at(&self, rec: &Value) -> Option<Timestamp> {
        let state = rec.get(&self.state_field)?.as_str()?;
        if !self.closed_states.iter().any(|s| s == state) {
            return None;
        }
        self.closed_at_fields
            .iter()
            .find_map(|f| match rec.get(f)? {
                Value::String(s) => s.parse::<Timestamp>().ok(),
                Value::Number(n) => n
                    .as_i64()
                    .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
                _ => None,
            })
    }

    fn alert_keys(&self, rec: &Value) -> Vec<String> {
        let Some(field) = &self.alerts_field else {
            return Vec::new();
        };
        let Some(Value::Array(items)) = rec.get(field) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|a| match a {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o
                    .get("fingerprint")
                    .and_then(|f| f.as_str())
                    .map(str::to_owned),
                _ => None,
            })
            .collect()
    }

    /// Removes every incident closed before `now - max_age`.
    pub async fn run<S: Store + ?Sized>(
        &self,
        store: &S,
        now: Timestamp,
    ) -> Result<RetentionReport, Error> {
        self.run_inner::<S, std::io::Sink>(store, now, None).await
    }

    /// Like [`RetentionPolicy::run`], and first writes each removed timeline entry to
    /// `archive` as a JSON line `{"incident":"…","key":"…","entry":{…}}`.
    pub async fn run_with_archive<S: Store + ?Sized, W: Write + Send + ?Sized>(
        &self,
        store: &S,
        now: Timestamp,
        archive: &mut W,
    ) -> Result<RetentionReport, Error> {
        self.run_inner(store, now, Some(archive)).await
    }

    async fn run_inner<S: Store + ?Sized, W: Write + Send + ?Sized>(
        &self,
        store: &S,
        now: Timestamp,
        mut archive: Option<&mut W>,
    ) -> Result<RetentionReport, Error> {
        let cutoff = jiff::SignedDuration::try_from(self.max_age)
            .ok()
            .and_then(|d| now.checked_sub(d).ok())
            .unwrap_or(Timestamp::MIN);
        let mut report = RetentionReport::default();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .scan(
                    self.incidents,
                    Scan {
                        after: after.clone(),
                        limit: self.page_size.max(1),
                        ..Scan::default()
                    },
                )
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            // One commit per page: each incident is whole inside it.
            let mut batch = WriteBatch::new();
            let mut removed = RetentionReport::default();
            for (id, bytes) in page {
                let Ok(rec) = serde_json::from_slice::<Value>(&bytes) else {
                    continue; // not ours to judge: keep it
                };
                match self.closed_at(&rec) {
                    Some(t) if t < cutoff => {}
                    _ => continue,
                }
                self.remove_incident(
                    store,
                    &id,
                    &rec,
                    &mut batch,
                    archive.as_deref_mut(),
                    &mut removed,
                )
                .await?;
            }
            if batch.is_empty() {
                continue;
            }
            if let Some(out) = archive.as_deref_mut() {
                out.flush().map_err(archive_err)?;
            }
            store.commit(batch).await.map_err(Error::Store)?;
            report.incidents += removed.incidents;
            report.alerts += removed.alerts;
            report.timeline_entries += removed.timeline_entries;
            report.archived += removed.archived;
        }
        Ok(report)
    }

    /// Adds the deletes of one incident to `batch` and archives its timeline.
    async fn remove_incident<S: Store + ?Sized, W: Write + Send + ?Sized>(
        &self,
        store: &S,
        id: &str,
        rec: &Value,
        batch: &mut WriteBatch,
        archive: Option<&mut W>,
        report: &mut RetentionReport,
    ) -> Result<(), Error> {
        batch.delete(self.incidents, id);
        let mut alerts = 0;
        for key in self.alert_keys(rec) {
            let owner_ok = match store.get(Table::Alerts, &key).await? {
                None => false,
                Some(a) => match serde_json::from_slice::<Value>(&a) {
                    Ok(a) => a
                        .get(&self.alert_incident_field)
                        .and_then(|v| v.as_str())
                        .is_none_or(|owner| owner == id),
                    Err(_) => false,
                },
            };
            if owner_ok {
                batch.delete(Table::Alerts, key);
                alerts += 1;
            }
        }
        let mut entries = Vec::new();
        if self.timeline {
            entries = store
                .scan(Table::Timeline, Scan::prefix(format!("{id}/")))
                .await?;
            for (k, _) in &entries {
                batch.delete(Table::Timeline, k.clone());
            }
        }
        let mut archived = 0;
        if let Some(out) = archive {
            for (k, v) in &entries {
                let entry = serde_json::from_slice::<Value>(v)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(v).into_owned()));
                let line = serde_json::json!({ "incident": id, "key": k, "entry": entry });
                serde_json::to_writer(&mut *out, &line).map_err(|e| Error::File {
                    path: "timeline archive".into(),
                    source: std::io::Error::other(e),
                })?;
                out.write_all(b"\n").map_err(archive_err)?;
                archived += 1;
            }
        }
        report.incidents += 1;
        report.alerts += alerts;
        report.timeline_entries += entries.len() as u64;
        report.archived += archived;
        Ok(())
    }
}

fn archive_err(e: std::io::Error) -> Error {
    Error::File {
        path: "timeline archive".into(),
        source: e,
    }
}
