//! Who a client is on the network, and how many connections each address holds.
//!
//! A client's address is its TCP peer's, unless the peer is a reverse proxy the operator trusts
//! (`--trusted-proxy`): then it is the last address of `X-Forwarded-For` that is not itself a
//! trusted proxy (the rightmost is the one the trusted proxy saw; anything to its left came
//! from the client and could be forged). Without a trusted proxy `X-Forwarded-For` is ignored,
//! so nobody can pick the address they are counted under.
//!
//! Each address may hold at most `--max-connections-per-ip` connections at once.

use std::collections::HashMap;
use std::net::IpAddr;

/// Open connections per client address, and the limit.
#[derive(Debug)]
pub struct ClientAddrs {
    trusted: Vec<IpAddr>,
    /// 0: no limit.
    limit: usize,
    open: HashMap<IpAddr, usize>,
}

impl ClientAddrs {
    pub fn new(trusted: Vec<IpAddr>, limit: usize) -> Self {
        ClientAddrs {
            trusted,
            limit,
            open: HashMap::new(),
        }
    }

    /// Whether connections from `peer` are a trusted proxy's (their client is named in
    /// `X-Forwarded-For`).
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted.contains(&canonical(peer))
    }

    /// The scheme a request from `peer` reached the server by: `https` over native TLS
    /// (`tls`); from a trusted proxy, the one its `X-Forwarded-Proto` names (the first entry:
    /// the scheme the client used with the outermost proxy); otherwise `http`. The Origin
    /// check expects a page of that scheme, and a session cookie is `Secure` under `https`.
    pub fn scheme(&self, peer: IpAddr, tls: bool, forwarded_proto: Option<&str>) -> &'static str {
        if tls {
            return "https";
        }
        if self.is_trusted_proxy(peer) {
            match forwarded_proto
                .and_then(|p| p.split(',').next())
                .map(str::trim)
            {
                Some(p) if p.eq_ignore_ascii_case("https") => return "https",
                Some(p) if p.eq_ignore_ascii_case("http") => return "http",
                _ => {}
            }
        }
        "http"
    }

    /// The client's address: `peer`, or, behind a trusted proxy, the address it forwarded for.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted_proxy(peer) {
            return peer;
        }
        let Some(list) = forwarded_for else {
            return peer;
        };
        for entry in list.rsplit(',') {
            let Some(ip) = parse_forwarded(entry.trim()) else {
                // A garbled entry: nothing to its left can be trusted either.
                return peer;
            };
            if !self.is_trusted_proxy(ip) {
                return ip;
            }
        }
        peer
    }

    /// Counts one more connection from `ip`, unless that address is at its limit.
    pub fn admit(&mut self, ip: IpAddr) -> bool {
        let open = self.open.entry(ip).or_insert(0);
        if self.limit > 0 && *open >= self.limit {
            if *open == 0 {
                self.open.remove(&ip);
            }
            return false;
        }
        *open += 1;
        true
    }

    /// A connection counted under `ip` ended.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(open) = self.open.get_mut(&ip) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// Addresses holding connections now (for tests and metrics).
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.len()
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]` or with a port.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse().ok())
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let addrs = ClientAddrs::new(vec![ip("10.0.0.1"), ip("10.0.0.2")], 2);
        let cases = [
            // (peer, X-Forwarded-For, client)
            ("192.0.2.7", Some("203.0.113.9"), "192.0.2.7"), // not a proxy: ignored
            ("10.0.0.1", None, "10.0.0.1"),
            ("10.0.0.1", Some("203.0.113.9"), "203.0.113.9"),
            ("10.0.0.1", Some("6.6.6.6, 203.0.113.9"), "203.0.113.9"), // forged left part
            ("10.0.0.1", Some("203.0.113.9, 10.0.0.2"), "203.0.113.9"), // a chain of proxies
            ("10.0.0.1", Some("10.0.0.2"), "10.0.0.1"),
            ("10.0.0.1", Some("garbage"), "10.0.0.1"),
            ("10.0.0.1", Some("203.0.113.9:4711"), "203.0.113.9"),
            ("10.0.0.1", Some("[2001:db8::1]"), "2001:db8::1"),
            ("::ffff:10.0.0.1", Some("203.0.113.9"), "203.0.113.9"),
        ];
        for (peer, xff, client) in cases {
            assert_eq!(addrs.client_ip(ip(peer), xff), ip(client), "{peer} {xff:?}");
        }
    }

    #[test]
    fn each_address_holds_at_most_the_limit_and_forgets_when_done() {
        let mut addrs = ClientAddrs::new(Vec::new(), 2);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(addrs.admit(a));
        assert!(addrs.admit(a));
        assert!(!addrs.admit(a), "a third connection from one address");
        assert!(addrs.admit(b), "another address is not affected");
        addrs.release(a);
        assert!(addrs.admit(a));
        for _ in 0..2 {
            addrs.release(a);
        }
        addrs.release(b);
        addrs.release(b); // more releases than admits are harmless
        assert_eq!(addrs.addresses(), 0, "idle addresses are forgotten");

        let mut unlimited = ClientAddrs::new(Vec::new(), 0);
        assert!((0..10_000).all(|_| unlimited.admit(a)));
    }
}
