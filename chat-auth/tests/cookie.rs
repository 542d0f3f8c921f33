//! Session cookies: signing, tampering, the headers, and the `Cookie` header parser.

use std::time::Duration;

use chat_auth::cookie::{
    clear_cookie_header, find_session_cookie, session_cookies, session_id, set_cookie_header,
    SessionKey,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn key() -> SessionKey {
    SessionKey::from_bytes([7; 32])
}

#[test]
fn a_signed_id_verifies_and_gives_the_id_back() {
    let key = key();
    let id = session_id().expect("rng");
    assert_eq!(id.len(), 22, "128 bits in base64url");
    let value = key.sign(&id);
    assert_eq!(key.verify(&value), Some(id.clone()));
    assert_eq!(value.len(), 22 + 1 + 43);
    // Another key refuses it.
    assert_eq!(SessionKey::from_bytes([8; 32]).verify(&value), None);
    assert_eq!(SessionKey::generate().expect("rng").verify(&value), None);
    // Ids differ.
    assert_ne!(session_id().expect("rng"), id);
}

#[test]
fn changing_any_one_character_is_refused() {
    let key = key();
    let value = key.sign(&session_id().expect("rng"));
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    for i in 0..value.len() {
        for c in alphabet.chars() {
            if value.as_bytes()[i] == c as u8 {
                continue;
            }
            let mut forged = value.clone().into_bytes();
            forged[i] = c as u8;
            let forged = String::from_utf8(forged).expect("ascii");
            assert_eq!(key.verify(&forged), None, "position {i} changed to {c:?}");
        }
    }
    // Dropping or adding a character too.
    for i in 0..value.len() {
        let mut shorter = value.clone();
        shorter.remove(i);
        assert_eq!(key.verify(&shorter), None);
    }
    assert_eq!(key.verify(&format!("{value}A")), None);
    assert_eq!(key.verify(&format!("A{value}")), None);
}

#[test]
fn malformed_values_are_refused() {
    let key = key();
    let good = key.sign("abc");
    let mac = good.split_once('.').expect("dot").1;
    for bad in [
        String::new(),
        ".".to_owned(),
        "abc".to_owned(),
        "abc.".to_owned(),
        format!(".{mac}"),
        format!("ab c.{mac}"),
        format!("abc.{mac}="),
        format!("abc.{mac}.x"),
        format!("{}.{mac}", "a".repeat(65)),
        "ü.ü".to_owned(),
    ] {
        assert_eq!(key.verify(&bad), None, "{bad:?}");
    }
    // An id that is not base64url gets a value that does not verify.
    assert_eq!(key.verify(&key.sign("a;b")), None);
    assert_eq!(key.verify(&key.sign("")), None);
}

#[test]
fn set_cookie_and_clear_headers() {
    assert_eq!(
        set_cookie_header("ID.MAC", Duration::from_secs(86_400), false),
        "chat_session=ID.MAC; Max-Age=86400; Path=/; HttpOnly; SameSite=Strict"
    );
    assert_eq!(
        set_cookie_header("ID.MAC", Duration::from_millis(1500), true),
        "chat_session=ID.MAC; Max-Age=1; Path=/; HttpOnly; SameSite=Strict; Secure"
    );
    assert_eq!(
        clear_cookie_header(true),
        "chat_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict; Secure"
    );
}

#[test]
fn the_cookie_header_parser_is_tolerant() {
    let cases: &[(&str, Option<&str>)] = &[
        ("chat_session=abc.def", Some("abc.def")),
        ("theme=dark; chat_session=abc.def; lang=en", Some("abc.def")),
        ("theme=dark;chat_session=abc.def", Some("abc.def")),
        ("  chat_session = abc.def  ", Some("abc.def")),
        ("chat_session=\"abc.def\"", Some("abc.def")),
        ("chat_session=\"abc.def", Some("\"abc.def")),
        ("chat_session=", Some("")),
        ("chat_sessionx=abc; xchat_session=def", None),
        ("chat_session", None),
        (";;;", None),
        ("", None),
        ("=;=chat_session", None),
        ("a=b=c; chat_session=x=y", Some("x=y")),
    ];
    for (header, want) in cases {
        assert_eq!(find_session_cookie(header), *want, "{header:?}");
    }
    assert_eq!(
        session_cookies("chat_session=one; other=1; chat_session=two").collect::<Vec<_>>(),
        vec!["one", "two"]
    );
}

#[test]
fn verify_header_finds_the_valid_cookie_among_others() {
    let key = key();
    let value = key.sign("sess1");
    let header = format!("chat_session=forged.AAAA; theme=dark; chat_session=\"{value}\"");
    assert_eq!(key.verify_header(&header), Some("sess1".to_owned()));
    assert_eq!(key.verify_header("theme=dark"), None);
}

#[test]
fn random_input_never_panics_or_authenticates() {
    let key = key();
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 5000,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[12; 32]),
    );
    runner
        .run(&any::<String>(), |s| {
            prop_assert_eq!(key.verify(&s), None);
            prop_assert_eq!(key.verify_header(&s), None);
            let _ = find_session_cookie(&s);
            Ok(())
        })
        .expect("random strings");
    runner
        .run(&"[A-Za-z0-9_.=; \"-]{0,120}", |s| {
            prop_assert_eq!(key.verify(&s), None);
            prop_assert_eq!(key.verify_header(&s), None);
            Ok(())
        })
        .expect("cookie-shaped strings");
}
