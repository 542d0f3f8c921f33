//! Counters behind `GET /metrics`, the same families with the same names in both adapters.
//! Plain integers and plain histograms: the mio event loop is their only writer and reader, so
//! nothing on its hot path takes a lock or an atomic (chat-tokio keeps them behind one mutex,
//! each update a few additions). A scrape turns them into a `prometheus-client` registry, which
//! writes the Prometheus text format (0.0.4) with HELP and TYPE. No per-user labels.
//!
//! Families that only mean something in the mio loop (split flushes, flush sizes, the memory
//! budget, logins, cluster links) stay 0 in chat-tokio's output.

use std::time::Instant;

use prometheus_client::encoding::{prometheus_text, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

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
    delivery_latency: Histogram,
    flush_bytes: Histogram,
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
            delivery_latency: Histogram::new(&LATENCY_BOUNDS),
            flush_bytes: Histogram::new(&FLUSH_BOUNDS),
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

    /// The Prometheus text exposition (version 0.0.4), written by `prometheus-client` from a
    /// registry built for this scrape out of the plain numbers above.
    pub fn render(&self, now: Instant, draining: bool, store: Option<&Stats>) -> String {
        let mut r = Registry::default();
        let flag = |on: bool| i64::from(on);
        gauge(
            &mut r,
            "chat_connections_open",
            "TCP connections open now",
            self.open_connections,
        );
        counter(
            &mut r,
            "chat_connections",
            "TCP connections accepted",
            self.connections_total,
        );
        gauge(
            &mut r,
            "chat_websockets_open",
            "Chat (WebSocket) clients connected now",
            self.websocket_open,
        );
        counter(
            &mut r,
            "chat_websockets",
            "Chat (WebSocket) clients that ever connected",
            self.websockets_total,
        );
        counter(
            &mut r,
            "chat_connections_refused",
            "Connections answered 503 because the server was full",
            self.refused_full,
        );
        counter(
            &mut r,
            "chat_connections_refused_per_ip",
            "Connections answered 429 because their address held --max-connections-per-ip",
            self.refused_per_ip,
        );
        r.register(
            "chat_logins",
            "Logins (--auth accounts) by result: ok, failed (wrong name or password), throttled \
             (429) and busy (the password hasher's queue was full, 503)",
            Labeled::counters(
                "result",
                [
                    ("ok", self.logins_ok),
                    ("failed", self.logins_failed),
                    ("throttled", self.logins_throttled),
                    ("busy", self.logins_busy),
                ],
            ),
        );
        counter(
            &mut r,
            "chat_cluster_link_changes",
            "Times a link to the cluster's Redis (--redis) went down or came back",
            self.cluster_link_changes,
        );
        counter(
            &mut r,
            "chat_messages_received",
            "Chat messages received from clients",
            self.messages_received,
        );
        counter(
            &mut r,
            "chat_messages_delivered",
            "Frames queued to clients (one per recipient)",
            self.messages_delivered,
        );
        counter(
            &mut r,
            "chat_messages_rate_limited",
            "Messages refused by the rate limit",
            self.rate_limited,
        );
        counter(
            &mut r,
            "chat_bytes_received",
            "Bytes read from sockets",
            self.bytes_in,
        );
        counter(
            &mut r,
            "chat_bytes_sent",
            "Bytes written to sockets",
            self.bytes_out,
        );
        counter(
            &mut r,
            "chat_split_flushes",
            "Loop turns after a quiet spell whose writes were shared with a second thread",
            self.split_flushes,
        );
        r.register(
            "chat_closes",
            "WebSocket connections the server closed, by reason",
            Labeled::counters(
                "reason",
                CloseReason::ALL
                    .iter()
                    .map(|k| (k.label(), self.closes(*k))),
            ),
        );
        r.register(
            "chat_http_responses",
            "HTTP responses sent, by status class",
            Labeled::counters(
                "class",
                ["1xx", "2xx", "3xx", "4xx", "5xx"]
                    .into_iter()
                    .zip(self.http_responses),
            ),
        );
        r.register(
            "chat_delivery_latency_seconds",
            "From the loop turn that read a chat message to the end of that turn's flush, when \
             its frames are written to the recipients' sockets (or queued for those that \
             cannot take them yet)",
            self.delivery_latency.clone(),
        );
        r.register(
            "chat_flush_bytes",
            "Bytes written to one connection in one loop turn (its frames batched into one \
             writev)",
            self.flush_bytes.clone(),
        );
        gauge(
            &mut r,
            "chat_memory_budget_bytes",
            "The memory budget (--memory-budget); 0 when there is none",
            self.memory.budget,
        );
        r.register(
            "chat_memory_bytes",
            "Bytes the budget counts now, by kind",
            Labeled::gauges("kind", MEMORY_KINDS.into_iter().zip(self.memory.used)),
        );
        r.register(
            "chat_memory_shed",
            "Shed to stay within the budget: history messages trimmed, slow consumers closed, \
             unfinished messages and request heads refused",
            Labeled::counters("kind", MEMORY_KINDS.into_iter().zip(self.memory.shed)),
        );
        r.register(
            "chat_memory_shedding",
            "1 while the memory budget is spent and the server sheds",
            ConstGauge::new(flag(self.memory.shedding)),
        );
        r.register(
            "chat_draining",
            "1 while the server shuts down",
            ConstGauge::new(flag(draining)),
        );
        r.register(
            "chat_uptime_seconds",
            "Seconds since the server started",
            ConstGauge::new(now.saturating_duration_since(self.started).as_secs_f64()),
        );
        if let Some(store) = store {
            counter(
                &mut r,
                "chat_store_messages",
                "Messages (room and direct) committed to the message store",
                store.stored_total(),
            );
            counter(
                &mut r,
                "chat_store_errors",
                "Store transactions that failed (disk full, I/O error); their messages are not \
                 saved",
                store.errors_total(),
            );
            r.register(
                "chat_store_healthy",
                "1 while the message store's last write succeeded",
                ConstGauge::new(flag(store.healthy())),
            );
            gauge(
                &mut r,
                "chat_store_queued",
                "Requests waiting for the storage thread",
                store.queued(),
            );
            counter(
                &mut r,
                "chat_store_pruned",
                "Stored messages deleted by retention",
                store.pruned_total(),
            );
            gauge(
                &mut r,
                "chat_store_db_bytes",
                "Size of the message database file",
                store.db_bytes(),
            );
            r.register(
                "chat_store_commit_seconds",
                "Time to commit one batch of messages (one transaction)",
                Histogram::from_cumulative(
                    &store.commit_seconds_buckets(),
                    store.commit_seconds_sum(),
                    store.batches_total(),
                ),
            );
        }
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &r);
        out
    }

    /// `messages` chat messages read in the turn that began at `turn_start` were delivered
    /// (that turn's flush is over).
    pub fn delivered(&mut self, messages: u64, turn_start: Instant, now: Instant) {
        if messages > 0 {
            let seconds = now.saturating_duration_since(turn_start).as_secs_f64();
            self.delivery_latency.observe_n(seconds, messages);
        }
    }

    /// One connection's flush in one turn wrote `bytes`.
    pub fn flushed(&mut self, bytes: u64) {
        if bytes > 0 {
            self.flush_bytes.observe_n(bytes as f64, 1);
        }
    }
}

/// A counter of this scrape (the registry appends `_total`; the registry appends the period
/// ending `help`).
fn counter(r: &mut Registry, name: &str, help: &str, value: u64) {
    r.register(name, help, ConstCounter::new(value));
}

fn gauge(r: &mut Registry, name: &str, help: &str, value: u64) {
    r.register(name, help, ConstGauge::new(value));
}

/// A family of counters or gauges with one label, its series in the order given (the
/// library's `Family` is a hash map: its order would change from one scrape to the next).
#[derive(Debug)]
struct Labeled<M> {
    label: &'static str,
    series: Vec<(&'static str, M)>,
}

impl Labeled<ConstCounter> {
    fn counters(
        label: &'static str,
        values: impl IntoIterator<Item = (&'static str, u64)>,
    ) -> Self {
        Labeled {
            label,
            series: values
                .into_iter()
                .map(|(v, n)| (v, ConstCounter::new(n)))
                .collect(),
        }
    }
}

impl Labeled<ConstGauge<u64>> {
    fn gauges(label: &'static str, values: impl IntoIterator<Item = (&'static str, u64)>) -> Self {
        Labeled {
            label,
            series: values
                .into_iter()
                .map(|(v, n)| (v, ConstGauge::new(n)))
                .collect(),
        }
    }
}

impl<M: EncodeMetric + TypedMetric> EncodeMetric for Labeled<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        for (value, metric) in &self.series {
            metric.encode(encoder.encode_family(&[(self.label, *value)])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// A histogram kept in plain numbers by the loop thread (the library's `Histogram` takes a
/// lock per observation), encoded by the library.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Upper bounds, ascending; `+Inf` is implied.
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is above every bound.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// `n` observations of `value`.
    pub fn observe_n(&mut self, value: f64, n: u64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += n;
        }
        self.sum += value * n as f64;
        self.count += n;
    }

    /// From cumulative buckets (the store's), the last of which is `+Inf`.
    fn from_cumulative(buckets: &[(f64, u64)], sum: f64, count: u64) -> CumulativeHistogram {
        let mut below = 0;
        let buckets = buckets
            .iter()
            .map(|(bound, total)| {
                let n = total.saturating_sub(below);
                below = *total;
                (*bound, n)
            })
            .collect();
        CumulativeHistogram {
            buckets,
            sum,
            count,
        }
    }
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect();
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A histogram of one scrape, from buckets already counted elsewhere.
#[derive(Debug)]
struct CumulativeHistogram {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl EncodeMetric for CumulativeHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// `chat_delivery_latency_seconds`: 50 us to 1 s.
const LATENCY_BOUNDS: [f64; 13] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// `chat_flush_bytes`: one small frame to a full outbound queue.
const FLUSH_BOUNDS: [f64; 9] = [
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
];

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
        m.delivered(3, t, t + std::time::Duration::from_micros(700));
        m.flushed(300);
        m.flushed(0);
        let text = m.render(t, false, None);
        assert!(text.contains("# TYPE chat_delivery_latency_seconds histogram\n"));
        assert!(text.contains("chat_delivery_latency_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("chat_delivery_latency_seconds_bucket{le=\"0.001\"} 3\n"));
        assert!(text.contains("chat_delivery_latency_seconds_count 3\n"));
        assert!(
            text.contains("chat_flush_bytes_bucket{le=\"256\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("chat_flush_bytes_bucket{le=\"1024\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("chat_flush_bytes_count 1\n"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
        }
    }
}
