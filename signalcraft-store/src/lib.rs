//! # signalcraft-store
//!
//! Durable implementations of `signalcraft_core::store::Store` and
//! `signalcraft_core::scheduler::Scheduler`: redb as the embedded default, with room
//! for PostgreSQL. (Filled in by the store work.)
