//! `/metrics` read by a Prometheus text parser (`prometheus-parse`), not by string matching:
//! every family has HELP and TYPE, the names operators already scrape are all there with the
//! types they had, and the histograms (delivery latency, flush size, store commits) count what
//! the clients did.

mod common;

use std::collections::HashMap;

use common::{Server, TempDir};
use prometheus_parse::{Scrape, Value};
use tungstenite::Message;

fn scrape(server: &Server) -> Scrape {
    let (status, body) = server.http_get("/metrics");
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{body}"))
}

/// The kind of each sample's family, by sample name (histograms under their family's name).
fn kinds(scrape: &Scrape) -> HashMap<String, &'static str> {
    scrape
        .samples
        .iter()
        .map(|s| {
            let kind = match s.value {
                Value::Counter(_) => "counter",
                Value::Gauge(_) => "gauge",
                Value::Histogram(_) => "histogram",
                Value::Summary(_) => "summary",
                Value::Untyped(_) => "untyped",
            };
            (s.metric.clone(), kind)
        })
        .collect()
}

fn histogram<'a>(scrape: &'a Scrape, name: &str) -> &'a [prometheus_parse::HistogramCount] {
    match scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .map(|s| &s.value)
    {
        Some(Value::Histogram(buckets)) => buckets,
        other => panic!("{name}: not a histogram: {other:?}"),
    }
}

#[test]
fn metrics_parse_as_prometheus_text_with_the_same_names_and_histograms() {
    let dir = TempDir::new("metrics-text");
    let server = Server::start(&dir.data(), &[]);
    let mut alice = server.join("alice", "general", None);
    let mut bob = server.join("bob", "general", None);
    const MESSAGES: usize = 5;
    for i in 0..MESSAGES {
        let command = serde_json::json!({"type": "message", "message": format!("hi {i}")});
        alice
            .send(Message::text(command.to_string()))
            .expect("send a message");
    }
    // Bob has them all once he read the last one: the flushes that carried them are over.
    let mut seen = 0;
    while seen < MESSAGES {
        if let Message::Text(text) = bob.read().expect("bob reads") {
            if text.contains("\"type\":\"message\"") {
                seen += 1;
            }
        }
    }

    // The store commits on its own thread: wait until it has.
    let deadline = std::time::Instant::now() + common::IO_TIMEOUT;
    while server.metric("chat_store_messages_total") < MESSAGES as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the store never committed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let scrape = scrape(&server);
    let kinds = kinds(&scrape);
    for (name, kind) in [
        ("chat_connections_open", "gauge"),
        ("chat_connections_total", "counter"),
        ("chat_websockets_open", "gauge"),
        ("chat_websockets_total", "counter"),
        ("chat_connections_refused_total", "counter"),
        ("chat_connections_refused_per_ip_total", "counter"),
        ("chat_logins_total", "counter"),
        ("chat_messages_received_total", "counter"),
        ("chat_messages_delivered_total", "counter"),
        ("chat_messages_rate_limited_total", "counter"),
        ("chat_bytes_received_total", "counter"),
        ("chat_bytes_sent_total", "counter"),
        ("chat_split_flushes_total", "counter"),
        ("chat_closes_total", "counter"),
        ("chat_http_responses_total", "counter"),
        ("chat_memory_budget_bytes", "gauge"),
        ("chat_memory_bytes", "gauge"),
        ("chat_memory_shed_total", "counter"),
        ("chat_memory_shedding", "gauge"),
        ("chat_draining", "gauge"),
        ("chat_uptime_seconds", "gauge"),
        ("chat_store_messages_total", "counter"),
        ("chat_store_errors_total", "counter"),
        ("chat_store_healthy", "gauge"),
        ("chat_store_queued", "gauge"),
        ("chat_store_pruned_total", "counter"),
        ("chat_store_db_bytes", "gauge"),
        ("chat_store_commit_seconds", "histogram"),
        ("chat_delivery_latency_seconds", "histogram"),
        ("chat_flush_bytes", "histogram"),
    ] {
        assert_eq!(kinds.get(name).copied(), Some(kind), "{name}");
        assert!(
            scrape.docs.get(name).is_some_and(|help| !help.is_empty()),
            "{name} has no HELP"
        );
    }
    for name in kinds.keys() {
        // The parser gives a histogram's _sum and _count as samples of their own.
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (kinds.get(base) == Some(&"histogram")).then_some(base)
            })
            .unwrap_or(name);
        assert!(scrape.docs.contains_key(family), "{name} has no HELP");
    }

    let value = |name: &str| match scrape.samples.iter().find(|s| s.metric == name) {
        Some(s) => match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{name} is not a number"),
        },
        None => panic!("no {name}"),
    };
    assert!(value("chat_messages_received_total") >= MESSAGES as f64);
    assert_eq!(value("chat_websockets_open"), 2.0);

    // Delivery latency: one observation per message received; cumulative buckets end with
    // +Inf holding them all.
    let latency = histogram(&scrape, "chat_delivery_latency_seconds");
    let last = latency.last().expect("buckets");
    assert!(last.less_than.is_infinite(), "{latency:?}");
    assert!(last.count >= MESSAGES as f64, "{latency:?}");
    assert!(
        latency.windows(2).all(|w| w[0].count <= w[1].count),
        "not cumulative: {latency:?}"
    );
    // Under a second, on any machine that runs this test at all.
    let under_a_second = latency
        .iter()
        .find(|b| b.less_than == 1.0)
        .expect("a 1 s bucket");
    assert_eq!(under_a_second.count, last.count, "{latency:?}");

    let flushes = histogram(&scrape, "chat_flush_bytes");
    let flushed = flushes.last().expect("buckets").count;
    // At least the two 101 answers and every message to both clients.
    assert!(flushed >= 2.0, "{flushes:?}");

    let commits = histogram(&scrape, "chat_store_commit_seconds");
    assert!(
        commits.last().is_some_and(|b| b.count >= 1.0),
        "{commits:?}"
    );
    drop((alice, bob));
    server.stop();
}
