//! The cluster engine against a real `redis-server` (started by the test on a free port): two
//! nodes publish into one room and both hear every message once, in one order, with the ids the
//! publishes got, and the log gives them back; a `client_msg_id` retried through the other node
//! gets the original id and is not published again; presence is counted across nodes and told
//! on its edges; a dead node's users are reaped; Redis killed and restarted: publishes fail
//! while it is away, both links say so and come back, presence is restored, and a new epoch is
//! taken since the ids start again.

mod common;

use std::time::Duration;

use chat_cluster::{Event, Logged, Outgoing};
use common::{node, Node, Redis};

fn outgoing(user: &str, text: &str, key: Option<&str>) -> Outgoing {
    Outgoing {
        user: user.into(),
        text: text.into(),
        client_msg_id: key.map(str::to_owned),
        timestamp_ms: 1_700_000_000_000,
    }
}

fn published(node: &Node, ticket: u64) -> Result<(u64, u64, bool), String> {
    node.next("a Published", |e| match e {
        Event::Published { ticket: t, result } if *t == ticket => Some(result.clone()),
        _ => None,
    })
}

/// The next `n` messages of `room` a node hears: (id, text).
fn messages(node: &Node, room: &str, n: usize) -> Vec<(u64, String)> {
    (0..n)
        .map(|_| {
            node.next("a Message", |e| match e {
                Event::Message {
                    room: r, message, ..
                } if r == room => Some((message.id, message.text.clone())),
                _ => None,
            })
        })
        .collect()
}

#[test]
fn two_nodes_hear_one_room_in_one_order_with_the_same_ids() {
    let Some(redis) = Redis::start("order") else {
        return;
    };
    let a = node(&redis, "a", |_| {});
    let b = node(&redis, "b", |_| {});
    assert_eq!(a.epoch, b.epoch, "one epoch for the cluster");
    for i in 0..20u64 {
        let from = if i % 2 == 0 { &a } else { &b };
        from.cluster
            .publish(i, "general", outgoing("u", &format!("m{i}"), None));
    }
    let mut ids = Vec::new();
    for i in 0..20u64 {
        let from = if i % 2 == 0 { &a } else { &b };
        let (epoch, id, duplicate) = published(from, i).expect("published");
        assert_eq!((epoch, duplicate), (a.epoch, false));
        ids.push(id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>(), "ids 1..=20, each once");
    let heard_a = messages(&a, "general", 20);
    let heard_b = messages(&b, "general", 20);
    assert_eq!(heard_a, heard_b, "both nodes hear the same order");
    assert_eq!(
        heard_a.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>(),
        "in id order"
    );
    // The log gives them back: after an id, and before one (newest first, returned oldest first).
    a.cluster.fetch_after(100, "general", 15, 100);
    let after = a.next("a Fetched", |e| match e {
        Event::Fetched {
            ticket: 100,
            result,
        } => Some(result.clone()),
        _ => None,
    });
    let after: Vec<u64> = after.expect("fetched").iter().map(|m| m.id).collect();
    assert_eq!(after, [16, 17, 18, 19, 20]);
    b.cluster.fetch_before(101, "general", 6, 3);
    let before = b.next("a Fetched", |e| match e {
        Event::Fetched {
            ticket: 101,
            result,
        } => Some(result.clone()),
        _ => None,
    });
    let before: Vec<Logged> = before.expect("fetched");
    assert_eq!(before.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 4, 5]);
    let text: Vec<&str> = before.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(text.len(), 3);
    assert!(heard_a.iter().any(|(id, t)| *id == 3 && t == text[0]));
}

#[test]
fn a_retry_through_another_node_gets_the_original_id_and_is_not_published_again() {
    let Some(redis) = Redis::start("dedup") else {
        return;
    };
    let a = node(&redis, "a", |_| {});
    let b = node(&redis, "b", |_| {});
    a.cluster
        .publish(1, "general", outgoing("alice", "hello", Some("k1")));
    let (_, id, duplicate) = published(&a, 1).expect("published");
    assert!(!duplicate);
    b.cluster
        .publish(2, "general", outgoing("alice", "hello", Some("k1")));
    assert_eq!(published(&b, 2), Ok((b.epoch, id, true)));
    // Another user's same key is another message.
    b.cluster
        .publish(3, "general", outgoing("bob", "hello", Some("k1")));
    let (_, bob_id, duplicate) = published(&b, 3).expect("published");
    assert_eq!((bob_id, duplicate), (id + 1, false));
    let heard = messages(&b, "general", 2);
    assert_eq!(
        heard.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [id, id + 1]
    );
    let more: Vec<Event> = b
        .drain(Duration::from_millis(300))
        .into_iter()
        .filter(|e| matches!(e, Event::Message { .. }))
        .collect();
    assert!(more.is_empty(), "published once: {more:?}");
}

fn presence(node: &Node, quiet: Duration) -> Vec<String> {
    node.drain(quiet)
        .into_iter()
        .filter_map(|e| match e {
            Event::Joined { room, user } => Some(format!("+{room}/{user}")),
            Event::Left { room, user } => Some(format!("-{room}/{user}")),
            _ => None,
        })
        .collect()
}

fn try_members(node: &Node, room: &str, ticket: u64) -> Result<Vec<String>, String> {
    node.cluster.members(ticket, room);
    node.next("Members", |e| match e {
        Event::Members { ticket: t, result } if *t == ticket => Some(result.clone()),
        _ => None,
    })
}

fn members(node: &Node, room: &str, ticket: u64) -> Vec<String> {
    try_members(node, room, ticket).expect("members")
}

#[test]
fn presence_is_counted_across_nodes_and_told_on_its_edges() {
    let Some(redis) = Redis::start("presence") else {
        return;
    };
    let a = node(&redis, "a", |_| {});
    let b = node(&redis, "b", |_| {});
    let quiet = Duration::from_millis(300);
    a.cluster.join("general", "alice");
    assert_eq!(presence(&b, quiet), ["+general/alice"]);
    b.cluster.join("general", "alice"); // a second tab, on the other node
    a.cluster.join("general", "alice"); // and a third
    assert_eq!(presence(&b, quiet), Vec::<String>::new(), "no second join");
    assert_eq!(members(&a, "general", 1), ["alice"]);
    a.cluster.leave("general", "alice");
    a.cluster.leave("general", "alice");
    assert_eq!(presence(&b, quiet), Vec::<String>::new(), "still on b");
    b.cluster.leave("general", "alice");
    assert_eq!(presence(&a, quiet), ["+general/alice", "-general/alice"]);
    assert_eq!(members(&b, "general", 2), Vec::<String>::new());
    // A leave this node never joined changes nothing.
    b.cluster.leave("general", "mallory");
    assert_eq!(presence(&a, quiet), Vec::<String>::new());
}

#[test]
fn a_silent_node_is_reaped_and_its_users_leave() {
    let Some(redis) = Redis::start("reap") else {
        return;
    };
    let a = node(&redis, "a", |o| {
        o.heartbeat = Duration::from_millis(100);
        o.dead_after = Duration::from_millis(1_000);
    });
    // A node that held bob and carol in general and then stopped beating (killed): as it left
    // Redis, 60 s ago.
    let mut conn = redis.conn();
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg("chat:node:ghost")
        .arg("general\nbob")
        .arg(2)
        .cmd("HSET")
        .arg("chat:node:ghost")
        .arg("general\ncarol")
        .arg(1)
        .cmd("HSET")
        .arg("chat:members:general")
        .arg("bob")
        .arg(2)
        .cmd("HSET")
        .arg("chat:members:general")
        .arg("carol")
        .arg(2) // carol is on a too
        .cmd("ZADD")
        .arg("chat:nodes")
        .arg(0)
        .arg("ghost")
        .query(&mut conn)
        .expect("set up the ghost");
    let left = a.next("bob's Left", |e| match e {
        Event::Left { room, user } => Some((room.clone(), user.clone())),
        _ => None,
    });
    assert_eq!(left, ("general".into(), "bob".into()));
    assert_eq!(
        members(&a, "general", 1),
        ["carol"],
        "carol still has a connection"
    );
    let ghost: bool = redis::cmd("EXISTS")
        .arg("chat:node:ghost")
        .query(&mut conn)
        .expect("exists");
    assert!(!ghost, "the dead node is forgotten");
    let alive: Vec<String> = redis::cmd("ZRANGE")
        .arg("chat:nodes")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .expect("zrange");
    assert_eq!(alive, ["a"], "and a, which beats, is not reaped");
}

#[test]
fn redis_restarted_publishes_fail_meanwhile_presence_is_restored_and_a_new_epoch_taken() {
    let Some(mut redis) = Redis::start("restart") else {
        return;
    };
    let a = node(&redis, "a", |o| o.heartbeat = Duration::from_millis(100));
    let b = node(&redis, "b", |o| o.heartbeat = Duration::from_millis(100));
    a.cluster.join("general", "alice");
    a.cluster
        .publish(1, "general", outgoing("alice", "before", None));
    assert!(published(&a, 1).is_ok());
    let first_epoch = a.epoch;

    redis.kill();
    a.cluster
        .publish(2, "general", outgoing("alice", "during", None));
    assert!(
        published(&a, 2).is_err(),
        "no silent loss: the publish fails"
    );
    b.next("the subscriber's link down", |e| match e {
        Event::Link {
            subscribed: true,
            up: false,
            ..
        } => Some(()),
        _ => None,
    });

    redis.restart();
    let new_epoch = a.next("a new epoch", |e| match e {
        Event::Epoch(epoch) => Some(*epoch),
        _ => None,
    });
    assert_ne!(new_epoch, first_epoch);
    b.next("the subscriber back", |e| match e {
        Event::Link {
            subscribed: true,
            up: true,
            ..
        } => Some(()),
        _ => None,
    });
    // alice is present again (a's tally, synced on reconnect), and publishing works, under the
    // new epoch, from id 1.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut ticket = 10;
    loop {
        if try_members(&b, "general", ticket).is_ok_and(|m| m == ["alice"]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alice never came back"
        );
        ticket += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    b.cluster
        .publish(3, "general", outgoing("bob", "after", None));
    let (epoch, id, _) = published(&b, 3).expect("published after the restart");
    assert_eq!((epoch, id), (new_epoch, 1));
}

#[test]
fn a_starting_node_reads_the_rooms_and_who_is_in_them_and_hears_every_connection() {
    let Some(redis) = Redis::start("seed") else {
        return;
    };
    let a = node(&redis, "a", |_| {});
    for i in 0..5u64 {
        a.cluster
            .publish(i, "general", outgoing("alice", &format!("g{i}"), None));
        let _ = published(&a, i);
    }
    a.cluster.publish(9, "lobby", outgoing("bob", "l0", None));
    let _ = published(&a, 9);
    a.cluster.join("general", "alice");
    a.cluster.join("lobby", "bob");
    let conn = a.next("a Connection", |e| match e {
        Event::Connection {
            room,
            user,
            joined,
            node,
        } => Some((room.clone(), user.clone(), *joined, node.clone())),
        _ => None,
    });
    assert_eq!(conn, ("general".into(), "alice".into(), true, "a".into()));
    // A node that starts now sees the rooms, their newest messages and their members.
    let connected =
        chat_cluster::connect(chat_cluster::Options::new(redis.url(), "b", 2)).expect("join");
    let rooms = connected.load_rooms(3).expect("rooms");
    let summary: Vec<(String, u64, Vec<u64>)> = rooms
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.last_id,
                r.messages.iter().map(|m| m.id).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("general".into(), 5, vec![3, 4, 5]),
            ("lobby".into(), 1, vec![1])
        ]
    );
    assert_eq!(rooms[0].messages[2].text, "g4");
    let presence = connected.load_presence().expect("presence");
    assert_eq!(
        presence,
        [
            ("general".to_owned(), vec!["alice".to_owned()]),
            ("lobby".to_owned(), vec!["bob".to_owned()])
        ]
    );
}

#[test]
fn a_deleted_message_leaves_the_log_every_node_hears_it_and_reads_show_it_deleted() {
    let Some(redis) = Redis::start("delete") else {
        return;
    };
    let a = node(&redis, "a", |_| {});
    let b = node(&redis, "b", |_| {});
    for i in 1..=5u64 {
        a.cluster
            .publish(i, "general", outgoing("alice", &format!("secret{i}"), None));
        let _ = published(&a, i);
    }
    b.cluster.delete("general", 3);
    for n in [&a, &b] {
        let deleted = n.next("a Deleted", |e| match e {
            Event::Deleted { room, id } => Some((room.clone(), *id)),
            _ => None,
        });
        assert_eq!(deleted, ("general".into(), 3));
    }
    let fetched = |node: &Node, ticket: u64| {
        node.next("a Fetched", |e| match e {
            Event::Fetched { ticket: t, result } if *t == ticket => Some(result.clone()),
            _ => None,
        })
        .expect("fetched")
    };
    a.cluster.fetch_after(50, "general", 0, 100);
    let all = fetched(&a, 50);
    let summary: Vec<(u64, bool, &str)> = all
        .iter()
        .map(|m| (m.id, m.deleted, m.text.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, false, "secret1"),
            (2, false, "secret2"),
            (3, true, ""),
            (4, false, "secret4"),
            (5, false, "secret5")
        ]
    );
    assert_eq!(all[2].user, "alice", "the sender stays");
    b.cluster.fetch_before(51, "general", 5, 2);
    let page: Vec<(u64, bool)> = fetched(&b, 51).iter().map(|m| (m.id, m.deleted)).collect();
    assert_eq!(page, [(3, true), (4, false)]);
    let seeded = chat_cluster::connect(chat_cluster::Options::new(redis.url(), "c", 9))
        .expect("join")
        .load_rooms(10)
        .expect("rooms");
    assert_eq!(
        seeded[0]
            .messages
            .iter()
            .map(|m| (m.id, m.deleted))
            .collect::<Vec<_>>(),
        [(1, false), (2, false), (3, true), (4, false), (5, false)]
    );
    // The text is gone from Redis.
    let mut conn = redis.conn();
    let log: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("chat:log:general")
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .expect("xrange");
    assert!(log.iter().all(|(_, f)| !f.contains(&"secret3".to_owned())));
}
