//! Inbound sources: one file per monitoring tool, each with its config beside it,
//! listed in one registry. (Filled in by the providers work.)
