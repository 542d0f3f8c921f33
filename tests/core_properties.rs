//! Property tests: no sequence of inputs panics the state machine, it only ever addresses
//! connected clients, nothing crosses from one room to another, message ids only grow within a
//! room, v1 clients only ever see the tutorial's frames, presence notices reach exactly whom they
//! should, and pings and idle closes agree with a simple model of the deadlines.
//!
//! They test `chat-protocol` (the core) alone, through its harness; they live in the root
//! package so that the core's dependency graph, dev-dependencies included, holds no random
//! number generator.

// The core's own harness, shared rather than copied.
#[path = "../chat-protocol/tests/harness/mod.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chat_protocol::{
    ClientId, CloseReason, Config, Input, Output, Payload, Protocol, RateLimit, Resume, RoomName,
};
use harness::Harness;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::Value;

const USERS: [&str; 4] = ["alice", "bob", "carol", "Dave Ü"];
const ROOMS: [&str; 4] = ["general", "a", "b", "c"];
const EPOCH: u64 = 1_795_294_378_000;
/// The seed of every run; any value will do.
const SEED: u64 = 0x5EED_C4A7;

#[derive(Debug, Clone)]
enum Step {
    Connect {
        id: u64,
        user: usize,
        room: usize,
        v2: bool,
        /// (the right epoch?, since)
        resume: Option<(bool, u64)>,
    },
    Text(u64, String),
    /// This many copies of a message in a row from one client, to hit the rate limit.
    Flood(u64, usize),
    Activity(u64),
    Disconnect(u64),
    Timeout,
    Advance(u64),
    /// The driver moves the history budget to this many bytes.
    Budget(usize),
}

/// Text frames: well-formed commands, nearly-well-formed JSON, and anything at all.
fn text() -> impl Strategy<Value = String> {
    let short = "[a-z ]{0,6}";
    prop_oneof![
        2 => (short, prop::option::of("c-[0-3]")).prop_map(|(t, c)| match c {
            Some(c) => format!(r#"{{"type":"message","message":"{t}","client_msg_id":"{c}"}}"#),
            None => format!(r#"{{"type":"message","message":"{t}"}}"#),
        }),
        1 => Just(r#"{"type":"typing"}"#.to_owned()),
        1 => (prop::sample::select(USERS.to_vec()), short)
            .prop_map(|(to, t)| format!(r#"{{"type":"direct","to":"{to}","message":"{t}"}}"#)),
        2 => r#"\{("(type|message|to|client_msg_id|x)":("(message|typing|direct|dance|)"|[0-9]{1,3}|null|true|\[\]|\{\}),?){0,4}\}"#,
        1 => r#"\[.{0,10}\]|"[a-z]{0,5}"|[0-9]{1,5}|null|\{"#,
        1 => any::<String>(),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    // A small id space so connects, texts and disconnects collide often.
    let id = 0u64..8;
    let resume = prop::option::of((any::<bool>(), 0u64..12));
    prop_oneof![
        2 => (id.clone(), 0..USERS.len(), 0..ROOMS.len(), any::<bool>(), resume)
            .prop_map(|(id, user, room, v2, resume)| Step::Connect { id, user, room, v2, resume }),
        4 => (id.clone(), text()).prop_map(|(i, t)| Step::Text(i, t)),
        1 => (id.clone(), 1usize..12).prop_map(|(i, n)| Step::Flood(i, n)),
        1 => id.clone().prop_map(Step::Activity),
        2 => id.prop_map(Step::Disconnect),
        2 => Just(Step::Timeout),
        1 => (0u64..2_000).prop_map(Step::Advance),
        1 => (0u64..120_000).prop_map(Step::Advance),
        1 => prop_oneof![Just(usize::MAX), 0usize..4_000].prop_map(Step::Budget),
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
    (
        (rate, seconds.clone(), seconds),
        (0usize..5, 0usize..5, 0u64..3),
    )
        .prop_map(|((rate, heartbeat, idle), (history, max_rooms, typing))| {
            Config::default()
                .with_rate_limit(rate)
                .with_heartbeat_interval(heartbeat)
                .with_idle_timeout(idle)
                .with_history(history)
                .with_max_rooms(max_rooms)
                .with_epoch(EPOCH)
                .with_typing_interval(Duration::from_secs(typing))
        })
}

/// The driver's view of one connection, and an independent account of its deadlines.
#[derive(Debug)]
struct Conn {
    user: &'static str,
    /// `None` when refused for too many rooms.
    room: Option<&'static str>,
    protocol: Protocol,
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

/// The connections of `room` speaking `protocol` that hear broadcasts (not closed).
fn audience(
    conns: &BTreeMap<ClientId, Conn>,
    room: &str,
    protocol: Protocol,
) -> BTreeSet<ClientId> {
    conns
        .iter()
        .filter(|(_, c)| !c.closed && c.room == Some(room) && c.protocol == protocol)
        .map(|(&id, _)| id)
        .collect()
}

/// Whether `user` has a connection in `room` (closed ones included: present until Disconnect).
fn present(conns: &BTreeMap<ClientId, Conn>, room: &str, user: &str) -> bool {
    conns
        .values()
        .any(|c| c.room == Some(room) && c.user == user)
}

fn json(payload: &Payload) -> Value {
    serde_json::from_str(payload.as_str()).expect("every frame is JSON")
}

/// The recipients of frames of type `kind` among `out`.
fn recipients(out: &[Output], kind: &str) -> BTreeSet<ClientId> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, payload } if json(payload)["type"] == kind => Some(*to),
            _ => None,
        })
        .collect()
}

proptest! {
    // A fixed seed (it overrides PROPTEST_RNG_SEED): the core's tests are promised
    // deterministic, so every run, CI's included, tries the same 512 cases. To explore other
    // cases, change SEED.
    #![proptest_config(ProptestConfig { cases: 512, rng_seed: RngSeed::Fixed(SEED), ..ProptestConfig::default() })]

    #[test]
    fn any_input_sequence_is_safe(
        config in config(),
        steps in prop::collection::vec(step(), 0..200),
    ) {
        let mut h = Harness::with_config(config.clone());
        // Inputs that would break the driver contract are still fed, and must come back as
        // errors, not panics or state changes.
        let mut conns: BTreeMap<ClientId, Conn> = BTreeMap::new();
        // The highest message id seen live in each room.
        let mut last_id: BTreeMap<&str, u64> = BTreeMap::new();
        let steps = steps.into_iter().flat_map(|s| match s {
            Step::Flood(i, n) => vec![Step::Text(i, r#"{"type":"message","message":"flood"}"#.into()); n],
            s => vec![s],
        });
        // The last history budget given: the histories never hold more.
        let mut budget = usize::MAX;
        for step in steps {
            prop_assert!(h.server.history_bytes() <= budget, "history over its budget");
            let now = h.now.instant;
            let input = match &step {
                Step::Advance(ms) => { h.advance(Duration::from_millis(*ms)); continue; }
                Step::Connect { id, user, room, v2, resume } => Input::Connect {
                    client: ClientId(*id),
                    user: USERS[*user].to_owned(),
                    room: RoomName::parse(ROOMS[*room]).expect("valid"),
                    protocol: if *v2 { Protocol::V2 } else { Protocol::V1 },
                    resume: resume.map(|(right, since)| Resume {
                        epoch: if right { EPOCH } else { EPOCH - 1 },
                        since,
                    }),
                },
                Step::Text(i, t) => Input::Text { client: ClientId(*i), text: Payload::from(t.clone()) },
                Step::Flood(..) => unreachable!("expanded above"),
                Step::Activity(i) => Input::Activity { client: ClientId(*i) },
                Step::Disconnect(i) => Input::Disconnect { client: ClientId(*i) },
                Step::Timeout => Input::Timeout,
                Step::Budget(bytes) => Input::HistoryBudget { bytes: *bytes },
            };
            let valid = match &input {
                Input::Connect { client, .. } => !conns.contains_key(client),
                Input::Text { client, .. }
                | Input::Activity { client }
                | Input::Disconnect { client } => conns.contains_key(client),
                Input::Timeout | Input::HistoryBudget { .. } => true,
                Input::Stored { .. } | Input::Fetched { .. } => unreachable!("not durable here"),
                Input::Expires { .. } | Input::TokenVerified { .. } | Input::Grant { .. } => {
                    unreachable!("no token authentication here")
                }
                Input::Publish { .. } | Input::Kick { .. } | Input::Ban { .. } => {
                    unreachable!("no server API here")
                }
                Input::ClusterPublished { .. }
                | Input::ClusterMessage { .. }
                | Input::ClusterPresence { .. }
                | Input::ClusterConnection { .. }
                | Input::ClusterTyping { .. }
                | Input::ClusterDirect { .. }
                | Input::ClusterEpoch { .. }
                | Input::ClusterDeleted { .. } => unreachable!("not in cluster mode here"),
            };

            // poll_timeout is never later than the model's earliest deadline (earlier is fine).
            let model_next = conns.values().filter_map(|c| c.deadline(&config)).min();
            match (h.server.poll_timeout(), model_next) {
                (None, Some(m)) => prop_assert!(false, "no deadline reported, model has {:?}", m),
                (Some(d), Some(m)) => prop_assert!(d <= m, "deadline reported too late"),
                _ => {}
            }

            // Who was present before a Connect or Disconnect, for the presence notices.
            let (joiner_room, joiner_user_present) = match &step {
                Step::Connect { room, user, .. } => {
                    (Some(ROOMS[*room]), present(&conns, ROOMS[*room], USERS[*user]))
                }
                _ => (None, false),
            };
            let occupied: BTreeSet<&str> = conns.values().filter_map(|c| c.room).collect();

            let result = h.server.handle_input(h.now, input.clone());
            prop_assert_eq!(result.is_ok(), valid, "{:?}", input);
            let out = h.drain();
            if !valid {
                prop_assert_eq!(out, vec![]);
                continue;
            }

            // The client whose input this is, and its room (for Connect, after the model
            // learns whether it was refused).
            let actor = match &input {
                Input::Connect { client, .. }
                | Input::Text { client, .. }
                | Input::Activity { client }
                | Input::Disconnect { client } => Some(*client),
                Input::Timeout | Input::HistoryBudget { .. } => None,
                Input::Stored { .. } | Input::Fetched { .. } => unreachable!("not durable here"),
                Input::Expires { .. } | Input::TokenVerified { .. } | Input::Grant { .. } => {
                    unreachable!("no token authentication here")
                }
                Input::Publish { .. } | Input::Kick { .. } | Input::Ban { .. } => {
                    unreachable!("no server API here")
                }
                Input::ClusterPublished { .. }
                | Input::ClusterMessage { .. }
                | Input::ClusterPresence { .. }
                | Input::ClusterConnection { .. }
                | Input::ClusterTyping { .. }
                | Input::ClusterDirect { .. }
                | Input::ClusterEpoch { .. }
                | Input::ClusterDeleted { .. } => unreachable!("not in cluster mode here"),
            };
            if let Step::Connect { id, user, room, v2, .. } = &step {
                let refused = out == vec![Output::Close {
                    client: ClientId(*id),
                    reason: CloseReason::TooManyRooms,
                }];
                if refused {
                    prop_assert_eq!(occupied.len(), config.max_rooms.max(1), "refused with room to spare");
                    prop_assert!(!occupied.contains(ROOMS[*room]), "refused entry to an existing room");
                }
                conns.insert(ClientId(*id), Conn {
                    user: USERS[*user],
                    room: (!refused).then_some(ROOMS[*room]),
                    protocol: if *v2 { Protocol::V2 } else { Protocol::V1 },
                    last_seen: now,
                    last_ping: None,
                    closed: refused,
                });
            }
            let actor_room = actor.and_then(|a| conns.get(&a)).and_then(|c| c.room);
            // Someone who left is addressed no more, not even by its own departure.
            let departed = match &input {
                Input::Disconnect { client } => conns.remove(client),
                _ => None,
            };
            prop_assert!(h.server.room_count() <= config.max_rooms.max(1));

            // Every output addresses a connected client not closed before, and never one in
            // another room than the actor's.
            let mut closed_now = BTreeSet::new();
            let mut live_ids: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
            for o in &out {
                let to = match o {
                    Output::Send { to, .. } | Output::Ping { to } => *to,
                    Output::Close { client, .. } => *client,
                    Output::SendMany { .. } => {
                        prop_assert!(false, "poll_output gives one Send per recipient: {:?}", o);
                        unreachable!()
                    }
                    Output::Store(_) | Output::Fetch { .. } => {
                        prop_assert!(false, "storage output without Config::durable: {:?}", o);
                        unreachable!()
                    }
                    Output::VerifyToken { .. } => {
                        prop_assert!(false, "token output without Config::token_auth: {:?}", o);
                        unreachable!()
                    }
                    Output::CloseWith { .. } | Output::Ban { .. } | Output::DeleteStored { .. } => {
                        prop_assert!(false, "moderation output without an admin: {:?}", o);
                        unreachable!()
                    }
                    Output::Published { .. } | Output::Dismissed { .. } => {
                        prop_assert!(false, "server API answer without its input: {:?}", o);
                        unreachable!()
                    }
                    Output::ClusterPublish { .. }
                    | Output::ClusterJoin { .. }
                    | Output::ClusterLeave { .. }
                    | Output::ClusterTyping { .. }
                    | Output::ClusterDirect { .. }
                    | Output::ClusterFetchAfter { .. }
                    | Output::ClusterDelete { .. } => {
                        prop_assert!(false, "cluster output without Config::cluster: {:?}", o);
                        unreachable!()
                    }
                };
                let c = conns.get(&to);
                prop_assert!(c.is_some(), "addressed {} which is not connected", to);
                let c = c.expect("checked");
                prop_assert!(!closed_now.contains(&to), "addressed {} after closing it", to);
                let refused_now = matches!(o, Output::Close { reason: CloseReason::TooManyRooms, .. });
                prop_assert!(!c.closed || refused_now, "addressed {} after closing it", to);
                if let Output::Close { .. } = o {
                    closed_now.insert(to);
                }
                let Output::Send { payload, .. } = o else { continue };
                let room = c.room.expect("only a refused client is in no room, and it gets no frame");
                prop_assert_eq!(Some(room), actor_room, "{} heard another room", to);
                let v = json(payload);
                let kind = v["type"].as_str().expect("every frame has a type").to_owned();
                match c.protocol {
                    Protocol::V1 => {
                        let mut keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
                        keys.sort_unstable();
                        let expected: &[&str] = if kind == "error" {
                            &["client_id", "code", "message", "timestamp", "type"]
                        } else {
                            prop_assert!(["connection", "message", "disconnection"].contains(&kind.as_str()), "v1 got {}", kind);
                            &["client_id", "message", "timestamp", "type"]
                        };
                        prop_assert_eq!(keys, expected.to_vec(), "v1 frame {}", payload.as_str());
                    }
                    Protocol::V2 => {
                        if let Some(r) = v.get("room") {
                            prop_assert_eq!(r.as_str(), Some(room), "v2 frame of another room");
                        }
                        if kind == "message" {
                            let id = v["id"].as_u64().expect("message frames have ids");
                            live_ids.entry(room).or_default().insert(id);
                        }
                        if kind == "history" {
                            let ids: Vec<u64> = v["messages"].as_array().expect("array").iter().map(|m| {
                                assert_eq!(m["room"].as_str(), Some(room), "history of another room");
                                m["id"].as_u64().expect("ids")
                            }).collect();
                            prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "history not in id order");
                            prop_assert!(ids.len() <= config.history);
                        }
                    }
                }
            }
            // One new message per input at most, and its id beyond every earlier one.
            for (room, ids) in live_ids {
                prop_assert_eq!(ids.len(), 1, "several ids for one message");
                let id = *ids.first().expect("one");
                let last = last_id.entry(room).or_insert(0);
                prop_assert!(id > *last, "id {} after {} in {}", id, *last, room);
                *last = id;
            }

            match &input {
                Input::Connect { client, user, .. } => {
                    let joiner = &conns[client];
                    if let Some(room) = joiner.room {
                        prop_assert_eq!(joiner_room, Some(room));
                        // A v2 joiner is greeted before anything else: welcome, gap?, history.
                        if joiner.protocol == Protocol::V2 {
                            let own: Vec<String> = out.iter().filter_map(|o| match o {
                                Output::Send { to, payload } if to == client => json(payload)["type"].as_str().map(str::to_owned),
                                _ => None,
                            }).collect();
                            let n = own.len();
                            prop_assert!(own[0] == "welcome" && own.contains(&"history".to_owned()), "{:?}", own);
                            let history_at = own.iter().position(|k| k == "history").expect("checked");
                            prop_assert!(history_at == 1 || (history_at == 2 && own[1] == "gap"), "{:?}", own);
                            prop_assert!(n <= history_at + 2);
                        }
                        prop_assert_eq!(recipients(&out, "connection").into_iter().filter(|c| conns[c].protocol == Protocol::V1).collect::<BTreeSet<_>>(),
                            audience(&conns, room, Protocol::V1), "v1 hear every connection");
                        let v2_heard = recipients(&out, "connection").into_iter().filter(|c| conns[c].protocol == Protocol::V2).collect::<BTreeSet<_>>();
                        if joiner_user_present {
                            prop_assert_eq!(v2_heard, BTreeSet::new(), "{} joined twice", user);
                        } else {
                            prop_assert_eq!(v2_heard, audience(&conns, room, Protocol::V2));
                        }
                    }
                }
                Input::Disconnect { .. } => {
                    let gone = departed.expect("a valid Disconnect is of a connected client");
                    match gone.room {
                        None => prop_assert_eq!(out, vec![], "a refused client's Disconnect announces nothing"),
                        Some(room) => {
                            let heard = recipients(&out, "disconnection");
                            let v1: BTreeSet<_> = heard.iter().copied().filter(|c| conns[c].protocol == Protocol::V1).collect();
                            prop_assert_eq!(v1, audience(&conns, room, Protocol::V1), "v1 hear every disconnection");
                            let v2: BTreeSet<_> = heard.iter().copied().filter(|c| conns[c].protocol == Protocol::V2).collect();
                            if present(&conns, room, gone.user) {
                                prop_assert_eq!(v2, BTreeSet::new(), "{} left while still connected", gone.user);
                            } else {
                                prop_assert_eq!(v2, audience(&conns, room, Protocol::V2));
                            }
                            prop_assert_eq!(heard.len(), out.len());
                        }
                    }
                }
                Input::Activity { client } => {
                    prop_assert_eq!(out, vec![]);
                    let c = conns.get_mut(client).expect("valid");
                    if !c.closed {
                        c.last_seen = now;
                    }
                }
                Input::Text { client, .. } => {
                    let users: BTreeMap<ClientId, &str> = conns.iter().map(|(&id, c)| (id, c.user)).collect();
                    let c = conns.get_mut(client).expect("valid");
                    if c.closed {
                        prop_assert_eq!(out, vec![], "a closed client is ignored");
                        continue;
                    }
                    c.last_seen = now;
                    for o in &out {
                        match o {
                            Output::Close { client: to, reason } => {
                                prop_assert_eq!(to, client);
                                prop_assert_eq!(*reason, CloseReason::RateLimited);
                                c.closed = true;
                            }
                            Output::Send { to, payload } => {
                                let v = json(payload);
                                if v["type"] == "error" || v["type"] == "ack" {
                                    prop_assert_eq!(to, client, "only the sender hears of its errors and acks");
                                }
                                if v["type"] == "typing" {
                                    prop_assert_eq!(v["client_id"].as_str(), Some(c.user));
                                    prop_assert_ne!(users[to], c.user, "typing echoed to the typist's tab");
                                }
                                if v["type"] == "direct" {
                                    prop_assert_eq!(v["from"].as_str(), Some(c.user));
                                    prop_assert!(users[to] == c.user || v["to"].as_str() == Some(users[to]), "a direct message to a third party");
                                }
                            }
                            Output::Ping { .. } => prop_assert!(false, "a Text produced a ping"),
                            Output::SendMany { .. } => prop_assert!(false, "poll_output gives one Send per recipient"),
                            Output::Store(_) | Output::Fetch { .. } => prop_assert!(false, "not durable"),
                            Output::VerifyToken { .. } => prop_assert!(false, "no token authentication"),
                            Output::CloseWith { .. } | Output::Ban { .. } | Output::DeleteStored { .. } => {
                                prop_assert!(false, "no admin here")
                            }
                            Output::Published { .. } | Output::Dismissed { .. } => {
                                prop_assert!(false, "no server API here")
                            }
                            Output::ClusterPublish { .. }
                            | Output::ClusterJoin { .. }
                            | Output::ClusterLeave { .. }
                            | Output::ClusterTyping { .. }
                            | Output::ClusterDirect { .. }
                            | Output::ClusterFetchAfter { .. }
                    | Output::ClusterDelete { .. } => {
                                prop_assert!(false, "not in cluster mode")
                            }
                        }
                    }
                }
                Input::HistoryBudget { bytes } => {
                    prop_assert_eq!(out, vec![], "trimming history tells nobody");
                    budget = *bytes;
                }
                Input::Timeout => {
                    for o in &out {
                        let (id, is_ping) = match o {
                            Output::Ping { to } => (*to, true),
                            Output::Close { client, reason: CloseReason::Idle } => (*client, false),
                            other => { prop_assert!(false, "a Timeout produced {:?}", other); unreachable!() }
                        };
                        let c = conns.get_mut(&id).expect("checked above");
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
                Input::Stored { .. } | Input::Fetched { .. } => unreachable!("not durable here"),
                Input::Expires { .. } | Input::TokenVerified { .. } | Input::Grant { .. } => {
                    unreachable!("no token authentication here")
                }
                Input::Publish { .. } | Input::Kick { .. } | Input::Ban { .. } => {
                    unreachable!("no server API here")
                }
                Input::ClusterPublished { .. }
                | Input::ClusterMessage { .. }
                | Input::ClusterPresence { .. }
                | Input::ClusterConnection { .. }
                | Input::ClusterTyping { .. }
                | Input::ClusterDirect { .. }
                | Input::ClusterEpoch { .. }
                | Input::ClusterDeleted { .. } => unreachable!("not in cluster mode here"),
            }
            prop_assert_eq!(h.server.client_count(), conns.len());
            // The members the server reports are the model's, room by room.
            for room in ROOMS {
                let name = RoomName::parse(room).expect("valid");
                let expected: BTreeSet<&str> = conns.values().filter(|c| c.room == Some(room)).map(|c| c.user).collect();
                let got: Vec<&str> = h.server.members(&name).collect();
                prop_assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
            }
        }
    }
}

/// A step of the durable scenario: clients and storage interleaved.
#[derive(Debug, Clone)]
enum Durable {
    Connect {
        id: u64,
        user: usize,
        room: usize,
        /// Resuming (this server's epoch) after this id.
        since: Option<u64>,
    },
    Text(u64, String),
    Disconnect(u64),
    /// Storage reports a batch: the issued tickets at these positions (answered ones
    /// included, so repeats happen), perhaps one it never got, committed or failed.
    Stored {
        picks: Vec<prop::sample::Index>,
        unknown: bool,
        ok: bool,
    },
    /// Storage answers the Fetch at this position with up to `n` messages, or fails.
    Fetched {
        pick: prop::sample::Index,
        n: u64,
        ok: bool,
    },
    Advance(u64),
}

fn durable_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ("[a-z]{0,3}", prop::option::of("c-[0-3]")).prop_map(|(t, c)| match c {
            Some(c) => format!(r#"{{"type":"message","message":"{t}","client_msg_id":"{c}"}}"#),
            None => format!(r#"{{"type":"message","message":"{t}"}}"#),
        }),
        1 => prop::sample::select(USERS.to_vec())
            .prop_map(|to| format!(r#"{{"type":"direct","to":"{to}","message":"d"}}"#)),
        2 => (0u64..40, prop::option::of(0usize..8)).prop_map(|(before, limit)| match limit {
            Some(l) => format!(r#"{{"type":"history_before","before":{before},"limit":{l}}}"#),
            None => format!(r#"{{"type":"history_before","before":{before}}}"#),
        }),
    ]
}

fn durable_step() -> impl Strategy<Value = Durable> {
    let id = 0u64..6;
    prop_oneof![
        2 => (id.clone(), 0..USERS.len(), 0..2usize, prop::option::of(0u64..20))
            .prop_map(|(id, user, room, since)| Durable::Connect { id, user, room, since }),
        5 => (id.clone(), durable_text()).prop_map(|(i, t)| Durable::Text(i, t)),
        1 => id.prop_map(Durable::Disconnect),
        3 => (prop::collection::vec(any::<prop::sample::Index>(), 0..4), any::<bool>(), prop::bool::weighted(0.7))
            .prop_map(|(picks, unknown, ok)| Durable::Stored { picks, unknown, ok }),
        1 => (any::<prop::sample::Index>(), 0u64..6, prop::bool::weighted(0.8))
            .prop_map(|(pick, n, ok)| Durable::Fetched { pick, n, ok }),
        1 => (0u64..5_000).prop_map(Durable::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: RngSeed::Fixed(SEED), ..ProptestConfig::default() })]

    /// Whatever the interleaving of client inputs and storage answers: no `(room, id)` is
    /// handed to storage twice, an `ack` says `stored: true` only for a message whose ticket
    /// storage reported committed (and `false` only for one reported failed), to a connection
    /// of its sender in its room, and pages stay within what was asked. A v2 joiner's first
    /// frame is its `welcome`, and the message ids it sees (history, then live) only
    /// increase, whether its resume was answered from memory, from storage, or fell back to
    /// a gap (storage failing, answering short, or late).
    #[test]
    fn storage_answers_in_any_order_keep_ids_unique_and_acks_honest(
        history in 0usize..6,
        restore in prop::option::of(0u64..12),
        steps in prop::collection::vec(durable_step(), 0..150),
    ) {
        let config = Config::default()
            .with_rate_limit(None)
            .with_history(history)
            .with_max_rooms(2)
            .with_epoch(EPOCH)
            .with_heartbeat_interval(None)
            .with_idle_timeout(None)
            .with_durable(true);
        let mut h = Harness::with_config(config);
        // Per connection: whether its welcome came, and the last message id it saw.
        let mut seen: BTreeMap<ClientId, (bool, u64)> = BTreeMap::new();
        if let Some(last_id) = restore {
            h.server.restore(vec![chat_protocol::RestoredRoom {
                name: RoomName::parse("general").expect("valid"),
                last_id,
                messages: (1..=last_id).map(|id| chat_protocol::RestoredMessage {
                    id,
                    user: "alice".into(),
                    text: "old".into(),
                    client_msg_id: Some(format!("c-{}", id % 4)),
                    timestamp: harness::start_wall(),
                    deleted: false,
                }).collect(),
            }], 0);
        }
        // The driver's view: who is connected (user, room).
        let mut conns: BTreeMap<ClientId, (&str, &str)> = BTreeMap::new();
        // Every Store, by ticket, and what storage said of it first.
        let mut records: BTreeMap<chat_protocol::StoreTicket, chat_protocol::Record> = BTreeMap::new();
        let mut issued: Vec<chat_protocol::StoreTicket> = Vec::new();
        let mut reported: BTreeMap<chat_protocol::StoreTicket, bool> = BTreeMap::new();
        let mut ids: BTreeSet<(String, u64)> = BTreeSet::new();
        // Fetches: ticket, before, limit.
        let mut fetches: Vec<(chat_protocol::StoreTicket, u64, usize)> = Vec::new();
        // Pages asked for by text: (client, before, limit) in order (memory answers at once).
        for step in steps {
            let input = match &step {
                Durable::Advance(ms) => {
                    // Only resumes waiting for storage have deadlines here.
                    h.advance(Duration::from_millis(*ms));
                    Input::Timeout
                }
                Durable::Connect { id, user, room, since } => {
                    if conns.contains_key(&ClientId(*id)) { continue; }
                    seen.insert(ClientId(*id), (false, 0));
                    Input::Connect {
                        client: ClientId(*id),
                        user: USERS[*user].to_owned(),
                        room: RoomName::parse(ROOMS[*room]).expect("valid"),
                        protocol: Protocol::V2,
                        resume: since.map(|since| Resume { epoch: EPOCH, since }),
                    }
                }
                Durable::Text(i, t) => {
                    if !conns.contains_key(&ClientId(*i)) { continue; }
                    Input::Text { client: ClientId(*i), text: Payload::from(t.clone()) }
                }
                Durable::Disconnect(i) => {
                    if conns.remove(&ClientId(*i)).is_none() { continue; }
                    Input::Disconnect { client: ClientId(*i) }
                }
                Durable::Stored { picks, unknown, ok } => {
                    let mut tickets: Vec<_> = if issued.is_empty() { vec![] } else {
                        picks.iter().map(|p| issued[p.index(issued.len())]).collect()
                    };
                    if *unknown { tickets.push(chat_protocol::StoreTicket(1_000_000)); }
                    for t in &tickets {
                        if records.contains_key(t) { reported.entry(*t).or_insert(*ok); }
                    }
                    let result = if *ok { Ok(()) } else { Err(chat_protocol::StoreFailed { reason: "full".into() }) };
                    Input::Stored { tickets, result }
                }
                Durable::Fetched { pick, n, ok } => {
                    if fetches.is_empty() { continue; }
                    let (ticket, before, limit) = fetches[pick.index(fetches.len())];
                    let result = if *ok {
                        let n = (*n).min(limit as u64).min(before.saturating_sub(1));
                        Ok((before - n..before).map(|id| chat_protocol::RestoredMessage {
                            id,
                            user: "zed".into(),
                            text: "from disk".into(),
                            client_msg_id: None,
                            timestamp: harness::start_wall(),
                            deleted: false,
                        }).collect())
                    } else {
                        Err(chat_protocol::StoreFailed { reason: "io".into() })
                    };
                    Input::Fetched { ticket, result }
                }
            };
            let asked = match &input {
                Input::Text { text, .. } => serde_json::from_str::<Value>(text.as_str()).ok()
                    .filter(|v| v["type"] == "history_before")
                    .map(|v| (v["before"].as_u64().unwrap_or(0), v["limit"].as_u64().unwrap_or(50))),
                _ => None,
            };
            h.server.handle_input(h.now, input.clone()).expect("the model keeps the contract");
            if let Input::Connect { client, user, room, .. } = &input {
                let user = USERS.iter().find(|u| **u == user).expect("one of USERS");
                let room = ROOMS.iter().find(|r| **r == room.as_str()).expect("one of ROOMS");
                conns.insert(*client, (user, room));
            }
            for o in h.drain() {
                match o {
                    Output::Store(record) => {
                        prop_assert!(!records.contains_key(&record.ticket), "ticket reused");
                        prop_assert!(issued.last().is_none_or(|t| *t < record.ticket), "tickets increase");
                        if record.to.is_none() {
                            prop_assert!(ids.insert((record.room.as_str().to_owned(), record.id)),
                                "({}, {}) stored twice", record.room.as_str(), record.id);
                        } else {
                            prop_assert_eq!(record.id, 0);
                        }
                        issued.push(record.ticket);
                        records.insert(record.ticket, record);
                    }
                    Output::Fetch { client, ticket, before, limit, .. } => {
                        prop_assert!(conns.contains_key(&client));
                        prop_assert!((1..=100).contains(&limit));
                        prop_assert!(issued.last().is_none_or(|t| *t < ticket), "tickets increase");
                        issued.push(ticket);
                        fetches.push((ticket, before, limit));
                    }
                    Output::Send { to, payload } => {
                        prop_assert!(conns.contains_key(&to), "addressed {} which is not connected", to);
                        let (user, room) = conns[&to];
                        let v = json(&payload);
                        let (welcomed, last) = seen.get_mut(&to).expect("connected");
                        prop_assert!(*welcomed || v["type"] == "welcome", "{} before welcome", payload.as_str());
                        *welcomed = true;
                        let live = (v["type"] == "message").then(|| vec![v["id"].as_u64().expect("ids")]);
                        let held = (v["type"] == "history").then(|| v["messages"].as_array().expect("array")
                            .iter().map(|m| m["id"].as_u64().expect("ids")).collect::<Vec<u64>>());
                        for id in live.into_iter().chain(held).flatten() {
                            prop_assert!(id > *last, "{} after {}: {}", id, last, payload.as_str());
                            *last = id;
                        }
                        if v["type"] == "ack" {
                            let stored = v["stored"].as_bool();
                            prop_assert!(stored.is_some(), "a durable ack says whether it is stored");
                            let key = v["client_msg_id"].as_str().expect("acks name it");
                            let id = v["id"].as_u64().expect("acks have ids");
                            let restored = restore.is_some_and(|last| room == "general" && id <= last && user == "alice");
                            let honest = restored && stored == Some(true) || records.iter().any(|(t, r)| {
                                r.id == id && r.room.as_str() == room && &*r.user == user
                                    && r.client_msg_id.as_deref() == Some(key)
                                    && reported.get(t).copied() == stored
                            });
                            prop_assert!(honest, "ack {} without such a report", payload.as_str());
                        }
                        if v["type"] == "history_page" {
                            let before = v["before"].as_u64().expect("pages say before");
                            let got: Vec<u64> = v["messages"].as_array().expect("array").iter()
                                .map(|m| m["id"].as_u64().expect("ids")).collect();
                            prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "page out of order");
                            prop_assert!(got.iter().all(|&id| id < before), "page beyond before");
                            prop_assert!(got.len() <= 100);
                            if let Some((b, limit)) = asked {
                                prop_assert_eq!(b, before);
                                prop_assert!(got.len() as u64 <= limit);
                            }
                        }
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert!(h.server.awaiting_storage() <= issued.len());
        }
        // Once storage has answered everything, nothing waits.
        let all: Vec<_> = records.keys().copied().collect();
        h.server.handle_input(h.now, Input::Stored { tickets: all, result: Ok(()) }).expect("valid");
        for (ticket, ..) in fetches.clone() {
            h.server.handle_input(h.now, Input::Fetched { ticket, result: Ok(vec![]) }).expect("valid");
        }
        h.drain();
        prop_assert_eq!(h.server.awaiting_storage(), 0);
    }
}
