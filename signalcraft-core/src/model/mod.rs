//! The normalized data model: events, alerts, labels and fingerprints.

mod event;
mod labels;

pub use event::{
    ActionEvent, ActionKind, Alert, AlertStatus, ChangeEvent, EVENT_SCHEMA, Event, Image, Link,
    RawPayload, Severity, Source,
};
pub use labels::{Fingerprint, Labels};
