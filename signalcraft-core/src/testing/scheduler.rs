//! The [`Scheduler`] conformance suite. Every implementation runs it:
//!
//! ```ignore
//! signalcraft_core::testing::scheduler::run_scheduler_suite(|| async { MySched::new() }).await;
//! ```
//!
//! The factory must return a fresh, empty scheduler each time. Time is passed
//! explicitly (no clock, no sleeps).

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;

use crate::scheduler::{Job, JobKind, Scheduler};

/// Runs every case, each on a fresh scheduler from `factory`.
pub async fn run_scheduler_suite<F, Fut, S>(mut factory: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
    S: Scheduler,
{
    schedule_is_idempotent_by_id(&factory().await).await;
    claim_returns_due_jobs_in_order(&factory().await).await;
    claim_respects_limit_and_future(&factory().await).await;
    lease_expiry_redelivers_with_attempts(&factory().await).await;
    complete_and_cancel(&factory().await).await;
    cancel_prefix_removes_only_the_prefix(&factory().await).await;
    next_due_tracks_the_earliest_claimable(&factory().await).await;
    rearming_a_claimed_job_resets_its_lease(&factory().await).await;
    job_kinds_roundtrip(&factory().await).await;
}

/// 2026-01-01T00:00:00Z plus `secs` seconds.
pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("valid timestamp")
}

/// A group-flush job due at `t(secs)`.
pub fn job(id: &str, secs: i64) -> Job {
    Job {
        id: id.to_string(),
        due: t(secs),
        kind: JobKind::GroupFlush {
            group_key: format!("g-{id}"),
        },
        attempts: 0,
    }
}

const LEASE: Duration = Duration::from_secs(30);

fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

/// Scheduling an id twice keeps one job, with the latest due time and kind.
pub async fn schedule_is_idempotent_by_id<S: Scheduler + ?Sized>(s: &S) {
    s.schedule(job("a", 10)).await.expect("schedule");
    s.schedule(job("a", 10)).await.expect("schedule again");
    let mut moved = job("a", 50);
    moved.kind = JobKind::Handoff {
        schedule_id: "primary".into(),
    };
    s.schedule(moved.clone()).await.expect("re-arm");
    let pending = s.pending().await.expect("pending");
    assert_eq!(pending, vec![moved], "one job per id, re-armed");
    assert!(
        s.claim_due(t(20), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "the old due time no longer fires"
    );
    assert_eq!(
        ids(&s.claim_due(t(50), LEASE, 10).await.expect("claim")),
        ["a"]
    );
}

/// Due jobs come in (due, id) order; ties broken by id.
pub async fn claim_returns_due_jobs_in_order<S: Scheduler + ?Sized>(s: &S) {
    for (id, at) in [("c", 3), ("a", 1), ("b2", 2), ("b1", 2), ("z", 0)] {
        s.schedule(job(id, at)).await.expect("schedule");
    }
    let got = s.claim_due(t(3), LEASE, 100).await.expect("claim");
    assert_eq!(ids(&got), ["z", "a", "b1", "b2", "c"], "(due, id) order");
    assert!(
        got.iter().all(|j| j.attempts == 0),
        "first delivery has attempts 0"
    );
    let pending = s.pending().await.expect("pending");
    assert_eq!(
        ids(&pending),
        ["z", "a", "b1", "b2", "c"],
        "claimed jobs stay pending"
    );
}

/// `limit` caps a claim; jobs due after `now` are not claimed; a claimed job is not
/// claimed again while its lease runs.
pub async fn claim_respects_limit_and_future<S: Scheduler + ?Sized>(s: &S) {
    for i in 0..5 {
        s.schedule(job(&format!("j{i}"), i))
            .await
            .expect("schedule");
    }
    s.schedule(job("later", 1000)).await.expect("schedule");
    assert_eq!(
        ids(&s.claim_due(t(10), LEASE, 2).await.expect("claim")),
        ["j0", "j1"]
    );
    assert_eq!(
        ids(&s.claim_due(t(10), LEASE, 10).await.expect("claim")),
        ["j2", "j3", "j4"],
        "the rest, not the leased ones, not the future one"
    );
    assert!(
        s.claim_due(t(20), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leases hold"
    );
    assert!(
        s.claim_due(t(10), LEASE, 0)
            .await
            .expect("claim")
            .is_empty(),
        "limit 0"
    );
    assert!(
        s.claim_due(t(-100), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing due yet"
    );
}

/// A claimed job not completed before its lease expires is claimed again with
/// `attempts + 1`, and again after the next expiry.
pub async fn lease_expiry_redelivers_with_attempts<S: Scheduler + ?Sized>(s: &S) {
    s.schedule(job("esc", 0)).await.expect("schedule");
    let first = s.claim_due(t(0), LEASE, 10).await.expect("claim");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 0);
    assert!(
        s.claim_due(t(29), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "lease still running at 29 s"
    );
    let second = s.claim_due(t(30), LEASE, 10).await.expect("claim");
    assert_eq!(ids(&second), ["esc"], "redelivered when the lease expired");
    assert_eq!(second[0].attempts, 1, "attempts counts the lost run");
    assert_eq!(second[0].due, t(0), "due time unchanged");
    let third = s.claim_due(t(61), LEASE, 10).await.expect("claim");
    assert_eq!(third[0].attempts, 2);
    s.complete("esc").await.expect("complete");
    assert!(
        s.claim_due(t(1000), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "completed"
    );
    assert!(s.pending().await.expect("pending").is_empty());
}

/// `complete` removes a claimed job; `cancel` reports whether the job existed.
pub async fn complete_and_cancel<S: Scheduler + ?Sized>(s: &S) {
    s.schedule(job("a", 0)).await.expect("schedule");
    s.schedule(job("b", 0)).await.expect("schedule");
    s.schedule(job("c", 100)).await.expect("schedule");
    let got = s.claim_due(t(0), LEASE, 10).await.expect("claim");
    assert_eq!(ids(&got), ["a", "b"]);
    s.complete("a").await.expect("complete");
    s.complete("never-existed")
        .await
        .expect("completing a missing job is not an error");
    assert!(s.cancel("b").await.expect("cancel"), "cancel a claimed job");
    assert!(
        !s.cancel("b").await.expect("cancel"),
        "second cancel finds nothing"
    );
    assert!(s.cancel("c").await.expect("cancel"), "cancel a future job");
    assert!(s.pending().await.expect("pending").is_empty());
    assert!(
        s.claim_due(t(10_000), LEASE, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(s.next_due().await.expect("next_due"), None);
}

/// `cancel_prefix` removes exactly the ids with the prefix, claimed or not.
pub async fn cancel_prefix_removes_only_the_prefix<S: Scheduler + ?Sized>(s: &S) {
    for id in [
        "inc-1/esc/0",
        "inc-1/esc/1",
        "inc-1/notify/u1",
        "inc-10/esc/0",
        "inc-2/esc/0",
    ] {
        s.schedule(job(id, 5)).await.expect("schedule");
    }
    s.claim_due(t(5), LEASE, 1).await.expect("claim one");
    assert_eq!(s.cancel_prefix("inc-1/").await.expect("cancel_prefix"), 3);
    assert_eq!(
        ids(&s.pending().await.expect("pending")),
        ["inc-10/esc/0", "inc-2/esc/0"]
    );
    assert_eq!(s.cancel_prefix("nothing/").await.expect("cancel_prefix"), 0);
    assert_eq!(
        ids(&s.claim_due(t(5), LEASE, 10).await.expect("claim")),
        ["inc-10/esc/0", "inc-2/esc/0"]
    );
}

/// `next_due` is the earliest time a `claim_due` could return something: the
/// earliest due unclaimed job, or a lease expiry; `None` when empty.
pub async fn next_due_tracks_the_earliest_claimable<S: Scheduler + ?Sized>(s: &S) {
    assert_eq!(s.next_due().await.expect("next_due"), None, "empty");
    s.schedule(job("b", 20)).await.expect("schedule");
    s.schedule(job("a", 10)).await.expect("schedule");
    assert_eq!(s.next_due().await.expect("next_due"), Some(t(10)));
    let got = s.claim_due(t(10), LEASE, 10).await.expect("claim");
    assert_eq!(ids(&got), ["a"]);
    // "a" is leased until 40; "b" is due at 20.
    assert_eq!(
        s.next_due().await.expect("next_due"),
        Some(t(20)),
        "claimed job skipped"
    );
    s.complete("b").await.expect("complete");
    assert_eq!(
        s.next_due().await.expect("next_due"),
        Some(t(40)),
        "only a leased job left: its lease expiry"
    );
    s.complete("a").await.expect("complete");
    assert_eq!(s.next_due().await.expect("next_due"), None);
}

/// Scheduling the id of a claimed job re-arms it: the lease is dropped and the
/// new due time applies.
pub async fn rearming_a_claimed_job_resets_its_lease<S: Scheduler + ?Sized>(s: &S) {
    s.schedule(job("r", 0)).await.expect("schedule");
    assert_eq!(s.claim_due(t(0), LEASE, 10).await.expect("claim").len(), 1);
    s.schedule(job("r", 5)).await.expect("re-arm");
    let got = s.claim_due(t(5), LEASE, 10).await.expect("claim");
    assert_eq!(
        ids(&got),
        ["r"],
        "re-armed job due at 5 despite the lease until 30"
    );
    assert_eq!(got[0].attempts, 0, "a re-armed job starts over");
    assert_eq!(s.pending().await.expect("pending").len(), 1);
}

/// Every job kind (including embedder payloads) comes back as scheduled.
pub async fn job_kinds_roundtrip<S: Scheduler + ?Sized>(s: &S) {
    let kinds = vec![
        JobKind::Escalate {
            incident_id: "inc-1".into(),
            level: 2,
            repeat: 1,
        },
        JobKind::NotifyRule {
            incident_id: "inc-1".into(),
            user_id: "u1".into(),
            rule: 3,
        },
        JobKind::Delivery {
            notification_id: "n-9".into(),
            attempt: 4,
        },
        JobKind::Custom {
            name: "embedder".into(),
            payload: serde_json::json!({"nested": [1, "two", null], "ü": true}),
        },
    ];
    let mut want = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let j = Job {
            id: format!("k{i}"),
            due: t(i as i64),
            kind,
            attempts: 7,
        };
        s.schedule(j.clone()).await.expect("schedule");
        want.push(j);
    }
    assert_eq!(
        s.pending().await.expect("pending"),
        want,
        "pending returns jobs as scheduled"
    );
    let got = s.claim_due(t(100), LEASE, 10).await.expect("claim");
    assert_eq!(got, want, "claim returns jobs as scheduled (attempts kept)");
}
