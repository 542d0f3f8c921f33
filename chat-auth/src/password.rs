//! Passwords: argon2id hashes in PHC string format, computed on worker threads.
//!
//! Parameters ([`M_COST_KIB`], [`T_COST`], [`P_COST`]): argon2id, m = 19 MiB, t = 2, p = 1,
//! 32-byte output, 16-byte salt from the OS RNG: OWASP's first recommended configuration, and the `argon2` crate's defaults.
//! About 18 ms of one core per hash or verification in a release build (BENCHMARKS.md,
//! "Authentication costs"): slow enough to make an offline guess expensive, and 19 MiB per
//! worker thread is affordable on a small server.
//!
//! The functions here ([`hash_password`], [`verify_password`], [`verify_dummy`]) block for that
//! long: an event loop reaches them through a [`Hasher`], whose threads do the work and hand
//! each answer to a callback.

use std::fmt;
use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// Memory cost in KiB (19 MiB).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Number of passes.
pub const T_COST: u32 = 2;
/// Lanes (parallelism within one hash).
pub const P_COST: u32 = 1;

/// Longest password accepted, in bytes: longer ones are refused (hashing) or never match
/// (verification), so a request cannot make a worker hold megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Largest parameters a stored hash may ask for before verification refuses it (a hash from a
/// tampered or foreign database must not make a worker allocate gigabytes): 256 MiB, 10 passes,
/// 4 lanes.
const MAX_VERIFY_M_COST_KIB: u32 = 256 * 1024;
const MAX_VERIFY_T_COST: u32 = 10;
const MAX_VERIFY_P_COST: u32 = 4;

/// Requests a [`Hasher`] holds waiting for a thread, by default. Past that (plus one request
/// being worked on per thread), a request is refused at once with [`Busy`]: at ~18 ms a
/// verification, 64 queued requests are about 1.1 s of work for one thread.
pub const QUEUE_BOUND: usize = 64;

/// A hash of a random password nobody knows, with the same parameters as [`hash_password`]
/// uses, so that checking a login for a user that does not exist costs what checking a real
/// one does ([`verify_dummy`]).
pub const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$zQAjXomnaDjbgg45M72owg$bqZMXBcVj9JW7LvWAVWYbjcbJQETvIL1u5miqsNhTuA";

/// A password (or other secret text). Its `Debug` prints `***`, it has no `Display`, and its
/// memory is zeroed when it is dropped.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(s.into()))
    }

    /// The secret text, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret::new(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a password could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordError {
    /// Empty.
    Empty,
    /// Longer than [`MAX_PASSWORD_BYTES`].
    TooLong,
    /// The OS random number generator failed.
    Rng,
    /// argon2 refused (should not happen with the fixed parameters).
    Hash,
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordError::Empty => f.write_str("the password is empty"),
            PasswordError::TooLong => write!(
                f,
                "the password is too long (at most {MAX_PASSWORD_BYTES} bytes)"
            ),
            PasswordError::Rng => f.write_str("the system random number generator failed"),
            PasswordError::Hash => f.write_str("the password could not be hashed"),
        }
    }
}

impl std::error::Error for PasswordError {}

fn argon2() -> Argon2<'static> {
    // The parameters are constants within argon2's limits: `Params::new` cannot fail on them,
    // and the fallback (argon2's defaults) is the same set.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh salt: a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
/// Blocks for the cost of one hash.
pub fn hash_password(password: &Secret) -> Result<String, PasswordError> {
    let password = password.expose().as_bytes();
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|_| PasswordError::Rng)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
    argon2()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// Whether `password` matches the PHC string `phc`. `false` for a wrong password, an empty or
/// too long one, a PHC string that does not parse, is not argon2id, or asks for more than
/// 256 MiB, 10 passes or 4 lanes. Blocks for the cost of one hash (argon2's comparison of
/// the outputs is constant-time).
pub fn verify_password(password: &Secret, phc: &str) -> bool {
    let password = password.expose().as_bytes();
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST_KIB
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return false;
    }
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        // Still spend the time, so a length probe cannot be told from a wrong password.
        let _ = argon2().verify_password(b"-", &hash);
        return false;
    }
    argon2().verify_password(password, &hash).is_ok()
}

/// Verifies `password` against [`DUMMY_PHC`] and returns `false`: what a login for a user that
/// does not exist runs, so that it takes as long as a wrong password for one that does.
pub fn verify_dummy(password: &Secret) -> bool {
    let _ = verify_password(password, DUMMY_PHC);
    false
}

/// An answer from a [`Hasher`] thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashDone {
    /// A [`Hasher::verify`] or [`Hasher::verify_unknown_user`]: whether the password matched.
    Verified {
        /// The caller's ticket.
        ticket: u64,
        /// Matched (always `false` for an unknown user).
        ok: bool,
    },
    /// A [`Hasher::hash`]: the PHC string, or why not (a short sentence).
    Hashed {
        /// The caller's ticket.
        ticket: u64,
        /// The PHC string, or the reason it could not be made.
        result: Result<String, String>,
    },
}

/// The queue is full (or the threads are gone): the request was not taken, and no
/// [`HashDone`] will come for it. The caller answers at once (503 / 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the password service is busy, try again shortly")
    }
}

impl std::error::Error for Busy {}

enum Job {
    Verify {
        ticket: u64,
        password: Secret,
        phc: String,
    },
    VerifyDummy {
        ticket: u64,
        password: Secret,
    },
    Hash {
        ticket: u64,
        password: Secret,
    },
}

type Notify = Arc<Mutex<dyn Fn(HashDone) + Send>>;

/// Worker threads for password hashing and verification, behind a bounded queue.
///
/// The calls only try to queue a request and return: they never block, and they refuse with
/// [`Busy`] when [`QUEUE_BOUND`] requests (or the bound given to [`Hasher::start_with_bound`])
/// already wait. Each accepted request is answered exactly once through `notify`, which runs on
/// a worker thread: it must be quick (hand the answer to the event loop and wake it) and must
/// not call back into the `Hasher`. With one thread the answers come in request order; with
/// several, requests start in order but may finish out of order: match them by ticket.
///
/// Dropping the `Hasher` (or [`Hasher::shutdown`]) lets the threads finish what is queued,
/// answer it, and exit; it waits for them.
pub struct Hasher {
    tx: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("threads", &self.workers.len())
            .finish()
    }
}

impl Hasher {
    /// Starts `threads` worker threads (`chat-auth-hash-N`) with a queue of [`QUEUE_BOUND`].
    /// `threads` must be at least 1.
    pub fn start(threads: usize, notify: impl Fn(HashDone) + Send + 'static) -> io::Result<Hasher> {
        Hasher::start_with_bound(threads, QUEUE_BOUND, notify)
    }

    /// [`Hasher::start`] with a queue of `bound` waiting requests (0 is allowed: then a request
    /// is taken only when a thread is free to start it at once).
    pub fn start_with_bound(
        threads: usize,
        bound: usize,
        notify: impl Fn(HashDone) + Send + 'static,
    ) -> io::Result<Hasher> {
        Hasher::start_with(threads, bound, || {}, notify)
    }

    /// Like [`Hasher::start_with_bound`], and each thread first runs `on_thread_start` (to
    /// lower its scheduling priority below an event loop's, for instance: a login storm then
    /// takes the CPU the loop leaves, not the loop's).
    pub fn start_with(
        threads: usize,
        bound: usize,
        on_thread_start: impl Fn() + Send + Sync + 'static,
        notify: impl Fn(HashDone) + Send + 'static,
    ) -> io::Result<Hasher> {
        if threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the password hasher needs at least one thread",
            ));
        }
        let (tx, rx) = mpsc::sync_channel(bound);
        let rx = Arc::new(Mutex::new(rx));
        let notify: Notify = Arc::new(Mutex::new(notify));
        let on_thread_start = Arc::new(on_thread_start);
        let mut hasher = Hasher {
            tx: Some(tx),
            workers: Vec::with_capacity(threads),
        };
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let notify = Arc::clone(&notify);
            let on_thread_start = Arc::clone(&on_thread_start);
            let handle = std::thread::Builder::new()
                .name(format!("chat-auth-hash-{i}"))
                .spawn(move || {
                    on_thread_start();
                    worker(&rx, &notify)
                })?;
            // On a spawn error, `hasher` is dropped: the threads already started exit.
            hasher.workers.push(handle);
        }
        Ok(hasher)
    }

    /// Queues a check of `password` against the stored `phc`; answered by
    /// [`HashDone::Verified`] with `ticket`.
    pub fn verify(&self, ticket: u64, password: Secret, phc: String) -> Result<(), Busy> {
        self.submit(Job::Verify {
            ticket,
            password,
            phc,
        })
    }

    /// Queues a check of `password` for a user that does not exist: the same work as
    /// [`Hasher::verify`] (against [`DUMMY_PHC`]), answered by `Verified { ok: false }`.
    pub fn verify_unknown_user(&self, ticket: u64, password: Secret) -> Result<(), Busy> {
        self.submit(Job::VerifyDummy { ticket, password })
    }

    /// Queues hashing `password` with a fresh salt; answered by [`HashDone::Hashed`].
    pub fn hash(&self, ticket: u64, password: Secret) -> Result<(), Busy> {
        self.submit(Job::Hash { ticket, password })
    }

    fn submit(&self, job: Job) -> Result<(), Busy> {
        let Some(tx) = &self.tx else {
            return Err(Busy);
        };
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    /// Finishes and answers every queued request, then stops the threads and waits for them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        for handle in self.workers.drain(..) {
            // A worker that panicked has nothing left to answer; the others are joined.
            let _ = handle.join();
        }
    }
}

impl Drop for Hasher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, notify: &Notify) {
    loop {
        // Hold the queue's lock only to take one job, not while hashing.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return; // the Hasher is gone and the queue is empty
        };
        let done = match job {
            Job::Verify {
                ticket,
                password,
                phc,
            } => HashDone::Verified {
                ticket,
                ok: verify_password(&password, &phc),
            },
            Job::VerifyDummy { ticket, password } => HashDone::Verified {
                ticket,
                ok: verify_dummy(&password),
            },
            Job::Hash { ticket, password } => HashDone::Hashed {
                ticket,
                result: hash_password(&password).map_err(|e| e.to_string()),
            },
        };
        match notify.lock() {
            Ok(notify) => notify(done),
            Err(_) => return,
        }
    }
}
