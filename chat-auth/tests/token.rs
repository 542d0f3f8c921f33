//! Signed tokens: every forged-token case of issue 11, table-driven, plus property tests.
//!
//! Keys under `tests/keys/` are test-only (see its README).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chat_auth::token::{KeyError, TokenError, TokenKeys, TokenVerifier, LEEWAY_SECS};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";
const NOW: u64 = 1_800_000_000;

const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("keys/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("keys/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("keys/ed25519_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("keys/ed25519_public.pem");
const P384_PUBLIC: &[u8] = include_bytes!("keys/p384_public.pem");

fn hs_verifier() -> TokenVerifier {
    TokenVerifier::new(TokenKeys {
        hs256_secret: Some(SECRET.to_vec()),
        public_key_pem: None,
    })
    .expect("valid secret")
}

fn public_verifier(pem: &[u8]) -> TokenVerifier {
    TokenVerifier::new(TokenKeys {
        hs256_secret: None,
        public_key_pem: Some(pem.to_vec()),
    })
    .expect("valid public key")
}

fn claims() -> Value {
    json!({"sub": "alice", "exp": NOW + 3600})
}

fn hs256(claims: &Value) -> String {
    hs256_with(SECRET, claims)
}

fn hs256_with(secret: &[u8], claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

fn signed(alg: Algorithm, private_pem: &[u8], claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
        _ => unreachable!(),
    }
    .expect("test key");
    encode(&Header::new(alg), claims, &key).expect("sign")
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

#[test]
fn a_good_hs256_token_gives_the_identity() {
    let v = hs_verifier();
    let id = v
        .verify(
            &hs256(&json!({"sub": "alice", "exp": NOW + 60, "rooms": ["general", "ops"], "role": "admin"})),
            NOW,
        )
        .expect("valid");
    assert_eq!(id.user, "alice");
    assert_eq!(id.expires_at, Some(NOW + 60));
    assert_eq!(id.rooms, Some(vec!["general".to_owned(), "ops".to_owned()]));
    assert!(id.admin);
    assert!(id.may_join("ops"));
    assert!(
        !id.may_join("random"),
        "a rooms claim that does not include the room"
    );

    let id = v.verify(&hs256(&claims()), NOW).expect("valid");
    assert_eq!(id.rooms, None);
    assert!(!id.admin);
    assert!(id.may_join("anything"), "no rooms claim: any room");

    let id = v
        .verify(
            &hs256(&json!({"sub": "bob", "exp": NOW + 60, "role": "user"})),
            NOW,
        )
        .expect("valid");
    assert!(!id.admin);
}

#[test]
fn good_public_key_tokens_verify_with_their_algorithm_only() {
    for (alg, private, public) in [
        (Algorithm::RS256, RSA_PRIVATE, RSA_PUBLIC),
        (Algorithm::ES256, EC_PRIVATE, EC_PUBLIC),
        (Algorithm::EdDSA, ED_PRIVATE, ED_PUBLIC),
    ] {
        let v = public_verifier(public);
        let token = signed(alg, private, &claims());
        assert_eq!(
            v.verify(&token, NOW).map(|i| i.user),
            Ok("alice".into()),
            "{alg:?}"
        );
        assert_eq!(
            v.verify(&hs256(&claims()), NOW),
            Err(TokenError::UnsupportedAlgorithm),
            "an HS256 token with only a {alg:?} key"
        );
    }
    // Each public key only accepts its own algorithm.
    let rsa = public_verifier(RSA_PUBLIC);
    assert_eq!(
        rsa.verify(&signed(Algorithm::ES256, EC_PRIVATE, &claims()), NOW),
        Err(TokenError::UnsupportedAlgorithm)
    );
    assert_eq!(rsa.algorithms(), vec!["RS256"]);
    assert_eq!(public_verifier(EC_PUBLIC).algorithms(), vec!["ES256"]);
    assert_eq!(public_verifier(ED_PUBLIC).algorithms(), vec!["EdDSA"]);
}

#[test]
fn both_keys_accept_both_algorithms() {
    let v = TokenVerifier::new(TokenKeys {
        hs256_secret: Some(SECRET.to_vec()),
        public_key_pem: Some(EC_PUBLIC.to_vec()),
    })
    .expect("keys");
    assert_eq!(v.algorithms(), vec!["HS256", "ES256"]);
    assert!(v.verify(&hs256(&claims()), NOW).is_ok());
    assert!(v
        .verify(&signed(Algorithm::ES256, EC_PRIVATE, &claims()), NOW)
        .is_ok());
}

#[test]
fn forged_tokens_are_refused() {
    let v = hs_verifier();
    let good = hs256(&claims());
    let (header, rest) = good.split_once('.').expect("three parts");
    let (payload, signature) = rest.split_once('.').expect("three parts");

    let none_header = b64(&json!({"alg": "none", "typ": "JWT"}));
    let admin_payload = b64(&json!({"sub": "mallory", "exp": NOW + 3600, "role": "admin"}));
    let cases: Vec<(&str, String, TokenError)> = vec![
        (
            "wrong key",
            hs256_with(b"another-secret-of-at-least-32-bytes!!", &claims()),
            TokenError::BadSignature,
        ),
        (
            "alg none, no signature",
            format!("{none_header}.{payload}."),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "alg none, with the good signature",
            format!("{none_header}.{payload}.{signature}"),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "alg None (case games)",
            format!("{}.{payload}.", b64(&json!({"alg": "None"}))),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "HS512 with the right secret",
            encode(
                &Header::new(Algorithm::HS512),
                &claims(),
                &EncodingKey::from_secret(SECRET),
            )
            .expect("sign"),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "tampered payload (privilege escalation)",
            format!("{header}.{admin_payload}.{signature}"),
            TokenError::BadSignature,
        ),
        (
            "tampered header (typ added)",
            format!(
                "{}.{payload}.{signature}",
                b64(&json!({"alg": "HS256", "typ": "JWT", "kid": "x"}))
            ),
            TokenError::BadSignature,
        ),
        (
            "signature of another token",
            format!(
                "{header}.{payload}.{}",
                hs256(&json!({"sub": "bob", "exp": NOW + 3600}))
                    .rsplit('.')
                    .next()
                    .expect("signature")
            ),
            TokenError::BadSignature,
        ),
        (
            "truncated signature",
            format!("{header}.{payload}.{}", &signature[..signature.len() - 4]),
            TokenError::BadSignature,
        ),
        (
            "expired (past the leeway)",
            hs256(&json!({"sub": "alice", "exp": NOW - LEEWAY_SECS - 1})),
            TokenError::Expired,
        ),
        (
            "not yet valid (past the leeway)",
            hs256(&json!({"sub": "alice", "exp": NOW + 3600, "nbf": NOW + LEEWAY_SECS + 1})),
            TokenError::NotYetValid,
        ),
        (
            "missing exp",
            hs256(&json!({"sub": "alice"})),
            TokenError::MissingExpiry,
        ),
        (
            "exp as a string",
            hs256(&json!({"sub": "alice", "exp": "9999999999"})),
            TokenError::Malformed,
        ),
        (
            "empty sub",
            hs256(&json!({"sub": "", "exp": NOW + 60})),
            TokenError::MissingSubject,
        ),
        (
            "missing sub",
            hs256(&json!({"exp": NOW + 60})),
            TokenError::MissingSubject,
        ),
        (
            "sub too long",
            hs256(&json!({"sub": "a".repeat(33), "exp": NOW + 60})),
            TokenError::BadSubject,
        ),
        (
            "sub with a control character",
            hs256(&json!({"sub": "al\nice", "exp": NOW + 60})),
            TokenError::BadSubject,
        ),
        (
            "sub with surrounding space",
            hs256(&json!({"sub": " alice", "exp": NOW + 60})),
            TokenError::BadSubject,
        ),
        ("empty", String::new(), TokenError::Malformed),
        (
            "two parts",
            format!("{header}.{payload}"),
            TokenError::Malformed,
        ),
        (
            "four parts",
            format!("{good}.{signature}"),
            TokenError::Malformed,
        ),
        (
            "header not base64",
            format!("!!!.{payload}.{signature}"),
            TokenError::Malformed,
        ),
        (
            "too large",
            hs256(&json!({"sub": "alice", "exp": NOW + 60, "pad": "x".repeat(9000)})),
            TokenError::TooLarge,
        ),
    ];
    for (name, token, want) in cases {
        assert_eq!(v.verify(&token, NOW), Err(want), "{name}");
    }
}

#[test]
fn the_leeway_is_30_seconds_each_way() {
    let v = hs_verifier();
    let exp = hs256(&json!({"sub": "alice", "exp": NOW}));
    assert!(v.verify(&exp, NOW + LEEWAY_SECS).is_ok());
    assert_eq!(
        v.verify(&exp, NOW + LEEWAY_SECS + 1),
        Err(TokenError::Expired)
    );
    let nbf = hs256(&json!({"sub": "alice", "exp": NOW + 3600, "nbf": NOW}));
    assert!(v.verify(&nbf, NOW - LEEWAY_SECS).is_ok());
    assert_eq!(
        v.verify(&nbf, NOW - LEEWAY_SECS - 1),
        Err(TokenError::NotYetValid)
    );
}

/// The classic algorithm-confusion attack: the server has an RSA public key; the attacker
/// signs an HS256 token using that (public) key's PEM as the HMAC secret.
#[test]
fn algorithm_confusion_rs256_public_key_as_hs256_secret_is_refused() {
    let forged = hs256_with(
        RSA_PUBLIC,
        &json!({"sub": "mallory", "exp": NOW + 60, "role": "admin"}),
    );
    assert_eq!(
        public_verifier(RSA_PUBLIC).verify(&forged, NOW),
        Err(TokenError::UnsupportedAlgorithm)
    );
    // With an HS256 secret configured too, HS256 is allowed but checked with that secret only.
    let both = TokenVerifier::new(TokenKeys {
        hs256_secret: Some(SECRET.to_vec()),
        public_key_pem: Some(RSA_PUBLIC.to_vec()),
    })
    .expect("keys");
    assert_eq!(both.verify(&forged, NOW), Err(TokenError::BadSignature));
    // And the same for the DER-less variants: EC and Ed25519 public keys as secrets.
    for public in [EC_PUBLIC, ED_PUBLIC] {
        let forged = hs256_with(public, &claims());
        assert_eq!(
            public_verifier(public).verify(&forged, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }
    // An RS256 token that claims RS256 but was checked as HS256 does not exist: an RS256 token
    // is checked with the RSA key only.
    let rs = signed(Algorithm::RS256, RSA_PRIVATE, &claims());
    assert_eq!(
        hs_verifier().verify(&rs, NOW),
        Err(TokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn key_configuration_errors_are_clear() {
    assert_eq!(
        TokenVerifier::new(TokenKeys::default()).err(),
        Some(KeyError::NoKey)
    );
    let weak = TokenVerifier::new(TokenKeys {
        hs256_secret: Some(b"short".to_vec()),
        public_key_pem: None,
    })
    .expect_err("refused");
    assert_eq!(weak, KeyError::WeakSecret { len: 5 });
    assert!(weak.to_string().contains("at least 32"), "{weak}");

    for (pem, needle) in [
        (RSA_PRIVATE, "private key"),
        (P384_PUBLIC, "P-256"),
        (&b"not a pem"[..], "PEM"),
        (
            &b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"[..],
            "PUBLIC KEY",
        ),
        (
            &b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"[..],
            "SubjectPublicKeyInfo",
        ),
    ] {
        let err = TokenVerifier::new(TokenKeys {
            hs256_secret: None,
            public_key_pem: Some(pem.to_vec()),
        })
        .expect_err("refused");
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
    }
}

#[test]
fn errors_never_echo_the_token() {
    let v = hs_verifier();
    let token = hs256(&json!({"sub": "alice", "exp": 1}));
    let err = v.verify(&token, NOW).expect_err("expired");
    assert!(!err.to_string().contains(&token[..20]));
    assert!(!format!("{err:?}").contains(&token[..20]));
}

fn runner() -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]),
    )
}

/// Random strings, and random mutations of a valid token, never panic and never authenticate
/// (the verifier has a key nobody in the test signs with, except the one valid token whose
/// mutations are checked).
#[test]
fn random_input_never_panics_or_authenticates() {
    let v = hs_verifier();
    let good = hs256(&claims());
    let mut runner = runner();
    runner
        .run(&any::<String>(), |s| {
            prop_assert!(v.verify(&s, NOW).is_err());
            Ok(())
        })
        .expect("random strings");
    runner
        .run(&"[A-Za-z0-9_.-]{0,400}", |s| {
            prop_assert!(v.verify(&s, NOW).is_err());
            Ok(())
        })
        .expect("random token-shaped strings");

    let len = good.len();
    runner
        .run(
            &(0..len, proptest::char::range('-', 'z'), 0..len, 0..len),
            |(at, c, cut_from, cut_to)| {
                // Replace one character.
                let mut chars: Vec<char> = good.chars().collect();
                if chars[at] != c {
                    chars[at] = c;
                    let s: String = chars.iter().collect();
                    // A few replacements leave the decoded bytes unchanged (the last base64
                    // character's unused bits): those must still give alice, never anyone else.
                    if let Ok(id) = v.verify(&s, NOW) {
                        prop_assert_eq!(id.user, "alice");
                    }
                }
                // Cut a slice out.
                let (a, b) = (cut_from.min(cut_to), cut_from.max(cut_to));
                if a != b {
                    let s = format!("{}{}", &good[..a], &good[b..]);
                    prop_assert!(v.verify(&s, NOW).is_err());
                }
                Ok(())
            },
        )
        .expect("mutated tokens");
}

#[test]
fn a_changed_character_in_the_signature_or_payload_is_refused() {
    let v = hs_verifier();
    let good = hs256(&claims());
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let mut accepted = 0;
    for i in 0..good.len() {
        for c in alphabet.chars() {
            if good.as_bytes()[i] == c as u8 {
                continue;
            }
            let mut s = good.clone().into_bytes();
            s[i] = c as u8;
            let s = String::from_utf8(s).expect("ascii");
            if let Ok(id) = v.verify(&s, NOW) {
                assert_eq!(id.user, "alice");
                accepted += 1;
            }
        }
    }
    assert_eq!(accepted, 0, "every changed character is refused");
}
