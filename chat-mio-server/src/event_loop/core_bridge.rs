//! The bridge to the chat core: inputs go in, and each output becomes a frame queued to its
//! recipient (encoded once per broadcast into the turn's batch), a ping, or a close.

use chat_protocol::{ClientId, CloseReason, Input, Output, Payload};

use super::{EventLoop, CLOSE_LINGER};
use crate::batch::Span;
use crate::connection::{Conn, Flushed};

impl EventLoop {
    /// Feeds the core one input, then everything that follows from carrying out its outputs.
    pub(super) fn feed(&mut self, input: Input) {
        self.pending.push_back(input);
        self.settle();
    }

    /// Feeds pending inputs until none is left. Carrying out an output never feeds the core
    /// directly (it may queue a disconnect), so every input's outputs are drained completely
    /// before the next input, as the core's contract asks.
    pub(super) fn settle(&mut self) {
        while let Some(input) = self.pending.pop_front() {
            if let Err(e) = self.core.handle_input(self.now, input) {
                // A bug in this driver, not something a client did.
                log::error!("chat core refused an input: {e}");
            }
            // A broadcast comes as one output: its frame is found (or encoded) once, and its
            // payload is not cloned and dropped once per recipient.
            while let Some(output) = self.core.poll_output_grouped() {
                self.carry_out(output);
            }
        }
        self.frame_cache = None;
    }

    /// The one place a chat client leaves: the core is told exactly once.
    pub(super) fn leave(&mut self, client: ClientId) {
        self.metrics.websocket_open -= 1;
        self.pending.push_back(Input::Disconnect { client });
    }

    /// Sends a close frame for `reason` and ends the client. `drop_queued`: frames it has not
    /// started to receive are dropped (a slow consumer would never get to the close frame).
    pub(super) fn close_client(&mut self, key: usize, reason: CloseReason, drop_queued: bool) {
        self.close_client_with(key, reason, None, drop_queued);
    }

    /// [`close_client`](Self::close_client) with a close text of the core's (a kick's or a
    /// ban's reason) instead of `reason.text()`.
    fn close_client_with(
        &mut self,
        key: usize,
        reason: CloseReason,
        text: Option<&str>,
        drop_queued: bool,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(departed) = conn.close_ws(Some(reason), text, drop_queued, &self.ws_config) else {
            return;
        };
        log::info!(
            "{} ({}) closed by the server: {}",
            self.core.user(departed.client).unwrap_or_default(),
            conn.peer(),
            text.unwrap_or(reason.text())
        );
        self.metrics.closed(reason);
        self.set_deadline(key, CLOSE_LINGER);
        self.mark_dirty(key);
        self.leave(departed.client);
    }

    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Send { to, payload } => {
                let frame = self.encode(payload);
                self.queue_frame(to, frame);
            }
            Output::SendMany { to, payload } => {
                let frame = self.encode(payload);
                for to in to {
                    self.queue_frame(to, frame);
                }
            }
            Output::Ping { to } => {
                let key = to.0 as usize;
                if let Some(conn) = self.conns.get_mut(key).filter(|c| c.client() == Some(to)) {
                    conn.send_ping();
                    self.mark_dirty(key);
                }
            }
            Output::Close { client, reason } => {
                let key = client.0 as usize;
                if self
                    .conns
                    .get(key)
                    .is_some_and(|c| c.client() == Some(client))
                {
                    self.close_client(key, reason, false);
                }
            }
            Output::CloseWith {
                client,
                reason,
                text,
            } => {
                let key = client.0 as usize;
                if self
                    .conns
                    .get(key)
                    .is_some_and(|c| c.client() == Some(client))
                {
                    self.close_client_with(key, reason, Some(&text), false);
                }
            }
            // Moderation that outlives the connection: `moderation.rs`.
            Output::Ban {
                user,
                until,
                reason,
            } => self.ban(user, until, reason),
            Output::DeleteStored { room, id } => self.delete_stored(room, id),
            // Storage: handed to the storage thread (`storage.rs`); the loop never waits.
            Output::Store(record) => self.store(record),
            Output::Fetch {
                ticket,
                room,
                before,
                limit,
                ..
            } => self.fetch(ticket, room, before, limit),
            Output::VerifyToken { ticket, token, .. } => self.verify_token(ticket, token),
            // The answer to a server API request (`api.rs`), fed just before.
            Output::Published { result, .. } => {
                self.api_answer = Some(super::api::CoreAnswer::Published(result));
            }
            Output::Dismissed { connections, .. } => {
                self.api_answer = Some(super::api::CoreAnswer::Dismissed(connections));
            }
            // Cluster mode (`--redis`): handed to the cluster threads (`cluster.rs`); the core
            // gives these only with `Config::cluster`.
            Output::ClusterPublish {
                ticket,
                room,
                user,
                text,
                client_msg_id,
                timestamp,
            } => {
                let outgoing = chat_cluster::Outgoing {
                    user: user.to_string(),
                    text: text.as_str().to_owned(),
                    client_msg_id,
                    timestamp_ms: timestamp.timestamp_millis(),
                };
                self.cluster_publish(ticket, &room, outgoing);
            }
            Output::ClusterJoin { room, user } => {
                if let Some(cluster) = &self.cluster {
                    cluster.join(room.as_str(), &user);
                }
            }
            Output::ClusterLeave { room, user } => {
                if let Some(cluster) = &self.cluster {
                    cluster.leave(room.as_str(), &user);
                }
            }
            Output::ClusterTyping { room, user } => {
                if let Some(cluster) = &self.cluster {
                    cluster.typing(room.as_str(), &user);
                }
            }
            Output::ClusterDirect {
                room,
                from,
                to,
                text,
                timestamp,
            } => {
                if let Some(cluster) = &self.cluster {
                    cluster.direct(
                        room.as_str(),
                        &from,
                        &to,
                        &text,
                        timestamp.timestamp_millis(),
                    );
                }
            }
            Output::ClusterDelete { room, id } => {
                log::info!("message {id} of {room} deleted by an admin (cluster-wide)");
                if let Some(cluster) = &self.cluster {
                    cluster.delete(room.as_str(), id);
                }
            }
            Output::ClusterFetchAfter {
                ticket,
                room,
                after,
                limit,
            } => self.cluster_fetch_after(ticket, &room, after, limit),
        }
    }

    /// A frame of `len` bytes does not fit in the connection's queue: gives the kernel what it
    /// will take now, and if that is not enough closes the client as a slow consumer. Whether
    /// the frame can be queued.
    fn make_room(&mut self, key: usize, len: usize) -> bool {
        self.frame_cache = None;
        let sealed = self.batch.seal();
        let conn = &mut self.conns[key];
        if conn.flush(sealed, &mut self.metrics.bytes_out) == Flushed::Gone {
            self.mark_gone(key);
            return false;
        }
        if conn.queued() + len > self.config.max_outbound {
            self.close_client(key, CloseReason::SlowConsumer, true);
            return false;
        }
        true
    }

    /// The WebSocket frame for a text payload, encoded once per broadcast into the turn's
    /// batch.
    /// Queues the encoded `frame` to `to`, if it is still connected (a slow consumer over
    /// `--max-outbound` is dealt with first, see `memory.rs`).
    fn queue_frame(&mut self, to: ClientId, frame: Span) {
        let key = to.0 as usize;
        let Some(queued) = self
            .conns
            .get(key)
            .filter(|c| c.client() == Some(to))
            .map(Conn::queued)
        else {
            return;
        };
        if queued + frame.len() > self.config.max_outbound && !self.make_room(key, frame.len()) {
            return;
        }
        // A live client: queue and schedule it without a second lookup.
        let conn = &mut self.conns[key];
        conn.queue_frames(frame);
        self.dirty.add(key, conn);
        self.metrics.messages_delivered += 1;
    }

    fn encode(&mut self, payload: Payload) -> Span {
        if let Some((cached, span)) = &self.frame_cache {
            // The cache holds a clone of its payload, so its buffer cannot have been freed and
            // reused: the same buffer means the same payload.
            if cached.same_buffer(&payload) {
                return *span;
            }
        }
        let span = self.batch.text_frame(payload.clone().into());
        self.frame_cache = Some((payload, span));
        span
    }
}
