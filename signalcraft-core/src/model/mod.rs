//! The normalized data model: events, alerts, labels and fingerprints.

mod compact;
mod event;
mod labels;
mod raw_payload;

pub use compact::CompactAlert;
pub use event::{
    ActionEvent, ActionKind, Alert, AlertStatus, ChangeEvent, EVENT_SCHEMA, Event, Image, Link,
    RawPayload, Severity, Source,
};
pub(crate) use labels::eq_short;
pub use labels::{Annotations, Fingerprint, LabelView, Labels, LabelsBuilder};
