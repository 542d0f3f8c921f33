//! One room: who hears its broadcasts, who is present, and its history.

use std::collections::{btree_map, BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

use crate::history::History;
use crate::{ClientId, Output, Payload, Protocol};

/// One user's presence in a room: its connections in the room, those being closed included
/// (a user is present until the Disconnect of its last connection), and its v2 connections
/// that are not being closed (where its direct messages go). The count shares its word with
/// the variant's tag and the v2 connections are inline while there is at most one (nearly
/// always), so an entry of the room's B-tree is 32 bytes: see `size_budget`.
#[derive(Debug)]
enum Presence {
    NoV2 {
        connections: u32,
    },
    OneV2 {
        connections: u32,
        v2: ClientId,
    },
    ManyV2 {
        connections: u32,
        /// Boxed on purpose: 8 bytes in every presence entry instead of 24.
        #[allow(clippy::box_collection)]
        v2: Box<BTreeSet<ClientId>>,
    },
}

impl Default for Presence {
    fn default() -> Self {
        Presence::NoV2 { connections: 0 }
    }
}

impl Presence {
    fn connections(&mut self) -> &mut u32 {
        match self {
            Presence::NoV2 { connections }
            | Presence::OneV2 { connections, .. }
            | Presence::ManyV2 { connections, .. } => connections,
        }
    }

    fn add_v2(&mut self, client: ClientId) {
        let connections = *self.connections();
        *self = match std::mem::take(self) {
            Presence::NoV2 { .. } => Presence::OneV2 {
                connections,
                v2: client,
            },
            Presence::OneV2 { v2, .. } if v2 == client => Presence::OneV2 { connections, v2 },
            Presence::OneV2 { v2, .. } => Presence::ManyV2 {
                connections,
                v2: Box::new(BTreeSet::from([v2, client])),
            },
            Presence::ManyV2 { mut v2, .. } => {
                v2.insert(client);
                Presence::ManyV2 { connections, v2 }
            }
        };
    }

    fn remove_v2(&mut self, client: ClientId) {
        let connections = *self.connections();
        *self = match std::mem::take(self) {
            Presence::OneV2 { v2, .. } if v2 == client => Presence::NoV2 { connections },
            Presence::ManyV2 { mut v2, .. } => {
                v2.remove(&client);
                match v2.len() {
                    0 => Presence::NoV2 { connections },
                    1 => match v2.first() {
                        Some(&one) => Presence::OneV2 {
                            connections,
                            v2: one,
                        },
                        None => Presence::NoV2 { connections },
                    },
                    _ => Presence::ManyV2 { connections, v2 },
                }
            }
            other => other,
        };
    }

    /// The v2 connections, in [`ClientId`] order.
    fn v2(&self) -> impl Iterator<Item = &ClientId> + Clone {
        let (one, many) = match self {
            Presence::NoV2 { .. } => (None, None),
            Presence::OneV2 { v2, .. } => (Some(v2), None),
            Presence::ManyV2 { v2, .. } => (None, Some(&**v2)),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    fn v2_len(&self) -> usize {
        match self {
            Presence::NoV2 { .. } => 0,
            Presence::OneV2 { .. } => 1,
            Presence::ManyV2 { v2, .. } => v2.len(),
        }
    }

    fn has_v2(&self, client: &ClientId) -> bool {
        match self {
            Presence::NoV2 { .. } => false,
            Presence::OneV2 { v2, .. } => v2 == client,
            Presence::ManyV2 { v2, .. } => v2.contains(client),
        }
    }
}

/// The connections in a room, by protocol and by user, and the room's messages.
#[derive(Debug)]
pub(crate) struct Room {
    /// Who hears broadcasts: the connections not being closed, one ordered set per protocol,
    /// so a broadcast only visits the connections of the protocols it has a frame for.
    v1: BTreeSet<ClientId>,
    v2: BTreeSet<ClientId>,
    /// Who is present, by user name (sorted, as the `welcome` frame lists them).
    users: BTreeMap<Arc<str>, Presence>,
    /// When a typing notice of each user who typed was last relayed. Apart from `users`, so
    /// that the presence of the many who never type (v1 clients cannot) stays small.
    typed: BTreeMap<Arc<str>, Instant>,
    /// Every connection in the room, those being closed included.
    connections: usize,
    /// The message ids and the last messages.
    pub(crate) history: History,
    /// While nobody is in the room: its number in the order rooms became empty.
    pub(crate) vacant_since: Option<u64>,
    /// While it holds messages: its number in the order rooms last got one (see
    /// [`Rooms`](crate::rooms::Rooms), which trims the least recently active first).
    pub(crate) active_since: Option<u64>,
    /// What its history cost when [`Rooms`](crate::rooms::Rooms) last counted it.
    pub(crate) counted_bytes: usize,
    /// Cluster mode: its last id is the cluster's (restored at start, heard from the cluster,
    /// or restarted by a new epoch). Until then any id the cluster gives is its start.
    pub(crate) synced: bool,
}

impl Room {
    /// An empty room with this history.
    pub(crate) fn new(history: History) -> Self {
        Room {
            v1: BTreeSet::new(),
            v2: BTreeSet::new(),
            users: BTreeMap::new(),
            typed: BTreeMap::new(),
            connections: 0,
            history,
            vacant_since: None,
            active_since: None,
            counted_bytes: 0,
            synced: false,
        }
    }

    /// Nobody is in the room, not even a connection being closed.
    pub(crate) fn is_empty(&self) -> bool {
        self.connections == 0
    }

    /// Whether a broadcast would reach someone speaking `protocol`: encode its frame only then.
    pub(crate) fn has(&self, protocol: Protocol) -> bool {
        !self.audience(protocol).is_empty()
    }

    fn audience(&self, protocol: Protocol) -> &BTreeSet<ClientId> {
        match protocol {
            Protocol::V1 => &self.v1,
            Protocol::V2 => &self.v2,
        }
    }

    fn audience_mut(&mut self, protocol: Protocol) -> &mut BTreeSet<ClientId> {
        match protocol {
            Protocol::V1 => &mut self.v1,
            Protocol::V2 => &mut self.v2,
        }
    }

    /// Adds a connection of `user`. Returns the user's name as the room shares it between the
    /// user's connections, and whether this is the user's first connection (it just joined).
    pub(crate) fn join(
        &mut self,
        client: ClientId,
        user: String,
        protocol: Protocol,
    ) -> (Arc<str>, bool) {
        self.connections += 1;
        self.audience_mut(protocol).insert(client);
        // Every connection of a user shares one allocation of its name.
        let name: Arc<str> = match self.users.get_key_value(user.as_str()) {
            Some((name, _)) => Arc::clone(name),
            None => user.into(),
        };
        let presence = self.users.entry(Arc::clone(&name)).or_default();
        *presence.connections() += 1;
        if protocol == Protocol::V2 {
            presence.add_v2(client);
        }
        (name, *presence.connections() == 1)
    }

    /// The connection is being closed: it hears nothing more, but its user stays present until
    /// its Disconnect.
    pub(crate) fn mute(&mut self, client: ClientId, user: &str, protocol: Protocol) {
        self.audience_mut(protocol).remove(&client);
        if let Some(p) = self.users.get_mut(user) {
            p.remove_v2(client);
        }
    }

    /// Removes a connection (muted or not). Returns whether it was its user's last one (the
    /// user left).
    pub(crate) fn leave(&mut self, client: ClientId, user: &str, protocol: Protocol) -> bool {
        self.mute(client, user, protocol);
        self.connections = self.connections.saturating_sub(1);
        let Some(p) = self.users.get_mut(user) else {
            debug_assert!(false, "a connection's user is present");
            return false;
        };
        let connections = p.connections();
        *connections = connections.saturating_sub(1);
        if *connections > 0 {
            return false;
        }
        self.users.remove(user);
        self.typed.remove(user);
        true
    }

    /// The user names present, sorted.
    pub(crate) fn members(&self) -> Members<'_> {
        Members(self.users.keys())
    }

    /// Queues `v1` for every v1 connection, then `v2` for every v2 connection, each in
    /// [`ClientId`] order; `None` means that protocol hears nothing of this.
    pub(crate) fn broadcast(
        &self,
        out: &mut VecDeque<Output>,
        v1: Option<&Payload>,
        v2: Option<&Payload>,
    ) {
        for (payload, audience) in [(v1, &self.v1), (v2, &self.v2)] {
            if let Some(payload) = payload.filter(|_| !audience.is_empty()) {
                out.push_back(Output::SendMany {
                    to: audience.iter().copied().collect(),
                    payload: payload.clone(),
                });
            }
        }
    }

    /// Whether a typing notice of `user` is due at `now` (none relayed for `interval`); if so,
    /// the next one waits `interval` from now.
    pub(crate) fn may_type(&mut self, user: &str, now: Instant, interval: Duration) -> bool {
        let Some((name, _)) = self.users.get_key_value(user) else {
            return false;
        };
        // saturating: a clock that went backwards means "too soon", not a panic.
        if self
            .typed
            .get(user)
            .is_some_and(|at| now.saturating_duration_since(*at) < interval)
        {
            return false;
        }
        self.typed.insert(Arc::clone(name), now);
        true
    }

    /// Whether anyone would receive `user`'s typing notice: a v2 connection of another user.
    pub(crate) fn has_typing_audience(&self, user: &str) -> bool {
        let own = self.users.get(user).map_or(0, Presence::v2_len);
        self.v2.len() > own
    }

    /// Queues `payload` for every v2 connection except `user`'s own, in [`ClientId`] order, as
    /// one output (see [`Room::broadcast`]).
    pub(crate) fn relay_typing(&self, out: &mut VecDeque<Output>, user: &str, payload: &Payload) {
        let own = self.users.get(user);
        let to: Vec<ClientId> = self
            .v2
            .iter()
            .filter(|to| !own.is_some_and(|own| own.has_v2(to)))
            .copied()
            .collect();
        if !to.is_empty() {
            out.push_back(Output::SendMany {
                to,
                payload: payload.clone(),
            });
        }
    }

    /// The v2 connections of `user` that are not being closed, in [`ClientId`] order.
    pub(crate) fn v2_of(&self, user: &str) -> Vec<ClientId> {
        self.users
            .get(user)
            .map(|p| p.v2().copied().collect())
            .unwrap_or_default()
    }

    /// Where a direct message from `from` to `to` goes: every v2 connection of `to` and of
    /// `from` (the echo), each once, in [`ClientId`] order. `None` when `to` has no v2
    /// connection here.
    pub(crate) fn direct_audience(&self, from: &str, to: &str) -> Option<Vec<ClientId>> {
        let recipient = self.users.get(to).filter(|p| p.v2_len() > 0)?;
        let echo = self.users.get(from);
        let mut all: Vec<ClientId> = recipient
            .v2()
            .chain(echo.into_iter().flat_map(Presence::v2))
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        Some(all)
    }
}

/// The `members` of a `welcome` frame: the room's, or (cluster mode) those and the cluster's
/// together, sorted, each once.
#[derive(Debug)]
pub(crate) enum MemberNames<'a> {
    /// Only this server's.
    Local(Members<'a>),
    /// The union with the cluster's.
    Union(BTreeSet<&'a str>),
}

impl Serialize for MemberNames<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MemberNames::Local(members) => members.serialize(s),
            MemberNames::Union(names) => s.collect_seq(names),
        }
    }
}

/// The user names present in a room, sorted: an iterator, and the `members` of a `welcome`
/// frame.
#[derive(Debug, Clone)]
pub(crate) struct Members<'a>(btree_map::Keys<'a, Arc<str>, Presence>);

impl<'a> Iterator for Members<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.0.next().map(|name| &**name)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl Serialize for Members<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.clone())
    }
}

/// See `server.rs`'s `size_budget`: what each user in a room costs, so it cannot creep back up.
#[cfg(test)]
mod size_budget {
    use std::mem::size_of;

    use super::*;

    #[test]
    fn a_presence_stays_within_budget() {
        // One per user in a room, in a B-tree keyed by the shared name (16 bytes): the count of
        // connections (u32, beside the tag) and the v2 connections (one inline, more boxed).
        // 16 bytes, so an entry is 32 and a B-tree leaf of 11 is 364 bytes (with an inline
        // BTreeSet it was 48 and 540; with the last typing notice in here too, 64 and 716).
        assert!(
            size_of::<Presence>() <= 16,
            "Presence: {}",
            size_of::<Presence>()
        );
        assert_eq!(size_of::<Arc<str>>(), 16);
    }
}
