//! No secret appears in any Debug or Display output of this crate.

use chat_auth::cookie::SessionKey;
use chat_auth::password::{Hasher, Secret};
use chat_auth::token::{TokenKeys, TokenVerifier};

const SECRET: &str = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";

fn assert_hidden(shown: &str, what: &str) {
    assert!(
        !shown.contains("s3cr3t"),
        "{what} shows the secret: {shown}"
    );
    // Byte-list forms of the secret ("115, 51, 99") must not show either.
    assert!(
        !shown.contains("115, 51"),
        "{what} shows the secret's bytes: {shown}"
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let secret = Secret::new(SECRET);
    assert_eq!(format!("{secret:?}"), "***");
    assert_eq!(format!("{secret:#?}"), "***");
    assert_eq!(secret.expose(), SECRET);

    let keys = TokenKeys {
        hs256_secret: Some(SECRET.as_bytes().to_vec()),
        public_key_pem: Some(include_bytes!("keys/ec_public.pem").to_vec()),
    };
    assert_hidden(&format!("{keys:?}"), "TokenKeys");
    assert_hidden(&format!("{keys:#?}"), "TokenKeys");
    let verifier = TokenVerifier::new(keys).expect("keys");
    let shown = format!("{verifier:?}");
    assert_hidden(&shown, "TokenVerifier");
    assert!(shown.contains("HS256"), "{shown}");

    let key = SessionKey::from_bytes([0x5a; 32]);
    let shown = format!("{key:?}");
    assert!(!shown.contains("90"), "SessionKey shows its bytes: {shown}");
    assert!(!shown.to_lowercase().contains("5a"), "{shown}");

    let hasher = Hasher::start(1, |_| {}).expect("start");
    assert_hidden(&format!("{hasher:?}"), "Hasher");
}

#[test]
fn errors_do_not_show_key_material() {
    let weak = TokenVerifier::new(TokenKeys {
        hs256_secret: Some(b"s3cr3t".to_vec()),
        public_key_pem: None,
    })
    .expect_err("weak");
    assert_hidden(&format!("{weak} {weak:?}"), "KeyError");
}
