//! Durable mode: a v2 client resuming from before what memory holds gets the missed messages
//! from storage.
//!
//! Memory holds a room's last messages (fewer once the memory budget trims them); storage holds
//! all of them. When a `since` is older than memory but at most [`MAX_RESUME_FETCH`] messages
//! older, the joiner is put on hold: it gets nothing yet, the core asks storage for the missing
//! part (an ordinary [`Output::Fetch`]), and every frame the room sends it meanwhile (its own
//! `connection` notice, live messages, answers to what it sends) is held back, in order. When
//! storage answers, it gets `welcome`, `history` (`resumed: true`: storage's part, then what
//! memory held at connect), then the frames held back: no message lost, none twice, in order.
//!
//! Whatever goes wrong falls back to exactly what the joiner would have got at connect without
//! storage (`welcome`, `gap`, the in-memory `history` of that moment, then the frames held
//! back): a failed read, a read that does not give every missed message (retention deleted
//! some, a failed write), no answer within [`RESUME_WAIT`], or more held back than
//! [`MAX_HELD_BACK_FRAMES`] frames or [`MAX_HELD_BACK_BYTES`] bytes (or, for all waiting
//! joiners together, [`MAX_HELD_BACK_TOTAL_BYTES`]). A joiner that leaves
//! before the answer leaves nothing behind; the answer, when it comes, is ignored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::frame::{Frame, Messages, Stamp};
use crate::history::Stored;
use crate::store::{RestoredMessage, StoreTicket};
use crate::{ClientId, Output, Payload, RoomName};

/// The most missed messages a resume reads from storage: a `since` further back than this
/// before the oldest message memory holds gets a `gap` (and the in-memory history), as without
/// storage. The same bound as a `history_before` page, so a resumed `history` frame is at most
/// a page bigger than a fresh one.
pub const MAX_RESUME_FETCH: usize = 100;

/// How long a resuming joiner waits for storage: past it, it gets the `gap` it would have got
/// without storage, and storage's answer, when it comes, is ignored.
pub const RESUME_WAIT: Duration = Duration::from_secs(2);

/// The most frames held back for a joiner waiting for storage. One more and it gets its `gap`
/// at once, followed by what was held back.
pub const MAX_HELD_BACK_FRAMES: usize = 1_000;

/// The most bytes of frames held back for a joiner waiting for storage (most are shared with
/// the room's other recipients). One more and it gets its `gap` at once, followed by what was
/// held back.
pub const MAX_HELD_BACK_BYTES: usize = 1024 * 1024;

/// The most bytes of frames held back for all waiting joiners together (a frame shared by
/// several counts for each): the joiner whose frame would pass it gets its `gap` at once,
/// followed by what was held back. Keeps a storm of reconnections within a fixed amount of
/// memory whatever they send meanwhile.
pub const MAX_HELD_BACK_TOTAL_BYTES: usize = 16 * 1024 * 1024;

/// Why a resume from storage fell back to a `gap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// Storage could not read.
    Failed,
    /// Storage did not give every missed message.
    Missing,
    /// Storage did not answer within [`RESUME_WAIT`].
    Late,
    /// More than [`MAX_HELD_BACK_FRAMES`] or [`MAX_HELD_BACK_BYTES`] arrived meanwhile (or
    /// the waiting joiners together held [`MAX_HELD_BACK_TOTAL_BYTES`]).
    Overflow,
}

impl Fallback {
    fn explain(self, since: u64) -> String {
        match self {
            Fallback::Failed => format!(
                "messages after {since} could not be read from storage; here is the recent history"
            ),
            Fallback::Missing => format!(
                "messages after {since} are no longer stored; here is the recent history"
            ),
            Fallback::Late => format!(
                "storage did not give the messages after {since} in time; here is the recent history"
            ),
            Fallback::Overflow => format!(
                "too much arrived while the messages after {since} were read from storage; here is the recent history"
            ),
        }
    }
}

/// A joiner waiting for storage, and what it will get.
#[derive(Debug)]
pub(crate) struct Hold {
    /// Which connection of that [`ClientId`].
    pub(crate) serial: u64,
    ticket: StoreTicket,
    deadline: Instant,
    room: RoomName,
    epoch: u64,
    since: u64,
    /// The ids storage was asked for: `since + 1` up to (not including) this.
    fetch_before: u64,
    /// When it connected: the greeting's timestamp.
    wall: DateTime<Utc>,
    /// Its `welcome`, as it was at connect (the members then; joins and leaves since are among
    /// the frames held back).
    welcome: Payload,
    /// What memory held at connect: `fetch_before` up to the room's last id then.
    held: VecDeque<Stored>,
    /// Frames for it since, in order.
    frames: VecDeque<Payload>,
    bytes: usize,
}

/// What [`Holds::hold_back`] did with a frame.
pub(crate) enum HoldBack {
    /// Its recipient is not on hold: send it.
    Pass(Payload),
    /// Kept for later.
    Kept,
    /// Kept, and it was one too many: the hold is over, release it at once.
    Overflow(ClientId, Hold),
}

/// The joiners on hold, by [`ClientId`], with their deadlines and tickets.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    by_client: BTreeMap<ClientId, Hold>,
    deadlines: BTreeSet<(Instant, ClientId)>,
    tickets: BTreeMap<StoreTicket, ClientId>,
    /// What all holds keep together (the sum of their `bytes`).
    bytes: usize,
}

/// What a joiner resuming from storage needs: [`Holds::start`]'s arguments besides the client.
pub(crate) struct Request {
    pub(crate) serial: u64,
    pub(crate) ticket: StoreTicket,
    pub(crate) now: Instant,
    pub(crate) wall: DateTime<Utc>,
    pub(crate) room: RoomName,
    pub(crate) epoch: u64,
    pub(crate) since: u64,
    pub(crate) fetch_before: u64,
    pub(crate) welcome: Payload,
    pub(crate) held: VecDeque<Stored>,
}

impl Holds {
    /// Nobody is on hold: every frame passes.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// What all holds keep together, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many joiners wait for storage.
    pub(crate) fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Puts `client` on hold until storage answers `request.ticket` or [`RESUME_WAIT`] passes.
    pub(crate) fn start(&mut self, client: ClientId, request: Request) {
        let deadline = request.now + RESUME_WAIT;
        self.deadlines.insert((deadline, client));
        self.tickets.insert(request.ticket, client);
        let hold = Hold {
            serial: request.serial,
            ticket: request.ticket,
            deadline,
            room: request.room,
            epoch: request.epoch,
            since: request.since,
            fetch_before: request.fetch_before,
            wall: request.wall,
            welcome: request.welcome,
            held: request.held,
            frames: VecDeque::new(),
            bytes: 0,
        };
        if let Some(old) = self.by_client.insert(client, hold) {
            debug_assert!(false, "a connection is put on hold once");
            self.forget(&old, client);
        }
    }

    /// Keeps `payload` if `to` is on hold; gives it back otherwise.
    pub(crate) fn hold_back(&mut self, to: ClientId, payload: Payload) -> HoldBack {
        let Some(hold) = self.by_client.get_mut(&to) else {
            return HoldBack::Pass(payload);
        };
        hold.bytes = hold.bytes.saturating_add(payload.len());
        self.bytes = self.bytes.saturating_add(payload.len());
        hold.frames.push_back(payload);
        if hold.frames.len() <= MAX_HELD_BACK_FRAMES
            && hold.bytes <= MAX_HELD_BACK_BYTES
            && self.bytes <= MAX_HELD_BACK_TOTAL_BYTES
        {
            return HoldBack::Kept;
        }
        match self.remove(to) {
            Some(hold) => HoldBack::Overflow(to, hold),
            None => HoldBack::Kept,
        }
    }

    /// Takes the hold that waits for `ticket`, with its client.
    pub(crate) fn answered(&mut self, ticket: StoreTicket) -> Option<(ClientId, Hold)> {
        let client = *self.tickets.get(&ticket)?;
        let hold = self.remove(client)?;
        Some((client, hold))
    }

    /// Takes a hold whose deadline is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(ClientId, Hold)> {
        let &(at, client) = self.deadlines.first()?;
        if at > now {
            return None;
        }
        let hold = self.remove(client)?;
        Some((client, hold))
    }

    /// The earliest deadline of a hold.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// Ends `client`'s hold (it left, or it is being released), if it has one.
    pub(crate) fn remove(&mut self, client: ClientId) -> Option<Hold> {
        let hold = self.by_client.remove(&client)?;
        self.forget(&hold, client);
        Some(hold)
    }

    fn forget(&mut self, hold: &Hold, client: ClientId) {
        self.bytes = self.bytes.saturating_sub(hold.bytes);
        self.deadlines.remove(&(hold.deadline, client));
        self.tickets.remove(&hold.ticket);
    }
}

impl Hold {
    /// What `client` gets when its hold ends: `welcome`, then the resumed `history` (storage's
    /// `answer` holds every missed message) or a `gap` and the in-memory `history` of connect
    /// time, then the frames held back, in order.
    pub(crate) fn release(
        self,
        client: ClientId,
        answer: Result<Vec<RestoredMessage>, Fallback>,
    ) -> Vec<Output> {
        let missed = answer.and_then(|messages| self.exactly_the_missed(messages));
        let room = self.room.as_str();
        let timestamp = Stamp(self.wall);
        let mut frames = vec![self.welcome.clone()];
        let (restored, resumed) = match missed {
            Ok(restored) => (restored, true),
            Err(why) => {
                frames.push(
                    Frame::Gap {
                        room,
                        epoch: self.epoch,
                        since: self.since,
                        message: &why.explain(self.since),
                        timestamp,
                    }
                    .encode(),
                );
                (Vec::new(), false)
            }
        };
        frames.push(
            Frame::History {
                room,
                epoch: self.epoch,
                resumed,
                messages: Messages {
                    room,
                    restored: &restored,
                    held: self.held.iter(),
                },
                timestamp,
            }
            .encode(),
        );
        frames
            .into_iter()
            .chain(self.frames)
            .map(|payload| Output::Send {
                to: client,
                payload,
            })
            .collect()
    }

    /// Of what storage gave, the messages `since + 1 .. fetch_before`, if it gave every one of
    /// them. Storage is trusted to answer the request, but never blindly: what lies outside it
    /// or breaks the order is dropped, and a hole means a `gap`.
    fn exactly_the_missed(
        &self,
        messages: Vec<RestoredMessage>,
    ) -> Result<Vec<RestoredMessage>, Fallback> {
        let mut kept: Vec<RestoredMessage> = Vec::new();
        for m in messages {
            if m.id > self.since
                && m.id < self.fetch_before
                && kept.last().is_none_or(|last| last.id < m.id)
            {
                kept.push(m);
            }
        }
        // Increasing ids inside the range, as many as the range has: every one of them.
        let wanted = self.fetch_before - self.since - 1;
        if kept.len() as u64 == wanted {
            Ok(kept)
        } else {
            Err(Fallback::Missing)
        }
    }
}
