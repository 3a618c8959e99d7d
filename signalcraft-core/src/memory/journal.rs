use std::collections::VecDeque;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::journal::{Journal, JournalSeq, OnDurable};
use crate::store::StoreError;

/// A [`Journal`] kept in process memory, for tests and for embedders without
/// persistence. `append` returns at once (nothing is durable); released records are
/// dropped right away. `append_then` runs its callback inside the append, under the
/// journal's lock, so callbacks run one at a time in sequence order. Sequence numbers follow the trait contract: they start after
/// the number given to [`MemoryJournal::continuing_after`] (0 for
/// [`MemoryJournal::new`]), ascend by one and are never reused.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Records not yet released, in sequence order.
    records: VecDeque<(JournalSeq, Vec<u8>)>,
    /// The highest sequence number handed out (or the starting point).
    last: JournalSeq,
}

impl MemoryJournal {
    /// An empty journal whose first record gets sequence number 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty journal whose first record gets `seq + 1`, as a journal reopened
    /// with a store that has applied everything up to `seq`.
    pub fn continuing_after(seq: JournalSeq) -> Self {
        MemoryJournal {
            state: Mutex::new(State {
                records: VecDeque::new(),
                last: seq,
            }),
        }
    }

    /// How many records are held (appended and not yet released).
    pub fn len(&self) -> usize {
        self.state.lock().records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `record` and runs `on_durable` (if any) with its number under the lock.
    fn push(
        &self,
        record: Vec<u8>,
        on_durable: Option<OnDurable>,
    ) -> Result<JournalSeq, StoreError> {
        let mut state = self.state.lock();
        let seq = state
            .last
            .checked_add(1)
            .ok_or_else(|| StoreError::Io("journal sequence numbers exhausted".into()))?;
        state.last = seq;
        state.records.push_back((seq, record));
        if let Some(f) = on_durable {
            f(seq);
        }
        Ok(seq)
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn append(&self, record: Vec<u8>) -> Result<JournalSeq, StoreError> {
        self.push(record, None)
    }

    async fn append_then(
        &self,
        record: Vec<u8>,
        on_durable: OnDurable,
    ) -> Result<JournalSeq, StoreError> {
        self.push(record, Some(on_durable))
    }

    async fn replay(&self, after: JournalSeq) -> Result<Vec<(JournalSeq, Vec<u8>)>, StoreError> {
        let state = self.state.lock();
        // Records are in ascending order: skip the prefix at or below `after`.
        let start = state.records.partition_point(|(seq, _)| *seq <= after);
        Ok(state.records.range(start..).cloned().collect())
    }

    async fn release(&self, through: JournalSeq) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        while state
            .records
            .front()
            .is_some_and(|(seq, _)| *seq <= through)
        {
            state.records.pop_front();
        }
        Ok(())
    }

    fn last_seq(&self) -> JournalSeq {
        self.state.lock().last
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn appends_number_from_one_and_replay_returns_records_after() {
        let j = MemoryJournal::new();
        assert_eq!(j.last_seq(), 0);
        assert_eq!(j.append(b"a".to_vec()).await.unwrap(), 1);
        assert_eq!(j.append(b"b".to_vec()).await.unwrap(), 2);
        assert_eq!(j.append(Vec::new()).await.unwrap(), 3);
        assert_eq!(j.last_seq(), 3);
        assert_eq!(
            j.replay(0).await.unwrap(),
            vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, Vec::new())]
        );
        assert_eq!(j.replay(2).await.unwrap(), vec![(3, Vec::new())]);
        assert!(j.replay(3).await.unwrap().is_empty());
        assert!(j.replay(99).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn continuing_after_starts_after_the_given_seq() {
        let j = MemoryJournal::continuing_after(41);
        assert_eq!(j.last_seq(), 41);
        assert_eq!(j.append(b"x".to_vec()).await.unwrap(), 42);
        assert_eq!(j.replay(0).await.unwrap(), vec![(42, b"x".to_vec())]);
    }

    #[tokio::test]
    async fn release_drops_records_but_never_reuses_numbers() {
        let j = MemoryJournal::new();
        for i in 0..5u8 {
            j.append(vec![i]).await.unwrap();
        }
        j.release(3).await.unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!(j.replay(0).await.unwrap(), vec![(4, vec![3]), (5, vec![4])]);
        j.release(10).await.unwrap();
        assert!(j.is_empty());
        assert_eq!(j.append(vec![9]).await.unwrap(), 6);
        assert_eq!(j.replay(0).await.unwrap(), vec![(6, vec![9])]);
    }

    #[tokio::test]
    async fn concurrent_appends_get_distinct_contiguous_numbers() {
        let j = Arc::new(MemoryJournal::new());
        let mut tasks = Vec::new();
        for t in 0..16u8 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..10u8 {
                    seqs.push((j.append(vec![t, i]).await.unwrap(), vec![t, i]));
                }
                seqs
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        let seqs: Vec<_> = all.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=160).collect::<Vec<_>>());
        // Replay holds each record under the number its append returned.
        assert_eq!(j.replay(0).await.unwrap(), all);
    }

    #[tokio::test]
    async fn append_then_runs_callbacks_in_sequence_order() {
        let j = Arc::new(MemoryJournal::continuing_after(10));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for t in 0..8u8 {
            let (j, seen) = (j.clone(), seen.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..5 {
                    let seen = seen.clone();
                    let seq = j
                        .append_then(vec![t], Box::new(move |s| seen.lock().push(s)))
                        .await
                        .unwrap();
                    mine.push(seq);
                }
                mine
            }));
        }
        let mut returned = Vec::new();
        for t in tasks {
            returned.extend(t.await.unwrap());
        }
        returned.sort();
        // Every callback ran once, in sequence order, with the number append returned.
        assert_eq!(*seen.lock(), (11..=50).collect::<Vec<_>>());
        assert_eq!(returned, (11..=50).collect::<Vec<_>>());
    }

    #[test]
    fn usable_as_a_trait_object() {
        let j: Arc<dyn Journal> = Arc::new(MemoryJournal::continuing_after(7));
        assert_eq!(j.last_seq(), 7);
    }
}
