//! How other threads hand events to the loop: a channel plus a [`mio::Waker`].
//!
//! A thread that does slow work for the loop (storage, a broker connection, password hashing)
//! keeps a [`Handoff`] and sends its results; the loop owns the [`Inbox`] and takes them in the
//! order they were sent, at most a budget per turn, so a burst of them cannot starve the
//! sockets. Neither side knows anything of the other's work: the sending thread needs no mio
//! beyond the waker, and the loop's handling is plain code on its own thread.
//!
//! Wake-ups are coalesced: a send wakes the poller only if no wake-up is pending since the
//! loop last looked, so a burst of a thousand events costs one `eventfd` write, not a thousand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;

use mio::Waker;

/// The sending side; cheap to clone, one per thread.
pub struct Handoff<E> {
    tx: Sender<E>,
    shared: Arc<Shared>,
}

impl<E> Clone for Handoff<E> {
    fn clone(&self) -> Self {
        Handoff {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The loop's side.
pub struct Inbox<E> {
    rx: Receiver<E>,
    shared: Arc<Shared>,
}

struct Shared {
    waker: Arc<Waker>,
    /// A wake-up is pending: the loop has not looked at the inbox since it was sent.
    notified: AtomicBool,
}

/// The loop is gone; the event was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// What [`Inbox::take`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Nothing: the next event will wake the poller.
    Nothing,
    /// The budget ran out with events still waiting: take more next turn, without waiting
    /// in the poll.
    More,
}

/// A new channel whose sends wake the poller through `waker`.
pub fn channel<E>(waker: Arc<Waker>) -> (Handoff<E>, Inbox<E>) {
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        waker,
        notified: AtomicBool::new(false),
    });
    (
        Handoff {
            tx,
            shared: Arc::clone(&shared),
        },
        Inbox { rx, shared },
    )
}

impl<E> Handoff<E> {
    /// Queues `event` for the loop and wakes it if it may be asleep.
    pub fn send(&self, event: E) -> Result<(), Closed> {
        self.tx.send(event).map_err(|_| Closed)?;
        if !self.shared.notified.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.shared.waker.wake() {
                log::error!("cannot wake the event loop: {e}");
            }
        }
        Ok(())
    }
}

impl<E> Inbox<E> {
    /// Hands at most `budget` events to `each`, in the order they were sent.
    pub fn take(&mut self, budget: usize, mut each: impl FnMut(E)) -> Left {
        // Cleared before looking: a send after this point wakes the poller again, so an event
        // can never sit unseen while the loop sleeps.
        self.shared.notified.store(false, Ordering::Release);
        for _ in 0..budget {
            match self.rx.try_recv() {
                Ok(event) => each(event),
                // Every Handoff dropped: nothing more can come.
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Left::Nothing,
            }
        }
        Left::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    use mio::net::TcpListener;
    use mio::{Events, Interest, Poll, Token};

    const WAKE: Token = Token(0);
    const SOCKET: Token = Token(1);
    const BUDGET: usize = 256;

    /// One loop turn the way the event loop takes it: wait (not at all while events are
    /// left over), note the socket, take a budget of events.
    struct MiniLoop {
        poll: Poll,
        events: Events,
        inbox: Inbox<u64>,
        left: Left,
    }

    impl MiniLoop {
        fn new() -> (MiniLoop, Handoff<u64>) {
            let poll = Poll::new().expect("a poller");
            let waker = Arc::new(Waker::new(poll.registry(), WAKE).expect("a waker"));
            let (handoff, inbox) = channel(waker);
            let events = Events::with_capacity(16);
            let mini = MiniLoop {
                poll,
                events,
                inbox,
                left: Left::Nothing,
            };
            (mini, handoff)
        }

        /// Returns whether the socket was readable, and the events taken.
        fn turn(&mut self) -> (bool, Vec<u64>) {
            let timeout = match self.left {
                Left::More => Duration::ZERO,
                Left::Nothing => Duration::from_secs(10),
            };
            self.poll
                .poll(&mut self.events, Some(timeout))
                .expect("poll");
            let readable = self.events.iter().any(|e| e.token() == SOCKET);
            let mut taken = Vec::new();
            self.left = self.inbox.take(BUDGET, |e| taken.push(e));
            (readable, taken)
        }
    }

    #[test]
    fn events_from_another_thread_arrive_in_order_and_wake_the_loop() {
        let (mut mini, handoff) = MiniLoop::new();
        const COUNT: u64 = 20_000;
        let sender = std::thread::spawn(move || {
            for i in 0..COUNT {
                handoff.send(i).expect("the loop is alive");
                if i % 1000 == 0 {
                    // Let the loop catch up and fall asleep now and then.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut seen = Vec::new();
        while (seen.len() as u64) < COUNT {
            let (_, taken) = mini.turn();
            assert!(taken.len() <= BUDGET, "a turn took more than its budget");
            seen.extend(taken);
        }
        sender.join().expect("the sender thread");
        assert_eq!(seen, (0..COUNT).collect::<Vec<_>>());
        // Everything was taken: nothing is left, and the next turn would sleep.
        let mut extra = 0;
        assert_eq!(mini.inbox.take(BUDGET, |_| extra += 1), Left::Nothing);
        assert_eq!(extra, 0);
    }

    #[test]
    fn a_burst_of_events_cannot_starve_a_socket() {
        let (mut mini, handoff) = MiniLoop::new();
        let listener = TcpListener::bind("127.0.0.1:0".parse().expect("an address")).expect("bind");
        let mut client =
            std::net::TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (mut server_side, _) = loop {
            match listener.accept() {
                Ok(accepted) => break accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        mini.poll
            .registry()
            .register(&mut server_side, SOCKET, Interest::READABLE)
            .expect("register");

        // A burst far larger than a turn's budget is waiting before the socket speaks.
        const BURST: u64 = 100 * BUDGET as u64;
        for i in 0..BURST {
            handoff.send(i).expect("the loop is alive");
        }
        let (readable, first) = mini.turn();
        assert!(!readable);
        assert_eq!(first.len(), BUDGET);
        client.write_all(b"x").expect("write");

        let mut taken = first.len() as u64;
        let mut turns_until_readable = None;
        for turn in 1.. {
            let (readable, batch) = mini.turn();
            taken += batch.len() as u64;
            if readable {
                turns_until_readable = Some(turn);
                break;
            }
            assert!(
                taken < BURST,
                "the whole burst went through before the socket"
            );
        }
        let turns = turns_until_readable.expect("the socket was seen");
        assert!(
            taken < BURST / 2,
            "the socket waited for {turns} turns and {taken} of {BURST} events"
        );
    }
}
