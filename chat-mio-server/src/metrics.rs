//! Counters behind `GET /metrics`, in the Prometheus text format. Plain integers: the event
//! loop is the only writer and the only reader. No per-user labels.

use std::fmt::Write as _;
use std::time::Instant;

use chat_protocol::CloseReason;
use chat_store::Stats;

/// The kinds of memory the budget (`--memory-budget`) counts, in the order they are shed and
/// listed: the rooms' history in memory, outbound queues, WebSocket messages being received,
/// HTTP request heads being received.
pub const MEMORY_KINDS: [&str; 4] = ["history", "outbound", "partial", "heads"];

/// The memory budget's gauges and counters (`event_loop/memory.rs` keeps them current).
#[derive(Debug, Default)]
pub struct MemoryGauges {
    /// The budget in bytes; 0 when there is none.
    pub budget: u64,
    /// Bytes held now, by [`MEMORY_KINDS`].
    pub used: [u64; 4],
    /// What was shed, by [`MEMORY_KINDS`]: messages trimmed from history, slow consumers
    /// closed, unfinished messages refused, request heads refused.
    pub shed: [u64; 4],
    /// The budget was spent recently (set when shedding, cleared below 7/8 of it).
    pub shedding: bool,
}

#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    pub open_connections: u64,
    pub connections_total: u64,
    pub websocket_open: u64,
    pub websockets_total: u64,
    pub messages_received: u64,
    pub messages_delivered: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rate_limited: u64,
    pub refused_full: u64,
    pub refused_per_ip: u64,
    /// Loop turns whose writes were shared with a second thread.
    pub split_flushes: u64,
    /// Logins (`--auth accounts`) by result.
    pub logins_ok: u64,
    pub logins_failed: u64,
    pub logins_throttled: u64,
    pub logins_busy: u64,
    /// Times a link to the cluster's Redis went down or came back.
    pub cluster_link_changes: u64,
    closes: [u64; CloseReason::ALL.len()],
    /// Responses by status class: 1xx .. 5xx.
    http_responses: [u64; 5],
    /// The memory budget.
    pub memory: MemoryGauges,
}

impl Metrics {
    pub fn new(started: Instant) -> Self {
        Metrics {
            started,
            open_connections: 0,
            connections_total: 0,
            websocket_open: 0,
            websockets_total: 0,
            messages_received: 0,
            messages_delivered: 0,
            bytes_in: 0,
            bytes_out: 0,
            rate_limited: 0,
            refused_full: 0,
            refused_per_ip: 0,
            split_flushes: 0,
            logins_ok: 0,
            logins_failed: 0,
            logins_throttled: 0,
            logins_busy: 0,
            cluster_link_changes: 0,
            closes: [0; CloseReason::ALL.len()],
            http_responses: [0; 5],
            memory: MemoryGauges::default(),
        }
    }

    pub fn closed(&mut self, kind: CloseReason) {
        self.closes[kind as usize] += 1;
    }

    pub fn closes(&self, kind: CloseReason) -> u64 {
        self.closes[kind as usize]
    }

    pub fn http_response(&mut self, status: u16) {
        if let Some(n) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.http_responses.get_mut(usize::from(i)))
        {
            *n += 1;
        }
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, now: Instant, draining: bool, store: Option<&Stats>) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            // Writing into a String cannot fail.
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let v = |n: u64| n as f64;
        metric(
            "chat_connections_open",
            "gauge",
            "TCP connections open now.",
            &[("", v(self.open_connections))],
        );
        metric(
            "chat_connections_total",
            "counter",
            "TCP connections accepted.",
            &[("", v(self.connections_total))],
        );
        metric(
            "chat_websockets_open",
            "gauge",
            "Chat (WebSocket) clients connected now.",
            &[("", v(self.websocket_open))],
        );
        metric(
            "chat_websockets_total",
            "counter",
            "Chat (WebSocket) clients that ever connected.",
            &[("", v(self.websockets_total))],
        );
        metric(
            "chat_connections_refused_total",
            "counter",
            "Connections answered 503 because the server was full.",
            &[("", v(self.refused_full))],
        );
        metric(
            "chat_connections_refused_per_ip_total",
            "counter",
            "Connections answered 429 because their address held --max-connections-per-ip.",
            &[("", v(self.refused_per_ip))],
        );
        metric(
            "chat_logins_total",
            "counter",
            "Logins (--auth accounts) by result: ok, failed (wrong name or password), throttled \
             (429) and busy (the password hasher's queue was full, 503).",
            &[
                ("{result=\"ok\"}", v(self.logins_ok)),
                ("{result=\"failed\"}", v(self.logins_failed)),
                ("{result=\"throttled\"}", v(self.logins_throttled)),
                ("{result=\"busy\"}", v(self.logins_busy)),
            ],
        );
        metric(
            "chat_cluster_link_changes_total",
            "counter",
            "Times a link to the cluster's Redis (--redis) went down or came back.",
            &[("", v(self.cluster_link_changes))],
        );
        metric(
            "chat_messages_received_total",
            "counter",
            "Chat messages received from clients.",
            &[("", v(self.messages_received))],
        );
        metric(
            "chat_messages_delivered_total",
            "counter",
            "Frames queued to clients (one per recipient).",
            &[("", v(self.messages_delivered))],
        );
        metric(
            "chat_messages_rate_limited_total",
            "counter",
            "Messages refused by the rate limit.",
            &[("", v(self.rate_limited))],
        );
        metric(
            "chat_bytes_received_total",
            "counter",
            "Bytes read from sockets.",
            &[("", v(self.bytes_in))],
        );
        metric(
            "chat_bytes_sent_total",
            "counter",
            "Bytes written to sockets.",
            &[("", v(self.bytes_out))],
        );
        metric(
            "chat_split_flushes_total",
            "counter",
            "Loop turns after a quiet spell whose writes were shared with a second thread.",
            &[("", v(self.split_flushes))],
        );
        let closes: Vec<(String, f64)> = CloseReason::ALL
            .iter()
            .map(|k| (format!("{{reason=\"{}\"}}", k.label()), v(self.closes(*k))))
            .collect();
        let closes: Vec<(&str, f64)> = closes.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        metric(
            "chat_closes_total",
            "counter",
            "WebSocket connections the server closed, by reason.",
            &closes,
        );
        let classes: Vec<(String, f64)> = (1..=5)
            .map(|c| {
                (
                    format!("{{class=\"{c}xx\"}}"),
                    v(self.http_responses[c - 1]),
                )
            })
            .collect();
        let classes: Vec<(&str, f64)> = classes.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        metric(
            "chat_http_responses_total",
            "counter",
            "HTTP responses sent, by status class.",
            &classes,
        );
        let kinds = |values: &[u64; 4]| -> Vec<(String, f64)> {
            MEMORY_KINDS
                .iter()
                .zip(values)
                .map(|(k, n)| (format!("{{kind=\"{k}\"}}"), v(*n)))
                .collect()
        };
        let used = kinds(&self.memory.used);
        let used: Vec<(&str, f64)> = used.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        let shed = kinds(&self.memory.shed);
        let shed: Vec<(&str, f64)> = shed.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        metric(
            "chat_memory_budget_bytes",
            "gauge",
            "The memory budget (--memory-budget); 0 when there is none.",
            &[("", v(self.memory.budget))],
        );
        metric(
            "chat_memory_bytes",
            "gauge",
            "Bytes the budget counts now, by kind.",
            &used,
        );
        metric(
            "chat_memory_shed_total",
            "counter",
            "Shed to stay within the budget: history messages trimmed, slow consumers closed, unfinished messages and request heads refused.",
            &shed,
        );
        metric(
            "chat_memory_shedding",
            "gauge",
            "1 while the memory budget is spent and the server sheds.",
            &[("", if self.memory.shedding { 1.0 } else { 0.0 })],
        );
        metric(
            "chat_draining",
            "gauge",
            "1 while the server shuts down.",
            &[("", if draining { 1.0 } else { 0.0 })],
        );
        metric(
            "chat_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            &[(
                "",
                now.saturating_duration_since(self.started).as_secs_f64(),
            )],
        );
        if let Some(store) = store {
            metric(
                "chat_store_messages_total",
                "counter",
                "Messages (room and direct) committed to the message store.",
                &[("", v(store.stored_total()))],
            );
            metric(
                "chat_store_errors_total",
                "counter",
                "Store transactions that failed (disk full, I/O error); their messages are not saved.",
                &[("", v(store.errors_total()))],
            );
            metric(
                "chat_store_healthy",
                "gauge",
                "1 while the message store's last write succeeded.",
                &[("", if store.healthy() { 1.0 } else { 0.0 })],
            );
            metric(
                "chat_store_queued",
                "gauge",
                "Requests waiting for the storage thread.",
                &[("", v(store.queued()))],
            );
            metric(
                "chat_store_pruned_total",
                "counter",
                "Stored messages deleted by retention.",
                &[("", v(store.pruned_total()))],
            );
            metric(
                "chat_store_db_bytes",
                "gauge",
                "Size of the message database file.",
                &[("", v(store.db_bytes()))],
            );
            let buckets: Vec<(String, f64)> = store
                .commit_seconds_buckets()
                .into_iter()
                .map(|(le, n)| {
                    let le = if le.is_infinite() {
                        "+Inf".to_owned()
                    } else {
                        le.to_string()
                    };
                    (format!("_bucket{{le=\"{le}\"}}"), v(n))
                })
                .chain([
                    ("_sum".to_owned(), store.commit_seconds_sum()),
                    ("_count".to_owned(), v(store.batches_total())),
                ])
                .collect();
            let _ = writeln!(
                out,
                "# HELP chat_store_commit_seconds Time to commit one batch of messages (one \
                 transaction).\n# TYPE chat_store_commit_seconds histogram"
            );
            for (suffix, value) in buckets {
                let _ = writeln!(out, "chat_store_commit_seconds{suffix} {value}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let t = Instant::now();
        let mut m = Metrics::new(t);
        m.closed(CloseReason::SlowConsumer);
        m.closed(CloseReason::SlowConsumer);
        m.http_response(200);
        m.http_response(404);
        m.http_response(101);
        m.messages_delivered = 7;
        let text = m.render(t, false, None);
        assert!(text.contains("chat_closes_total{reason=\"slow_consumer\"} 2\n"));
        assert!(text.contains("chat_closes_total{reason=\"idle\"} 0\n"));
        assert!(text.contains("chat_http_responses_total{class=\"2xx\"} 1\n"));
        assert!(text.contains("chat_http_responses_total{class=\"4xx\"} 1\n"));
        assert!(text.contains("chat_http_responses_total{class=\"1xx\"} 1\n"));
        assert!(text.contains("chat_messages_delivered_total 7\n"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
        }
    }
}
