//! The subscriber thread: one Redis connection in pub/sub mode, subscribed to every room's
//! channel (`P r:*`), turning each event into an [`Event`]. Redis delivers a channel's messages
//! in the order they were published; a broken connection is reopened with backoff, and
//! `Link { subscribed: true, up: true }` tells the driver to catch up from the rooms' logs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::wire::Wire;
use crate::{Event, Logged, Notify, Options};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a quiet subscription looks at the stop flag.
const POLL: Duration = Duration::from_millis(250);

/// The thread's body; returns when `stop` is set.
pub(crate) fn run(
    client: &redis::Client,
    options: &Options,
    notify: &Notify,
    stop: &AtomicBool,
    subscribed: &std::sync::mpsc::SyncSender<()>,
) {
    let pattern = format!("{}r:*", options.prefix);
    let channel_prefix = format!("{}r:", options.prefix);
    let mut backoff = MIN_BACKOFF;
    let mut was_up = false;
    let mut reported_down = false;
    while !stop.load(Ordering::SeqCst) {
        let connected = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .and_then(|conn| {
                conn.set_read_timeout(Some(POLL))?;
                Ok(conn)
            });
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(e) => {
                if !reported_down {
                    reported_down = true;
                    notify(Event::Link {
                        subscribed: true,
                        up: false,
                        detail: format!("Redis unreachable: {e}"),
                    });
                }
                sleep_unless_stopped(backoff, stop);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let mut pubsub = conn.as_pubsub();
        if let Err(e) = pubsub.psubscribe(&pattern) {
            if !reported_down {
                reported_down = true;
                notify(Event::Link {
                    subscribed: true,
                    up: false,
                    detail: format!("cannot subscribe: {e}"),
                });
            }
            drop(pubsub);
            sleep_unless_stopped(backoff, stop);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        backoff = MIN_BACKOFF;
        // The first time: Cluster::start may return (later ones find the slot full or gone).
        let _ = subscribed.try_send(());
        if was_up || reported_down {
            // Events published meanwhile were missed: the driver reads the logs.
            notify(Event::Link {
                subscribed: true,
                up: true,
                detail: "resubscribed to the rooms' channels".into(),
            });
        }
        was_up = true;
        // Set again when this subscription breaks, before it is read.
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match pubsub.get_message() {
                Ok(message) => {
                    let Some(room) = message.get_channel_name().strip_prefix(&channel_prefix)
                    else {
                        continue;
                    };
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<Wire>(&payload) {
                        Ok(wire) => notify(event(room, wire)),
                        Err(e) => {
                            log::warn!("cluster: an event on {room} that does not parse: {e}")
                        }
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => {
                    reported_down = true;
                    notify(Event::Link {
                        subscribed: true,
                        up: false,
                        detail: format!("subscription lost: {e}"),
                    });
                    break;
                }
            }
        }
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::SeqCst) {
        let step = left.min(POLL);
        std::thread::sleep(step);
        left -= step;
    }
}

fn event(room: &str, wire: Wire) -> Event {
    let room = room.to_owned();
    match wire {
        Wire::Message {
            id,
            e,
            u,
            t,
            ts,
            c,
            n,
        } => Event::Message {
            room,
            epoch: e,
            message: Logged {
                id,
                user: u,
                text: t,
                client_msg_id: c,
                timestamp_ms: ts,
                deleted: false,
            },
            node: n,
        },
        Wire::Connection { u, j, n } => Event::Connection {
            room,
            user: u,
            joined: j,
            node: n,
        },
        Wire::Deleted { id } => Event::Deleted { room, id },
        Wire::Join { u } => Event::Joined { room, user: u },
        Wire::Leave { u } => Event::Left { room, user: u },
        Wire::Typing { u, n } => Event::Typing {
            room,
            user: u,
            node: n,
        },
        Wire::Direct { u, to, t, ts, n } => Event::Direct {
            room,
            from: u,
            to,
            text: t,
            timestamp_ms: ts,
            node: n,
        },
    }
}
