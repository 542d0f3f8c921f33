//! Login throttling in virtual time.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use chat_auth::throttle::{LoginThrottle, RetryAfter, Throttle, ThrottleConfig};

const S: Duration = Duration::from_secs(1);

#[test]
fn ten_free_failures_then_exponential_back_off_capped_at_15_minutes() {
    let t0 = Instant::now();
    let mut t = Throttle::new(ThrottleConfig::default());
    let key = "alice".to_owned();
    for _ in 0..10 {
        assert_eq!(t.check(&key, t0), Ok(()));
        t.failed(&key, t0);
    }
    // After the 10th failure: 1 s.
    assert_eq!(t.check(&key, t0), Err(RetryAfter(S)));
    assert_eq!(t.check(&key, t0 + S / 2), Err(RetryAfter(S / 2)));
    assert_eq!(t.check(&key, t0 + S), Ok(()));
    // Then 2 s, 4 s, 8 s, …
    let mut now = t0 + S;
    for expected in [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900] {
        t.failed(&key, now);
        assert_eq!(t.check(&key, now), Err(RetryAfter(expected * S)));
        now += expected * S;
        assert_eq!(t.check(&key, now), Ok(()));
    }
    assert_eq!(t.failures(&key), 21);
    // Many more failures: still capped, never overflows.
    for _ in 0..200 {
        t.failed(&key, now);
    }
    assert_eq!(t.check(&key, now), Err(RetryAfter(900 * S)));
    assert_eq!(RetryAfter(900 * S).as_secs_ceil(), 900);
    assert_eq!(RetryAfter(S / 3).as_secs_ceil(), 1);
    assert_eq!(RetryAfter(S * 3 / 2).as_secs_ceil(), 2);
}

#[test]
fn success_and_time_forget_a_key() {
    let t0 = Instant::now();
    let mut t = Throttle::new(ThrottleConfig::default());
    let key = 1u32;
    for _ in 0..12 {
        t.failed(&key, t0);
    }
    assert!(t.check(&key, t0).is_err());
    t.succeeded(&key);
    assert_eq!(t.check(&key, t0), Ok(()));
    assert!(t.is_empty());

    for _ in 0..12 {
        t.failed(&key, t0);
    }
    let later = t0 + Duration::from_secs(3600);
    assert_eq!(t.check(&key, later), Ok(()));
    t.failed(&key, later);
    assert_eq!(t.failures(&key), 1, "an hour without failures starts over");
}

#[test]
fn memory_is_bounded_and_the_oldest_key_is_evicted() {
    let t0 = Instant::now();
    let mut t = Throttle::new(ThrottleConfig {
        max_keys: 3,
        ..ThrottleConfig::default()
    });
    for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
        t.failed(&key, t0 + i as u32 * S);
    }
    // "a" fails again: now "b" is the oldest.
    t.failed(&"a", t0 + 10 * S);
    t.failed(&"d", t0 + 11 * S);
    assert_eq!(t.len(), 3);
    assert_eq!(t.failures(&"b"), 0, "evicted");
    assert_eq!(t.failures(&"a"), 2);
    assert_eq!(t.failures(&"c"), 1);
    assert_eq!(t.failures(&"d"), 1);
    for i in 0..1000u32 {
        t.failed(&"x", t0 + i * S);
    }
    assert_eq!(t.len(), 3);

    let mut none = Throttle::new(ThrottleConfig {
        max_keys: 0,
        ..ThrottleConfig::default()
    });
    none.failed(&"a", t0);
    assert!(none.is_empty());
}

#[test]
fn login_throttle_counts_addresses_and_accounts_separately() {
    let t0 = Instant::now();
    let mut t = LoginThrottle::default();
    let ip: IpAddr = "192.0.2.1".parse().expect("ip");
    let other_ip: IpAddr = "192.0.2.2".parse().expect("ip");
    // One address guessing many accounts is slowed by its address.
    for i in 0..10 {
        t.failed(ip, &format!("user{i}"), t0);
    }
    assert_eq!(t.check(ip, "someone", t0), Err(RetryAfter(S)));
    assert_eq!(t.check(other_ip, "someone", t0), Ok(()));
    // Many addresses guessing one account are slowed by the account.
    for i in 0..11u8 {
        t.failed(IpAddr::from([198, 51, 100, i]), "alice", t0);
    }
    assert_eq!(t.check(other_ip, "alice", t0), Err(RetryAfter(2 * S)));
    // Both: the longer wait.
    assert_eq!(t.check(ip, "alice", t0), Err(RetryAfter(2 * S)));
    // A success clears the account, not the address.
    t.succeeded("alice");
    assert_eq!(t.check(other_ip, "alice", t0), Ok(()));
    assert_eq!(t.check(ip, "alice", t0), Err(RetryAfter(S)));
}

#[test]
fn ipv6_addresses_are_counted_per_64() {
    let t0 = Instant::now();
    let mut t = LoginThrottle::default();
    for i in 0..10u16 {
        let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().expect("ip");
        t.failed(ip, &format!("u{i}"), t0);
    }
    let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
    let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
    assert!(t.check(same_64, "x", t0).is_err());
    assert_eq!(t.check(other_64, "x", t0), Ok(()));
    // An IPv4-mapped address counts as the IPv4 address.
    let v4: IpAddr = "192.0.2.9".parse().expect("ip");
    for i in 0..10 {
        t.failed(v4, &format!("m{i}"), t0);
    }
    let mapped: IpAddr = "::ffff:192.0.2.9".parse().expect("ip");
    assert!(t.check(mapped, "y", t0).is_err());
}
