//! The bridge to the cluster (`--redis`): what the core asks of the cluster goes to
//! `chat-cluster`'s threads, and what they hear (this node's answers, other nodes' messages,
//! presence, typing and direct messages, the links' state) comes back through the loop's
//! handoff inbox as core inputs. The loop never waits for Redis.

use chat_cluster::{Event, Logged, Outgoing};
use chat_protocol::{ClusterAck, Input, RestoredMessage, RoomName, StoreFailed, StoreTicket};

use super::EventLoop;

/// A message of a room's log as the core takes it.
pub fn restored(message: Logged) -> RestoredMessage {
    RestoredMessage {
        id: message.id,
        user: message.user,
        text: message.text,
        client_msg_id: message.client_msg_id,
        timestamp: chat_adapter::store_records::timestamp(message.timestamp_ms),
        deleted: message.deleted,
    }
}

/// The rooms a starting node read from Redis, as the core restores them.
pub fn restored_rooms(rooms: Vec<chat_cluster::SeedRoom>) -> Vec<chat_protocol::RestoredRoom> {
    rooms
        .into_iter()
        .filter_map(|room| {
            chat_adapter::store_records::restored_room(
                "cluster",
                &room.name,
                room.last_id,
                room.messages,
                restored,
            )
        })
        .collect()
}

/// Who is in each room cluster-wide, as the core takes it.
pub fn restored_presence(rooms: Vec<(String, Vec<String>)>) -> Vec<(RoomName, Vec<String>)> {
    rooms
        .into_iter()
        .filter_map(|(name, users)| RoomName::parse(&name).ok().map(|room| (room, users)))
        .collect()
}

/// The state of the two links to Redis, for `/readyz` and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    pub commands: bool,
    pub subscription: bool,
}

impl Links {
    pub fn up(self) -> bool {
        self.commands && self.subscription
    }
}

impl EventLoop {
    /// This node's name in the cluster.
    fn node_name(&self) -> &str {
        self.cluster_node.as_deref().unwrap_or("")
    }

    /// The core publishes a message through the cluster.
    pub(super) fn cluster_publish(
        &mut self,
        ticket: StoreTicket,
        room: &RoomName,
        outgoing: Outgoing,
    ) {
        match &self.cluster {
            Some(cluster) => cluster.publish(ticket.0, room.as_str(), outgoing),
            None => self.pending.push_back(Input::ClusterPublished {
                ticket,
                result: Err("this node is not in a cluster".into()),
            }),
        }
    }

    /// The core catches a room up after a stretch this node missed.
    pub(super) fn cluster_fetch_after(
        &mut self,
        ticket: StoreTicket,
        room: &RoomName,
        after: u64,
        limit: usize,
    ) {
        match &self.cluster {
            Some(cluster) => cluster.fetch_after(ticket.0, room.as_str(), after, limit),
            None => self.pending.push_back(Input::Fetched {
                ticket,
                result: Err(StoreFailed {
                    reason: "this node is not in a cluster".into(),
                }),
            }),
        }
    }

    /// Leaving the cluster at shutdown: this node's users leave their rooms now.
    pub(super) fn leave_cluster(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.shutdown();
            log::info!("left the cluster");
        }
    }

    /// Something the cluster threads heard.
    pub(super) fn cluster_event(&mut self, event: Event) {
        let input = match event {
            Event::Published { ticket, result } => Input::ClusterPublished {
                ticket: StoreTicket(ticket),
                result: result.map(|(epoch, id, duplicate)| ClusterAck {
                    epoch,
                    id,
                    duplicate,
                }),
            },
            Event::Message {
                room,
                epoch,
                message,
                ..
            } => {
                let Ok(room) = RoomName::parse(&room) else {
                    return;
                };
                Input::ClusterMessage {
                    room,
                    epoch,
                    message: restored(message),
                }
            }
            Event::Joined { room, user } => match RoomName::parse(&room) {
                Ok(room) => Input::ClusterPresence {
                    room,
                    user,
                    joined: true,
                },
                Err(_) => return,
            },
            Event::Left { room, user } => match RoomName::parse(&room) {
                Ok(room) => Input::ClusterPresence {
                    room,
                    user,
                    joined: false,
                },
                Err(_) => return,
            },
            Event::Connection {
                room,
                user,
                joined,
                node,
            } => {
                let Some(room) = foreign_room(&node, self.node_name(), &room) else {
                    return;
                };
                Input::ClusterConnection { room, user, joined }
            }
            Event::Typing { room, user, node } => {
                let Some(room) = foreign_room(&node, self.node_name(), &room) else {
                    return;
                };
                Input::ClusterTyping { room, user }
            }
            Event::Direct {
                room,
                from,
                to,
                text,
                timestamp_ms,
                node,
            } => {
                let Some(room) = foreign_room(&node, self.node_name(), &room) else {
                    return;
                };
                Input::ClusterDirect {
                    room,
                    from,
                    to,
                    text,
                    timestamp: chat_adapter::store_records::timestamp(timestamp_ms),
                }
            }
            Event::Fetched { ticket, result } => Input::Fetched {
                ticket: StoreTicket(ticket),
                result: result
                    .map(|messages| messages.into_iter().map(restored).collect())
                    .map_err(|reason| StoreFailed { reason }),
            },
            Event::Members { .. } => return,
            Event::Deleted { room, id } => {
                let Ok(room) = RoomName::parse(&room) else {
                    return;
                };
                Input::ClusterDeleted { room, id }
            }
            Event::Epoch(epoch) => Input::ClusterEpoch { epoch },
            Event::Link {
                subscribed,
                up,
                detail,
            } => {
                if subscribed {
                    self.cluster_links.subscription = up;
                } else {
                    self.cluster_links.commands = up;
                }
                if up {
                    log::info!("cluster: {detail}");
                } else {
                    log::warn!("cluster: {detail}; /readyz answers 503 until it is back");
                }
                self.metrics.cluster_link_changes += 1;
                return;
            }
        };
        self.feed(input);
    }
}

/// The room of an event another node sent: `None` for this node's own (it acted on it
/// already) and for a room name that is not valid here.
fn foreign_room(node: &str, me: &str, room: &str) -> Option<RoomName> {
    if node == me {
        return None;
    }
    RoomName::parse(room).ok()
}
