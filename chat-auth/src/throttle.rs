//! Login throttling: a few free failures per key, then exponential back-off.
//!
//! Pure: the time is passed in as an [`Instant`], nothing here reads a clock, sleeps or spawns,
//! so tests run in virtual time. Memory is bounded: at most [`ThrottleConfig::max_keys`] keys
//! per [`Throttle`] (the one whose last failure is oldest is forgotten to make room).
//!
//! The policy with the defaults ([`ThrottleConfig::default`]): the first 10 failures of a key
//! cost nothing; after the 10th, the next attempt must wait 1 s after the last failure, after
//! the 11th 2 s, then 4 s, 8 s, … up to 15 minutes. A success forgets the key; so does an hour
//! without a failure.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long to wait before the next attempt (for a `Retry-After` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up (never 0), as `Retry-After` wants them.
    pub fn as_secs_ceil(&self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// The limits of a [`Throttle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures that cost nothing (default 10).
    pub free_failures: u32,
    /// The wait after the first failure past the free ones; doubled by each further failure
    /// (default 1 s).
    pub base_delay: Duration,
    /// The longest wait (default 15 minutes).
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten (default 1 hour).
    pub forget_after: Duration,
    /// Most keys remembered (default 10 000, about 1 MiB); the one whose last failure is
    /// oldest is evicted first.
    pub max_keys: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            free_failures: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            max_keys: 10_000,
        }
    }
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    seq: u64,
}

/// Failure counts per key (an IP, an account name, …).
#[derive(Debug)]
pub struct Throttle<K> {
    config: ThrottleConfig,
    entries: HashMap<K, Entry>,
    /// The keys by (last failure, insertion sequence): the first is the one to evict.
    by_age: BTreeMap<(Instant, u64), K>,
    next_seq: u64,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// An empty throttle with `config`.
    pub fn new(config: ThrottleConfig) -> Throttle<K> {
        Throttle {
            config,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Whether `key` may try now, or how long it must wait. Changes nothing.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), RetryAfter> {
        let Some(entry) = self.entries.get(key) else {
            return Ok(());
        };
        let since = now.saturating_duration_since(entry.last_failure);
        if since >= self.config.forget_after || entry.failures < self.config.free_failures {
            return Ok(());
        }
        let delay = self.delay(entry.failures);
        if since >= delay {
            Ok(())
        } else {
            Err(RetryAfter(delay - since))
        }
    }

    /// The wait after `failures` failures (at least `free_failures` of them).
    fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(self.config.free_failures).min(63);
        let factor = 1u64 << doublings;
        let nanos = self
            .config
            .base_delay
            .as_nanos()
            .saturating_mul(u128::from(factor));
        let max = self.config.max_delay.as_nanos();
        if nanos >= max {
            self.config.max_delay
        } else {
            // nanos < max_delay's nanos, which fits a Duration.
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        }
    }

    /// Records a failed attempt of `key` at `now`.
    pub fn failed(&mut self, key: &K, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(entry) = self.entries.get_mut(key) {
            self.by_age.remove(&(entry.last_failure, entry.seq));
            if now.saturating_duration_since(entry.last_failure) >= self.config.forget_after {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            entry.seq = seq;
            self.by_age.insert((now, seq), key.clone());
            return;
        }
        if self.config.max_keys == 0 {
            return;
        }
        while self.entries.len() >= self.config.max_keys {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.entries.insert(
            key.clone(),
            Entry {
                failures: 1,
                last_failure: now,
                seq,
            },
        );
        self.by_age.insert((now, seq), key.clone());
    }

    /// Records a success: `key` is forgotten.
    pub fn succeeded(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.by_age.remove(&(entry.last_failure, entry.seq));
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No key remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Failures recorded for `key` (0 when forgotten or never seen).
    pub fn failures(&self, key: &K) -> u32 {
        self.entries.get(key).map_or(0, |e| e.failures)
    }
}

/// The login throttle a server keeps: one [`Throttle`] per client address and one per account
/// name, in separate tables so that a flood of addresses cannot evict an account's count.
///
/// IPv6 addresses are counted per /64 (one host usually has a whole /64 to rotate through).
/// Account names should be passed in the form the account store compares them in.
#[derive(Debug)]
pub struct LoginThrottle {
    by_ip: Throttle<IpAddr>,
    by_account: Throttle<String>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(ThrottleConfig::default())
    }
}

impl LoginThrottle {
    /// Both tables with `config`.
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            by_ip: Throttle::new(config),
            by_account: Throttle::new(config),
        }
    }

    /// Whether a login from `ip` for `account` may be tried now; the longer wait if not.
    pub fn check(&self, ip: IpAddr, account: &str, now: Instant) -> Result<(), RetryAfter> {
        let by_ip = self.by_ip.check(&ip_key(ip), now);
        let by_account = self.by_account.check(&account.to_owned(), now);
        match (by_ip, by_account) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Ok(())) | (Ok(()), Err(a)) => Err(a),
            (Err(a), Err(b)) => Err(a.max_of(b)),
        }
    }

    /// A failed login from `ip` for `account`.
    pub fn failed(&mut self, ip: IpAddr, account: &str, now: Instant) {
        self.by_ip.failed(&ip_key(ip), now);
        self.by_account.failed(&account.to_owned(), now);
    }

    /// A successful login for `account`: its count is forgotten. The address's count is not
    /// (an attacker could otherwise clear it by logging into an account of their own between
    /// guesses); it fades after [`ThrottleConfig::forget_after`].
    pub fn succeeded(&mut self, account: &str) {
        self.by_account.succeeded(&account.to_owned());
    }
}

impl RetryAfter {
    fn max_of(self, other: RetryAfter) -> RetryAfter {
        RetryAfter(self.0.max(other.0))
    }
}

/// The key an address is counted under: itself for IPv4 (and IPv4-mapped IPv6), its /64 for
/// IPv6.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}
