//! In-memory [`Store`](crate::store::Store) and [`Scheduler`](crate::scheduler::Scheduler)
//! for tests and for embedders who do not need persistence. Nothing survives the process.

mod scheduler;
mod store;

pub use scheduler::MemoryScheduler;
pub use store::MemoryStore;
