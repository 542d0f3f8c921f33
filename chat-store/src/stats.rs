//! [`Stats`]: what the storage thread has done, as atomics any thread can read (for `/metrics`
//! and `/readyz`) without asking the thread.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the commit-latency histogram's buckets; a last, implicit one is +Inf.
pub const COMMIT_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Counters and gauges of one store. Every read is a relaxed atomic load.
#[derive(Debug)]
pub struct Stats {
    stored: AtomicU64,
    batches: AtomicU64,
    commit_nanos_sum: AtomicU64,
    commit_nanos_max: AtomicU64,
    /// Per bucket (not cumulative); the last is +Inf.
    commit_buckets: [AtomicU64; COMMIT_BUCKETS.len() + 1],
    errors: AtomicU64,
    pruned: AtomicU64,
    db_bytes: AtomicU64,
    queued: AtomicU64,
    healthy: AtomicBool,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            stored: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            commit_nanos_sum: AtomicU64::new(0),
            commit_nanos_max: AtomicU64::new(0),
            commit_buckets: Default::default(),
            errors: AtomicU64::new(0),
            pruned: AtomicU64::new(0),
            db_bytes: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        }
    }
}

impl Stats {
    /// Messages committed (room and direct).
    pub fn stored_total(&self) -> u64 {
        self.stored.load(Relaxed)
    }

    /// Transactions of appends committed.
    pub fn batches_total(&self) -> u64 {
        self.batches.load(Relaxed)
    }

    /// Seconds spent in committed append transactions, summed.
    pub fn commit_seconds_sum(&self) -> f64 {
        Duration::from_nanos(self.commit_nanos_sum.load(Relaxed)).as_secs_f64()
    }

    /// The longest committed append transaction, in seconds.
    pub fn commit_seconds_max(&self) -> f64 {
        Duration::from_nanos(self.commit_nanos_max.load(Relaxed)).as_secs_f64()
    }

    /// The commit-latency histogram, Prometheus style: `(upper bound in seconds, cumulative
    /// count)` for each of [`COMMIT_BUCKETS`], then `(f64::INFINITY, batches_total)`.
    pub fn commit_seconds_buckets(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        let bounds = COMMIT_BUCKETS.iter().copied().chain([f64::INFINITY]);
        bounds
            .zip(&self.commit_buckets)
            .map(|(bound, count)| {
                total += count.load(Relaxed);
                (bound, total)
            })
            .collect()
    }

    /// Failed storage operations: append transactions, fetches and retention steps.
    pub fn errors_total(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    /// Messages deleted by retention.
    pub fn pruned_total(&self) -> u64 {
        self.pruned.load(Relaxed)
    }

    /// Bytes on disk of `chat.db` plus its WAL, refreshed after every commit.
    pub fn db_bytes(&self) -> u64 {
        self.db_bytes.load(Relaxed)
    }

    /// Requests (appends and fetches) submitted and not yet taken by the storage thread.
    pub fn queued(&self) -> u64 {
        self.queued.load(Relaxed)
    }

    /// `false` from a failed append transaction until the next one that commits.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    pub(crate) fn committed(&self, messages: usize, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.stored.fetch_add(messages as u64, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        self.commit_nanos_sum.fetch_add(nanos, Relaxed);
        self.commit_nanos_max.fetch_max(nanos, Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = COMMIT_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(COMMIT_BUCKETS.len());
        self.commit_buckets[bucket].fetch_add(1, Relaxed);
        self.healthy.store(true, Relaxed);
    }

    pub(crate) fn write_failed(&self) {
        self.errors.fetch_add(1, Relaxed);
        self.healthy.store(false, Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn pruned(&self, rows: usize) {
        self.pruned.fetch_add(rows as u64, Relaxed);
    }

    pub(crate) fn enqueued(&self) {
        self.queued.fetch_add(1, Relaxed);
    }

    pub(crate) fn dequeued(&self) {
        self.queued.fetch_sub(1, Relaxed);
    }

    /// Re-reads the sizes of `db` and `db-wal` (a missing file counts 0).
    pub(crate) fn refresh_db_bytes(&self, db: &Path) {
        let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let wal = format!("{}-wal", db.display());
        self.db_bytes
            .store(size(db) + size(Path::new(&wal)), Relaxed);
    }
}
