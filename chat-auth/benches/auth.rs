//! What one authentication check costs, on one core.
//!
//! - `token_verify/{hs256,rs256,es256,eddsa}`: `TokenVerifier::verify` of a valid token
//!   (parse, signature, claims), keys from `tests/keys/` (test-only keys).
//! - `password/argon2id_verify`: `verify_password` at the crate's parameters (m=19 MiB, t=2,
//!   p=1): what one login costs a `Hasher` thread.
//! - `cookie/verify`: `SessionKey::verify` of a valid cookie value.
//!
//! `cargo bench -p chat-auth --bench auth`

use std::hint::black_box;
use std::time::Duration;

use chat_auth::cookie::{session_id, SessionKey};
use chat_auth::password::{hash_password, verify_password, Secret};
use chat_auth::token::{TokenKeys, TokenVerifier};
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

const NOW: u64 = 1_800_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-bench-only";

fn claims() -> serde_json::Value {
    serde_json::json!({"sub": "alice", "exp": NOW + 3600, "rooms": ["general"], "role": "admin"})
}

fn verifier(keys: TokenKeys) -> TokenVerifier {
    TokenVerifier::new(keys).expect("bench keys")
}

fn token_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_verify");
    group.measurement_time(Duration::from_secs(3));
    let hs = verifier(TokenKeys {
        hs256_secret: Some(SECRET.to_vec()),
        public_key_pem: None,
    });
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(SECRET),
    )
    .expect("sign");
    group.bench_function("hs256", |b| {
        b.iter(|| hs.verify(black_box(&token), NOW).expect("valid"))
    });

    let cases: [(&str, Algorithm, &[u8], &[u8]); 3] = [
        (
            "rs256",
            Algorithm::RS256,
            include_bytes!("../tests/keys/rsa_private.pem"),
            include_bytes!("../tests/keys/rsa_public.pem"),
        ),
        (
            "es256",
            Algorithm::ES256,
            include_bytes!("../tests/keys/ec_private.pem"),
            include_bytes!("../tests/keys/ec_public.pem"),
        ),
        (
            "eddsa",
            Algorithm::EdDSA,
            include_bytes!("../tests/keys/ed25519_private.pem"),
            include_bytes!("../tests/keys/ed25519_public.pem"),
        ),
    ];
    for (name, alg, private, public) in cases {
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private),
            Algorithm::ES256 => EncodingKey::from_ec_pem(private),
            _ => EncodingKey::from_ed_pem(private),
        }
        .expect("bench key");
        let token = encode(&Header::new(alg), &claims(), &key).expect("sign");
        let v = verifier(TokenKeys {
            hs256_secret: None,
            public_key_pem: Some(public.to_vec()),
        });
        group.bench_function(name, |b| {
            b.iter(|| v.verify(black_box(&token), NOW).expect("valid"))
        });
    }
    group.finish();
}

fn password(c: &mut Criterion) {
    let mut group = c.benchmark_group("password");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    let pw = Secret::new("correct horse battery staple");
    let phc = hash_password(&pw).expect("hash");
    group.bench_function("argon2id_verify", |b| {
        b.iter(|| assert!(verify_password(black_box(&pw), &phc)))
    });
    group.finish();
}

fn cookie(c: &mut Criterion) {
    let key = SessionKey::from_bytes([7; 32]);
    let value = key.sign(&session_id().expect("rng"));
    c.bench_function("cookie/verify", |b| {
        b.iter(|| key.verify(black_box(&value)).expect("valid"))
    });
}

criterion_group!(benches, token_verify, password, cookie);
criterion_main!(benches);
