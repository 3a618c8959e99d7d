//! In-memory [`Store`](crate::store::Store), [`Scheduler`](crate::scheduler::Scheduler)
//! and [`Journal`](crate::journal::Journal) for tests and for embedders who do not need
//! persistence. Nothing survives the process.

mod journal;
mod scheduler;
mod store;

pub use journal::MemoryJournal;
pub use scheduler::MemoryScheduler;
pub use store::MemoryStore;
