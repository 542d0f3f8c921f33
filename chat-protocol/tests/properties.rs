//! Property tests: no sequence of inputs panics the state machine, it only ever addresses
//! connected clients, and its pings and idle closes agree with a simple model of the deadlines.

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chat_protocol::{ClientId, CloseReason, Config, Input, Output, Payload, RateLimit};
use harness::Harness;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Connect(u64, String),
    Text(u64, String),
    /// This many texts in a row from one client, to hit the rate limit.
    Flood(u64, usize),
    Activity(u64),
    Disconnect(u64),
    Timeout,
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    // A small id space so connects, texts and disconnects collide often.
    let id = 0u64..8;
    prop_oneof![
        1 => (id.clone(), any::<String>()).prop_map(|(i, u)| Step::Connect(i, u)),
        3 => (id.clone(), any::<String>()).prop_map(|(i, t)| Step::Text(i, t)),
        1 => (id.clone(), 1usize..12).prop_map(|(i, n)| Step::Flood(i, n)),
        1 => id.clone().prop_map(Step::Activity),
        1 => id.prop_map(Step::Disconnect),
        2 => Just(Step::Timeout),
        1 => (0u64..2_000).prop_map(Step::Advance),
        1 => (0u64..120_000).prop_map(Step::Advance),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    let seconds = prop_oneof![
        Just(None),
        (0u64..40).prop_map(|s| Some(Duration::from_secs(s)))
    ];
    let rate = prop_oneof![
        Just(None),
        (0u32..4, prop::sample::select(vec![0.0, 0.5, 2.0, 5.0]))
            .prop_map(|(burst, per_second)| Some(RateLimit { burst, per_second })),
    ];
    (rate, seconds.clone(), seconds).prop_map(|(rate, heartbeat, idle)| {
        Config::default()
            .with_rate_limit(rate)
            .with_heartbeat_interval(heartbeat)
            .with_idle_timeout(idle)
    })
}

/// The driver's view of one connection, and an independent account of its deadlines.
#[derive(Debug)]
struct Conn {
    last_seen: Instant,
    last_ping: Option<Instant>,
    closed: bool,
}

impl Conn {
    fn ping_at(&self, config: &Config) -> Option<Instant> {
        let interval = config.heartbeat_interval.filter(|d| !d.is_zero())?;
        Some(
            self.last_ping
                .map_or(self.last_seen, |p| p.max(self.last_seen))
                + interval,
        )
    }

    fn idle_at(&self, config: &Config) -> Option<Instant> {
        Some(self.last_seen + config.idle_timeout?)
    }

    /// When something is next due for it, if ever.
    fn deadline(&self, config: &Config) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [self.ping_at(config), self.idle_at(config)]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Who should receive a broadcast: every connection not closed, in id order.
fn audience(conns: &BTreeMap<ClientId, Conn>) -> Vec<ClientId> {
    conns
        .iter()
        .filter(|(_, c)| !c.closed)
        .map(|(&id, _)| id)
        .collect()
}

fn frame_type(out: &Output) -> Option<String> {
    let Output::Send { payload, .. } = out else {
        return None;
    };
    let v: serde_json::Value = serde_json::from_str(payload).expect("every frame is JSON");
    assert!(v["timestamp"].is_string() && v["client_id"].is_string());
    v["type"].as_str().map(str::to_owned)
}

proptest! {
    #[test]
    fn any_input_sequence_is_safe(
        config in config(),
        steps in prop::collection::vec(step(), 0..200),
    ) {
        let mut h = Harness::with_config(config.clone());
        // Inputs that would break the driver contract are still fed, and must come back as
        // errors, not panics or state changes.
        let mut conns: BTreeMap<ClientId, Conn> = BTreeMap::new();
        let steps = steps.into_iter().flat_map(|s| match s {
            Step::Flood(i, n) => vec![Step::Text(i, "flood".into()); n],
            s => vec![s],
        });
        for step in steps {
            let now = h.now.instant;
            let input = match step {
                Step::Advance(ms) => { h.advance(Duration::from_millis(ms)); continue; }
                Step::Connect(i, user) => Input::Connect { client: ClientId(i), user },
                Step::Text(i, t) => Input::Text { client: ClientId(i), text: Payload::from(t) },
                Step::Flood(..) => unreachable!("expanded above"),
                Step::Activity(i) => Input::Activity { client: ClientId(i) },
                Step::Disconnect(i) => Input::Disconnect { client: ClientId(i) },
                Step::Timeout => Input::Timeout,
            };
            let valid = match &input {
                Input::Connect { client, .. } => !conns.contains_key(client),
                Input::Text { client, .. }
                | Input::Activity { client }
                | Input::Disconnect { client } => conns.contains_key(client),
                Input::Timeout => true,
            };

            // poll_timeout is never later than the model's earliest deadline (earlier is fine).
            let model_next = conns.values().filter_map(|c| c.deadline(&config)).min();
            match (h.server.poll_timeout(), model_next) {
                (None, Some(m)) => prop_assert!(false, "no deadline reported, model has {:?}", m),
                (Some(d), Some(m)) => prop_assert!(d <= m, "deadline reported too late"),
                _ => {}
            }

            let result = h.server.handle_input(h.now, input.clone());
            prop_assert_eq!(result.is_ok(), valid, "{:?}", input);
            let out = h.drain();
            if !valid {
                prop_assert_eq!(out, vec![]);
                continue;
            }

            // What each valid input may produce, checked against the model before updating it.
            match &input {
                Input::Connect { client, .. } => {
                    conns.insert(*client, Conn { last_seen: now, last_ping: None, closed: false });
                    let to: Vec<_> = out.iter().map(|o| match o {
                        Output::Send { to, .. } => Some(*to),
                        _ => None,
                    }).collect();
                    prop_assert_eq!(to, audience(&conns).into_iter().map(Some).collect::<Vec<_>>());
                }
                Input::Disconnect { client } => {
                    conns.remove(client);
                    let to: Vec<_> = out.iter().map(|o| match o {
                        Output::Send { to, .. } => Some(*to),
                        _ => None,
                    }).collect();
                    prop_assert_eq!(to, audience(&conns).into_iter().map(Some).collect::<Vec<_>>());
                }
                Input::Activity { client } => {
                    prop_assert_eq!(out, vec![]);
                    let c = conns.get_mut(client).expect("valid");
                    if !c.closed {
                        c.last_seen = now;
                    }
                }
                Input::Text { client, .. } => {
                    let everyone = audience(&conns);
                    let c = conns.get_mut(client).expect("valid");
                    if c.closed {
                        prop_assert_eq!(out, vec![], "a closed client is ignored");
                        continue;
                    }
                    c.last_seen = now;
                    match &out[..] {
                        [Output::Close { client: to, reason: CloseReason::RateLimited }] => {
                            prop_assert_eq!(to, client);
                            c.closed = true;
                        }
                        [one @ Output::Send { to, .. }] if frame_type(one).as_deref() == Some("error") => {
                            prop_assert_eq!(to, client, "only the sender hears of a rejection");
                        }
                        broadcast => {
                            let to: Vec<_> = broadcast.iter().map(|o| match o {
                                Output::Send { to, .. } if frame_type(o).as_deref() == Some("message") => Some(*to),
                                _ => None,
                            }).collect();
                            prop_assert_eq!(to, everyone.into_iter().map(Some).collect::<Vec<_>>());
                        }
                    }
                }
                Input::Timeout => {
                    for o in &out {
                        let (id, is_ping) = match o {
                            Output::Ping { to } => (*to, true),
                            Output::Close { client, reason: CloseReason::Idle } => (*client, false),
                            other => { prop_assert!(false, "a Timeout produced {:?}", other); unreachable!() }
                        };
                        let c = conns.get_mut(&id);
                        prop_assert!(c.is_some(), "addressed {} which is not connected", id);
                        let c = c.expect("checked");
                        prop_assert!(!c.closed, "addressed {} after closing it", id);
                        let idle_due = c.idle_at(&config).is_some_and(|t| t <= now);
                        if is_ping {
                            prop_assert!(!idle_due, "pinged {} instead of closing it", id);
                            prop_assert!(c.ping_at(&config).is_some_and(|t| t <= now), "early ping");
                            c.last_ping = Some(now);
                        } else {
                            prop_assert!(idle_due, "closed {} before its idle timeout", id);
                            c.closed = true;
                        }
                    }
                    // Nothing that was due is left: the model agrees, a second Timeout at the
                    // same instant does nothing, and the next deadline is in the future.
                    for (id, c) in &conns {
                        prop_assert!(c.deadline(&config).is_none_or(|t| t > now), "{} left due", id);
                    }
                    h.server.handle_input(h.now, Input::Timeout).expect("Timeout is always valid");
                    prop_assert_eq!(h.drain(), vec![]);
                    prop_assert!(h.server.poll_timeout().is_none_or(|t| t > now));
                }
            }
            prop_assert_eq!(h.server.client_count(), conns.len());
        }
    }
}
