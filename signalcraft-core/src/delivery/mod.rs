//! The channel-independent delivery policy: per-attempt timeout, retry with
//! exponential backoff and full jitter, failover chains, throttles, the notification
//! log and delivery health. (Filled in by the delivery work.)
