//! [`ChatServer`]: the clients, the broadcast decisions, and the deadline loop.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use crate::heartbeat::{Due, Heartbeat, Liveness};
use crate::rate::{self, Rate, Verdict};
use crate::timer::Timers;
use crate::{
    ClientId, CloseReason, Config, Error, Event, EventKind, Input, Now, Output, Payload, RateLimit,
};

/// One connected client.
#[derive(Debug)]
struct Client {
    user: String,
    /// Tells this connection's timer entries from those of an earlier connection that had the
    /// same [`ClientId`].
    epoch: u64,
    rate: Rate,
    liveness: Liveness,
    /// An [`Output::Close`] was given: the client is only waiting for its Disconnect.
    closing: bool,
}

/// The chat server's state: every connected client, their deadlines, and the outputs not yet
/// drained.
#[derive(Debug)]
pub struct ChatServer {
    /// The rate limit, if it limits anything ([`RateLimit::is_effective`]).
    rate_limit: Option<RateLimit>,
    /// The `message` of the error frame for a rejected message; the same for every rejection.
    rate_message: String,
    heartbeat: Heartbeat,
    /// Ordered, so every broadcast reaches clients in the same order on every run.
    clients: BTreeMap<ClientId, Client>,
    timers: Timers,
    next_epoch: u64,
    outputs: VecDeque<Output>,
}

impl ChatServer {
    /// A server with no clients.
    pub fn new(config: Config) -> Self {
        let rate_limit = config.rate_limit.filter(RateLimit::is_effective);
        ChatServer {
            rate_message: rate_limit
                .as_ref()
                .map(rate::rejection_message)
                .unwrap_or_default(),
            rate_limit,
            heartbeat: Heartbeat::new(&config),
            clients: BTreeMap::new(),
            timers: Timers::default(),
            next_epoch: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one input. Drain [`poll_output`](Self::poll_output) afterwards, then ask
    /// [`poll_timeout`](Self::poll_timeout) again.
    ///
    /// Returns `Err` only when the driver broke the contract; the state is then unchanged.
    pub fn handle_input(&mut self, now: Now, input: Input) -> Result<(), Error> {
        match input {
            Input::Connect { client, user } => self.connect(now, client, user),
            Input::Text { client, text } => self.text(now, client, &text),
            Input::Activity { client } => self.activity(now, client),
            Input::Disconnect { client } => self.disconnect(now, client),
            Input::Timeout => {
                self.timeout(now);
                Ok(())
            }
        }
    }

    /// The next thing the driver must do, or `None` when there is nothing left. Call it until it
    /// returns `None` after every [`handle_input`](Self::handle_input).
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the driver must call `handle_input(now, Input::Timeout)` next, or `None` when no
    /// deadline is pending (no clients, or neither heartbeat nor idle timeout configured). Ask
    /// again after every input: it changes as clients come and go and as timeouts are handled.
    ///
    /// Never later than the earliest real deadline, but possibly earlier (a Timeout then does
    /// nothing and this moves on); see the crate docs. It may be in the past if the driver is
    /// late: deliver the Timeout right away.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.clients.is_empty() {
            return None;
        }
        self.timers.next()
    }

    /// How many clients are connected (including those given an [`Output::Close`] whose
    /// Disconnect has not come yet).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The user name a connected client joined with.
    pub fn user(&self, client: ClientId) -> Option<&str> {
        self.clients.get(&client).map(|c| c.user.as_str())
    }

    fn connect(&mut self, now: Now, client: ClientId, user: String) -> Result<(), Error> {
        if self.clients.contains_key(&client) {
            return Err(Error::AlreadyConnected(client));
        }
        let message = format!("{user} joined the chat");
        let payload = Event::new(EventKind::Connection, &user, &message, now.wall).encode();
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let liveness = Liveness::new(now.instant);
        if let Some(at) = liveness.deadline(&self.heartbeat) {
            self.timers.push(at, client, epoch);
        }
        self.clients.insert(
            client,
            Client {
                user,
                epoch,
                rate: Rate::full(now.instant, self.rate_limit.as_ref()),
                liveness,
                closing: false,
            },
        );
        // The joiner is in the map already: the tutorial greets the new client too.
        self.broadcast(&payload);
        Ok(())
    }

    fn text(&mut self, now: Now, client: ClientId, text: &str) -> Result<(), Error> {
        let sender = self
            .clients
            .get_mut(&client)
            .ok_or(Error::UnknownClient(client))?;
        if sender.closing {
            // Already told to go: whatever it still sends is dropped silently.
            return Ok(());
        }
        sender.liveness.seen(now.instant);
        let verdict = match &self.rate_limit {
            Some(limit) => sender.rate.charge(now.instant, limit),
            None => Verdict::Accept,
        };
        match verdict {
            Verdict::Accept => {
                let payload = Event::new(EventKind::Message, &sender.user, text, now.wall).encode();
                self.broadcast(&payload);
            }
            Verdict::Reject => {
                let payload =
                    Event::new(EventKind::Error, &sender.user, &self.rate_message, now.wall)
                        .with_code("rate_limited")
                        .encode();
                self.outputs.push_back(Output::Send {
                    to: client,
                    payload,
                });
            }
            Verdict::Close => {
                sender.closing = true;
                self.outputs.push_back(Output::Close {
                    client,
                    reason: CloseReason::RateLimited,
                });
            }
        }
        Ok(())
    }

    fn activity(&mut self, now: Now, client: ClientId) -> Result<(), Error> {
        let c = self
            .clients
            .get_mut(&client)
            .ok_or(Error::UnknownClient(client))?;
        c.liveness.seen(now.instant);
        Ok(())
    }

    fn disconnect(&mut self, now: Now, client: ClientId) -> Result<(), Error> {
        let gone = self
            .clients
            .remove(&client)
            .ok_or(Error::UnknownClient(client))?;
        // Its timer entry stays behind, recognised as stale by its epoch when it fires.
        if self.clients.is_empty() {
            self.timers.clear();
        } else {
            let clients = &self.clients;
            self.timers.compact(clients.len(), |id, epoch| {
                clients
                    .get(&id)
                    .is_some_and(|c| c.epoch == epoch && !c.closing)
            });
        }
        let message = format!("{} left the chat", gone.user);
        let payload = Event::new(EventKind::Disconnection, &gone.user, &message, now.wall).encode();
        self.broadcast(&payload);
        Ok(())
    }

    /// Acts on every deadline due at `now`. Each popped entry is either stale (dropped), early
    /// (pushed back at the client's real deadline) or due (acted on, then pushed back at the
    /// next deadline). Every push is later than `now`, so the loop ends and a second Timeout at
    /// the same `now` finds nothing to do.
    fn timeout(&mut self, now: Now) {
        while let Some((id, epoch)) = self.timers.pop_due(now.instant) {
            let Some(client) = self.clients.get_mut(&id) else {
                continue;
            };
            if client.epoch != epoch || client.closing {
                continue;
            }
            match client.liveness.due(now.instant, &self.heartbeat) {
                Some(Due::Idle) => {
                    client.closing = true;
                    self.outputs.push_back(Output::Close {
                        client: id,
                        reason: CloseReason::Idle,
                    });
                    continue;
                }
                Some(Due::Ping) => {
                    client.liveness.pinged(now.instant);
                    self.outputs.push_back(Output::Ping { to: id });
                }
                None => {}
            }
            // Not due means the deadline is later than `now`; after a ping the next one is at
            // least a (non-zero) heartbeat interval away.
            if let Some(at) = client.liveness.deadline(&self.heartbeat) {
                debug_assert!(at > now.instant, "a deadline was not moved past now");
                self.timers.push(at, id, epoch);
            }
        }
    }

    /// Queues `payload` for every connected client not being closed, in client order.
    fn broadcast(&mut self, payload: &Payload) {
        self.outputs.reserve(self.clients.len());
        self.outputs.extend(
            self.clients
                .iter()
                .filter(|(_, c)| !c.closing)
                .map(|(&to, _)| Output::Send {
                    to,
                    payload: payload.clone(),
                }),
        );
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    /// Connection churn leaves stale timer entries behind; they must not pile up.
    #[test]
    fn stale_timer_entries_stay_bounded_under_churn() {
        let mut server = ChatServer::new(Config::default());
        let now = Now {
            instant: Instant::now(),
            wall: DateTime::<Utc>::UNIX_EPOCH,
        };
        let connect = |server: &mut ChatServer, id| {
            let user = format!("u{id}");
            server
                .handle_input(
                    now,
                    Input::Connect {
                        client: ClientId(id),
                        user,
                    },
                )
                .expect("fresh id");
        };
        for id in 0..100 {
            connect(&mut server, id);
        }
        for round in 0..10_000 {
            let id = 100 + round % 3;
            connect(&mut server, id);
            server
                .handle_input(
                    now,
                    Input::Disconnect {
                        client: ClientId(id),
                    },
                )
                .expect("connected");
            while server.poll_output().is_some() {}
            assert!(server.timers.len() <= 2 * server.client_count() + 65);
        }
        assert_eq!(server.client_count(), 100);
    }

    /// A stale entry of an earlier connection with the same id fires once and is dropped, not
    /// taken for the new connection's and kept alive.
    #[test]
    fn a_reused_id_does_not_keep_stale_timer_entries_alive() {
        let mut server = ChatServer::new(Config::default());
        let mut now = Now {
            instant: Instant::now(),
            wall: DateTime::<Utc>::UNIX_EPOCH,
        };
        let feed = |server: &mut ChatServer, now: Now, input: Input| {
            server.handle_input(now, input).expect("valid input");
            while server.poll_output().is_some() {}
        };
        let join = |id| Input::Connect {
            client: ClientId(id),
            user: "u".into(),
        };
        feed(&mut server, now, join(0));
        feed(&mut server, now, join(1));
        for _ in 0..600 {
            now.instant += std::time::Duration::from_secs(1);
            feed(
                &mut server,
                now,
                Input::Disconnect {
                    client: ClientId(1),
                },
            );
            feed(&mut server, now, join(1));
            feed(
                &mut server,
                now,
                Input::Activity {
                    client: ClientId(0),
                },
            );
            feed(&mut server, now, Input::Timeout);
            // Two live entries, and the stale ones of the last 25 s of reconnections.
            assert!(server.timers.len() <= 2 + 25, "{}", server.timers.len());
        }
    }
}
