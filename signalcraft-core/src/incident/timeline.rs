//! The append-only incident timeline and who did what.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{AlertStatus, Fingerprint};

/// Who caused something.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A person (user id).
    User {
        /// User id.
        id: String,
    },
    /// An inbound integration (alert source, Slack, SMS reply gateway).
    Integration {
        /// Integration name.
        id: String,
    },
    /// SignalCraft itself (grouping, escalation, timers).
    System,
    /// A remediation plugin.
    Plugin {
        /// Plugin name.
        name: String,
    },
}

impl Actor {
    /// A user actor.
    pub fn user(id: impl Into<String>) -> Self {
        Actor::User { id: id.into() }
    }

    /// An integration actor.
    pub fn integration(id: impl Into<String>) -> Self {
        Actor::Integration { id: id.into() }
    }

    /// The user id when the actor is a user.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Actor::User { id } => Some(id),
            _ => None,
        }
    }

    /// A short `type:id` form for logs and audit targets.
    pub fn label(&self) -> String {
        match self {
            Actor::User { id } => format!("user:{id}"),
            Actor::Integration { id } => format!("integration:{id}"),
            Actor::System => "system".into(),
            Actor::Plugin { name } => format!("plugin:{name}"),
        }
    }
}

/// One timeline entry. Entries are never changed or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Position in the incident's timeline (0-based, gapless).
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// What a timeline entry records. Serialized with a `type` tag in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntryKind {
    /// An alert arrived (or changed status).
    Ingested {
        /// The alert.
        fingerprint: Fingerprint,
        /// Its status.
        status: AlertStatus,
        /// Its summary.
        summary: String,
    },
    /// Alerts were grouped into the incident's aggregation group.
    Grouped {
        /// Aggregation group key.
        group_key: String,
        /// Alerts in the group.
        alerts: usize,
    },
    /// The group was routed.
    Routed {
        /// Route id (path in the route tree, e.g. `route.routes[1]`).
        route: String,
        /// Receiver name.
        receiver: String,
        /// Service id, if the route names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// Escalation policy id, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        escalation_policy: Option<String>,
    },
    /// A notification was handed to the notifier.
    Notified {
        /// Notification id.
        notification_id: String,
        /// Channel name.
        channel: String,
        /// Target address.
        target: String,
        /// Firing or resolved.
        status: AlertStatus,
        /// Firing alerts included.
        firing: usize,
        /// Resolved alerts included.
        resolved: usize,
    },
    /// A delivery failed.
    DeliveryFailed {
        /// Notification id.
        notification_id: String,
        /// Channel name.
        channel: String,
        /// Redacted reason.
        reason: String,
    },
    /// Someone acknowledged.
    Acknowledged,
    /// The escalation policy moved to a level.
    Escalated {
        /// Level (1-based).
        level: u32,
        /// Who is targeted (user/schedule ids).
        #[serde(default)]
        targets: Vec<String>,
    },
    /// A person was paged.
    Paged {
        /// User id.
        user: String,
        /// Contact method / channel used.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        /// Optional message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Impact over.
    Mitigated,
    /// Resolved (by a person, a tool, or all alerts resolving).
    Resolved,
    /// Re-opened by a new firing alert.
    Reopened,
    /// Closed.
    Closed,
    /// A note.
    Note {
        /// Text.
        text: String,
    },
    /// A role was assigned.
    RoleAssigned {
        /// Role.
        role: super::Role,
        /// User id.
        user: String,
    },
    /// Assignment changed (policy or user).
    Reassigned {
        /// New escalation policy, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        escalation_policy: Option<String>,
        /// New assignees.
        #[serde(default)]
        assignees: Vec<String>,
    },
    /// A postmortem document was created.
    PostmortemCreated {
        /// Where it lives.
        url: String,
    },
    /// A remediation plugin ran.
    RemediationRun {
        /// Plugin name.
        plugin: String,
        /// Outcome (`success`, `failure`, …).
        status: String,
        /// Message from the plugin.
        #[serde(default)]
        message: String,
    },
    /// Anything else (extensions).
    Custom {
        /// Name.
        name: String,
        /// Payload.
        #[serde(default)]
        details: serde_json::Value,
    },
}

impl EntryKind {
    /// The snake_case type tag.
    pub fn type_name(&self) -> &'static str {
        match self {
            EntryKind::Ingested { .. } => "ingested",
            EntryKind::Grouped { .. } => "grouped",
            EntryKind::Routed { .. } => "routed",
            EntryKind::Notified { .. } => "notified",
            EntryKind::DeliveryFailed { .. } => "delivery_failed",
            EntryKind::Acknowledged => "acknowledged",
            EntryKind::Escalated { .. } => "escalated",
            EntryKind::Paged { .. } => "paged",
            EntryKind::Mitigated => "mitigated",
            EntryKind::Resolved => "resolved",
            EntryKind::Reopened => "reopened",
            EntryKind::Closed => "closed",
            EntryKind::Note { .. } => "note",
            EntryKind::RoleAssigned { .. } => "role_assigned",
            EntryKind::Reassigned { .. } => "reassigned",
            EntryKind::PostmortemCreated { .. } => "postmortem_created",
            EntryKind::RemediationRun { .. } => "remediation_run",
            EntryKind::Custom { .. } => "custom",
        }
    }
}

/// Encodes a run of entries of one incident with consecutive `seq`s as one stored
/// record (key: the first entry's [`Incident::timeline_key`](super::Incident::timeline_key)):
/// a lone entry as its JSON object, several as one compact object,
/// `{"v":2,"seq":<first seq>,"e":[...]}`, whose entries leave out their `seq` (they
/// are consecutive) and their `at` and `actor` when equal to the previous entry's.
/// A decision that appends many entries at once (an incident's first notification
/// writes one per member alert, then grouped, routed and notified) thus costs one
/// store write of ~1.5 KB instead of one per entry (or ~2.4 KB as a plain array for
/// a 10-alert group). [`decode_stored`] reads every form, including plain arrays of
/// entries (written before).
pub fn encode_run<E: std::borrow::Borrow<TimelineEntry>>(
    entries: &[E],
) -> serde_json::Result<Vec<u8>> {
    // An entry is ~100-250 bytes of JSON: size the buffer once instead of growing it
    // from serde_json's default (an incident's first decision writes a dozen entries).
    let mut out = Vec::with_capacity(128 * entries.len() + 64);
    match entries {
        [one] => serde_json::to_writer(&mut out, one.borrow())?,
        many => serde_json::to_writer(
            &mut out,
            &RunRef {
                v: 2,
                seq: many.first().map_or(0, |e| e.borrow().seq),
                e: RunEntries(many),
            },
        )?,
    }
    Ok(out)
}

/// The prefix of a compact run ([`encode_run`]).
const RUN_PREFIX: &[u8] = b"{\"v\":2,";

#[derive(Serialize)]
#[serde(bound(serialize = "E: std::borrow::Borrow<TimelineEntry>"))]
struct RunRef<'a, E> {
    v: u8,
    seq: u64,
    e: RunEntries<'a, E>,
}

struct RunEntries<'a, E>(&'a [E]);

impl<E: std::borrow::Borrow<TimelineEntry>> Serialize for RunEntries<'_, E> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        let mut prev: Option<&TimelineEntry> = None;
        for e in self.0 {
            let e = e.borrow();
            seq.serialize_element(&RunEntryRef {
                at: (prev.map(|p| p.at) != Some(e.at)).then_some(e.at),
                actor: (prev.map(|p| &p.actor) != Some(&e.actor)).then_some(&e.actor),
                kind: &e.kind,
            })?;
            prev = Some(e);
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct RunEntryRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a Actor>,
    #[serde(flatten)]
    kind: &'a EntryKind,
}

#[derive(Deserialize)]
struct Run {
    seq: u64,
    e: Vec<RunEntry>,
}

#[derive(Deserialize)]
struct RunEntry {
    #[serde(default)]
    at: Option<Timestamp>,
    #[serde(default)]
    actor: Option<Actor>,
    #[serde(flatten)]
    kind: EntryKind,
}

/// Decodes one stored timeline record ([`encode_run`]): the entries it holds, in
/// `seq` order. A compact run whose first entry lacks `at` or `actor` is an error.
pub fn decode_stored(bytes: &[u8]) -> serde_json::Result<Vec<TimelineEntry>> {
    use serde::de::Error;
    let start = bytes.trim_ascii_start();
    if start.first() == Some(&b'[') {
        return serde_json::from_slice(bytes);
    }
    if !start.starts_with(RUN_PREFIX) {
        return serde_json::from_slice(bytes).map(|e| vec![e]);
    }
    let run: Run = serde_json::from_slice(bytes)?;
    let mut out: Vec<TimelineEntry> = Vec::with_capacity(run.e.len());
    for (i, e) in run.e.into_iter().enumerate() {
        let prev = out.last();
        let (Some(at), Some(actor)) = (
            e.at.or(prev.map(|p| p.at)),
            e.actor.or_else(|| prev.map(|p| p.actor.clone())),
        ) else {
            return Err(serde_json::Error::custom(
                "timeline run: first entry without `at` or `actor`",
            ));
        };
        out.push(TimelineEntry {
            seq: run.seq + i as u64,
            at,
            actor,
            kind: e.kind,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_a_lone_entry_keeps_the_single_form() {
        let entry = |seq: u64| TimelineEntry {
            seq,
            at: Timestamp::UNIX_EPOCH,
            actor: Actor::System,
            kind: EntryKind::Grouped {
                group_key: format!("g{seq}"),
                alerts: 2,
            },
        };
        let one = encode_run(&[entry(4)]).unwrap();
        assert_eq!(
            one,
            serde_json::to_vec(&entry(4)).unwrap(),
            "lone entry: as before"
        );
        assert_eq!(decode_stored(&one).unwrap(), vec![entry(4)]);
        let run = vec![entry(0), entry(1), entry(2)];
        let bytes = encode_run(&run).unwrap();
        assert!(bytes.starts_with(RUN_PREFIX));
        assert_eq!(decode_stored(&bytes).unwrap(), run);
        // Runs written before as a plain array still read.
        let plain = serde_json::to_vec(&run).unwrap();
        assert_eq!(decode_stored(&plain).unwrap(), run);
        assert!(
            decode_stored(b"{\"seq\":1}").is_err(),
            "an entry missing fields is an error"
        );
    }

    /// A run starting at any seq, with times and actors that change, repeat and
    /// change back, and entry kinds with and without fields, reads back whole; the
    /// repeated `at` and `actor` are written once.
    #[test]
    fn compact_runs_keep_every_field_and_write_repeats_once() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:00:01.5Z".parse().unwrap();
        let prom = Actor::integration("prom");
        let fp = crate::model::Fingerprint::parse("0000000000000abc").unwrap();
        let kinds = [
            (
                t0,
                prom.clone(),
                EntryKind::Ingested {
                    fingerprint: fp,
                    status: AlertStatus::Firing,
                    summary: "disk full".into(),
                },
            ),
            (
                t0,
                prom.clone(),
                EntryKind::Ingested {
                    fingerprint: fp,
                    status: AlertStatus::Resolved,
                    summary: "".into(),
                },
            ),
            (
                t1,
                Actor::System,
                EntryKind::Grouped {
                    group_key: "g".into(),
                    alerts: 2,
                },
            ),
            (t1, Actor::System, EntryKind::Acknowledged),
            (
                t1,
                Actor::user("ann"),
                EntryKind::Note { text: "hi".into() },
            ),
            (
                t0,
                prom.clone(),
                EntryKind::Custom {
                    name: "x".into(),
                    details: serde_json::json!({"at": 1, "actor": "not me"}),
                },
            ),
        ];
        let run: Vec<TimelineEntry> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, (at, actor, kind))| TimelineEntry {
                seq: 7 + i as u64,
                at,
                actor,
                kind,
            })
            .collect();
        let bytes = encode_run(&run).unwrap();
        assert_eq!(decode_stored(&bytes).unwrap(), run);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.matches("\"prom\"").count(), 2, "{text}");
        assert!(!text.contains("\"seq\":8"), "{text}");
        assert!(
            decode_stored(b"{\"v\":2,\"seq\":0,\"e\":[{\"type\":\"acknowledged\"}]}").is_err(),
            "a first entry without at/actor is an error"
        );
    }

    #[test]
    fn entry_json_form_is_flat_and_tagged() {
        let e = TimelineEntry {
            seq: 3,
            at: "2026-01-01T00:00:00Z".parse().unwrap(),
            actor: Actor::user("ann"),
            kind: EntryKind::Note { text: "hi".into() },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "note");
        assert_eq!(v["text"], "hi");
        assert_eq!(v["actor"]["type"], "user");
        assert_eq!(v["actor"]["id"], "ann");
        let back: TimelineEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.kind.type_name(), "note");
    }
}
