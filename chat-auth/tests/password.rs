//! Passwords: argon2id round trip, the dummy hash, and the Hasher threads' order and bound.

use std::sync::mpsc;
use std::time::Duration;

use chat_auth::password::{
    hash_password, verify_dummy, verify_password, Busy, HashDone, Hasher, PasswordError, Secret,
    DUMMY_PHC, MAX_PASSWORD_BYTES,
};

#[test]
fn hash_and_verify_round_trip() {
    let phc = hash_password(&Secret::new("correct horse")).expect("hash");
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(verify_password(&Secret::new("correct horse"), &phc));
    assert!(!verify_password(&Secret::new("correct horsf"), &phc));
    assert!(!verify_password(&Secret::new(""), &phc));
    // Fresh salt each time.
    assert_ne!(
        phc,
        hash_password(&Secret::new("correct horse")).expect("hash")
    );
}

#[test]
fn bad_input_is_refused_not_panicked_on() {
    assert_eq!(hash_password(&Secret::new("")), Err(PasswordError::Empty));
    let long = Secret::new("x".repeat(MAX_PASSWORD_BYTES + 1));
    assert_eq!(hash_password(&long), Err(PasswordError::TooLong));
    let pw = Secret::new("pw");
    for phc in [
        "",
        "garbage",
        "$argon2id$v=19$m=19456,t=2,p=1$",
        // argon2i, not argon2id
        "$argon2i$v=19$m=19456,t=2,p=1$zQAjXomnaDjbgg45M72owg$bqZMXBcVj9JW7LvWAVWYbjcbJQETvIL1u5miqsNhTuA",
        // asks for 4 GiB: refused before any work
        "$argon2id$v=19$m=4194304,t=2,p=1$zQAjXomnaDjbgg45M72owg$bqZMXBcVj9JW7LvWAVWYbjcbJQETvIL1u5miqsNhTuA",
    ] {
        assert!(!verify_password(&pw, phc), "{phc}");
    }
}

#[test]
fn the_dummy_hash_costs_what_a_real_one_does_and_never_matches() {
    assert!(DUMMY_PHC.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    let real = hash_password(&Secret::new("pw")).expect("hash");
    assert_eq!(
        DUMMY_PHC.rsplitn(3, '$').nth(2),
        real.rsplitn(3, '$').nth(2),
        "same algorithm, version and parameters"
    );
    assert!(!verify_dummy(&Secret::new("pw")));
    assert!(!verify_dummy(&Secret::new("")));
}

#[test]
fn one_thread_answers_every_request_in_order() {
    let (tx, rx) = mpsc::channel();
    let hasher = Hasher::start(1, move |done| {
        let _ = tx.send(done);
    })
    .expect("start");
    let phc = hash_password(&Secret::new("right")).expect("hash");
    hasher
        .verify(1, Secret::new("right"), phc.clone())
        .expect("queued");
    hasher
        .verify(2, Secret::new("wrong"), phc.clone())
        .expect("queued");
    hasher
        .verify_unknown_user(3, Secret::new("right"))
        .expect("queued");
    hasher.hash(4, Secret::new("new one")).expect("queued");
    hasher.hash(5, Secret::new("")).expect("queued");
    hasher.shutdown();
    let answers: Vec<HashDone> = rx.iter().collect();
    assert_eq!(answers.len(), 5);
    assert_eq!(
        answers[..3],
        [
            HashDone::Verified {
                ticket: 1,
                ok: true
            },
            HashDone::Verified {
                ticket: 2,
                ok: false
            },
            HashDone::Verified {
                ticket: 3,
                ok: false
            },
        ]
    );
    match &answers[3] {
        HashDone::Hashed {
            ticket: 4,
            result: Ok(phc),
        } => {
            assert!(verify_password(&Secret::new("new one"), phc))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        answers[4],
        HashDone::Hashed {
            ticket: 5,
            result: Err("the password is empty".to_owned())
        }
    );
}

#[test]
fn a_full_queue_refuses_at_once() {
    // The worker's notify blocks until the test lets it go, so the queue fills up.
    let (done_tx, done_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let hasher = Hasher::start_with_bound(1, 2, move |done| {
        let _ = go_rx.recv();
        let _ = done_tx.send(done);
    })
    .expect("start");
    // Ticket 1 is taken by the thread (its answer waits on `go`); 2 and 3 fill the queue.
    hasher
        .verify_unknown_user(1, Secret::new("a"))
        .expect("taken");
    std::thread::sleep(Duration::from_millis(200));
    hasher
        .verify_unknown_user(2, Secret::new("b"))
        .expect("queued");
    hasher
        .verify_unknown_user(3, Secret::new("c"))
        .expect("queued");
    assert_eq!(hasher.verify_unknown_user(4, Secret::new("d")), Err(Busy));
    assert_eq!(hasher.hash(5, Secret::new("e")), Err(Busy));
    for _ in 0..3 {
        go_tx.send(()).expect("worker alive");
    }
    let tickets: Vec<u64> = (0..3)
        .map(|_| match done_rx.recv().expect("answer") {
            HashDone::Verified { ticket, .. } | HashDone::Hashed { ticket, .. } => ticket,
        })
        .collect();
    assert_eq!(tickets, vec![1, 2, 3]);
    // Room again.
    hasher
        .verify_unknown_user(6, Secret::new("f"))
        .expect("queued");
    go_tx.send(()).expect("worker alive");
    drop(go_tx);
    hasher.shutdown();
    assert_eq!(
        done_rx.recv().expect("answer"),
        HashDone::Verified {
            ticket: 6,
            ok: false
        }
    );
}

#[test]
fn zero_threads_is_an_error() {
    assert!(Hasher::start(0, |_| {}).is_err());
}

#[test]
fn two_threads_answer_every_ticket() {
    let (tx, rx) = mpsc::channel();
    let hasher = Hasher::start(2, move |done| {
        let _ = tx.send(done);
    })
    .expect("start");
    for ticket in 0..6 {
        hasher
            .verify_unknown_user(ticket, Secret::new("x"))
            .expect("queued");
    }
    drop(hasher);
    let mut tickets: Vec<u64> = rx
        .iter()
        .map(|d| match d {
            HashDone::Verified { ticket, ok: false } => ticket,
            other => panic!("{other:?}"),
        })
        .collect();
    tickets.sort_unstable();
    assert_eq!(tickets, (0..6).collect::<Vec<_>>());
}
