//! Signed tokens (JWT): the keys an operator configures, and the check of one token.
//!
//! The rules, in the order they are applied:
//!
//! 1. A token longer than [`MAX_TOKEN_BYTES`] is refused before any parsing.
//! 2. The header's `alg` must be one the configured keys allow: `HS256` when an HMAC secret is
//!    configured, and the one algorithm the public key is for (`RS256`, `ES256` or `EdDSA`).
//!    Anything else (`none`, `HS512`, `RS256` when only a secret is configured, …) is refused,
//!    and each key is only ever used with its own algorithm, so a public key is never taken for
//!    an HMAC secret (algorithm confusion).
//! 3. The signature must verify.
//! 4. The claims: `exp` is required and enforced, `nbf` is enforced when present, both with
//!    [`LEEWAY_SECS`] of leeway for clock skew; `sub` is required (1 to 32 characters, no control
//!    characters, no surrounding white space). `rooms` (a list of room names) and `role` are
//!    optional. The time is the caller's `now_unix`: nothing here reads a clock.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Longest token accepted, in bytes: anything longer is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Clock skew allowed between the token's issuer and this server, in seconds, on both `exp`
/// (a token is still accepted up to 30 s after it expired) and `nbf` (accepted up to 30 s
/// before it becomes valid).
pub const LEEWAY_SECS: u64 = 30;

/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: a key of at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Longest `sub` accepted, in characters (the chat's limit on a user name).
pub const MAX_SUB_CHARS: usize = 32;

/// The keys tokens are checked with. At least one must be set.
#[derive(Clone, Default)]
pub struct TokenKeys {
    /// An HMAC secret: tokens signed with `HS256` and this secret are accepted. At least
    /// [`MIN_HS256_SECRET_BYTES`] bytes.
    pub hs256_secret: Option<Vec<u8>>,
    /// A public key in PEM (`PUBLIC KEY`, or `RSA PUBLIC KEY`): RSA (tokens signed `RS256`),
    /// EC P-256 (`ES256`) or Ed25519 (`EdDSA`), detected from the key itself.
    pub public_key_pem: Option<Vec<u8>>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|s| Redacted(s.len())),
            )
            .field(
                "public_key_pem",
                &self.public_key_pem.as_ref().map(|p| Redacted(p.len())),
            )
            .finish()
    }
}

/// Prints `<N bytes redacted>` in place of a secret.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes redacted>", self.0)
    }
}

/// Why the configured keys cannot be used. The message is for the operator and never contains
/// key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Neither a secret nor a public key was given.
    NoKey,
    /// The HS256 secret is shorter than [`MIN_HS256_SECRET_BYTES`].
    WeakSecret {
        /// Its length, in bytes.
        len: usize,
    },
    /// The public key file is not PEM, or its PEM is not a key this server can use.
    BadPublicKey(&'static str),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NoKey => f.write_str("no token key configured: give an HS256 secret, a public key file, or both"),
            KeyError::WeakSecret { len } => write!(
                f,
                "the HS256 secret is too weak: {len} bytes, at least {MIN_HS256_SECRET_BYTES} random bytes are needed (e.g. `openssl rand -base64 48`)"
            ),
            KeyError::BadPublicKey(why) => write!(f, "unusable public key: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Why a token was refused: a short sentence that can be shown to the client (it never echoes
/// the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    TooLarge,
    /// Not three base64url parts, or a header or payload that is not the expected JSON.
    Malformed,
    /// The header names an algorithm the configured keys do not allow (`none` included).
    UnsupportedAlgorithm,
    /// The signature does not match: wrong key, or a tampered header, payload or signature.
    BadSignature,
    /// No `exp` claim.
    MissingExpiry,
    /// `exp` (plus the leeway) is in the past.
    Expired,
    /// `nbf` (minus the leeway) is in the future.
    NotYetValid,
    /// No `sub` claim, or an empty one.
    MissingSubject,
    /// A `sub` that is not a valid user name (too long, control characters, surrounding spaces).
    BadSubject,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::TooLarge => "token too large",
            TokenError::Malformed => "token is malformed",
            TokenError::UnsupportedAlgorithm => "token algorithm not accepted",
            TokenError::BadSignature => "token signature is invalid",
            TokenError::MissingExpiry => "token has no expiry (exp)",
            TokenError::Expired => "token has expired",
            TokenError::NotYetValid => "token is not valid yet",
            TokenError::MissingSubject => "token has no subject (sub)",
            TokenError::BadSubject => "token subject is not a valid user name",
        })
    }
}

impl std::error::Error for TokenError {}

/// Who a verified token says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (`sub`).
    pub user: String,
    /// When the token expires (`exp`, Unix seconds). Always `Some` for a verified token: the
    /// driver closes (or asks for a refresh of) a connection whose token expires.
    pub expires_at: Option<u64>,
    /// The rooms this token may join (`rooms`); `None` means the claim was absent: any room.
    pub rooms: Option<Vec<String>>,
    /// `role` was `"admin"`.
    pub admin: bool,
}

impl Identity {
    /// Whether this identity may join `room`: always without a `rooms` claim, otherwise only a
    /// room the claim names (compared exactly).
    pub fn may_join(&self, room: &str) -> bool {
        match &self.rooms {
            None => true,
            Some(rooms) => rooms.iter().any(|r| r == room),
        }
    }
}

/// The algorithm a public key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PublicAlg {
    Rs256,
    Es256,
    EdDsa,
}

impl PublicAlg {
    fn algorithm(self) -> Algorithm {
        match self {
            PublicAlg::Rs256 => Algorithm::RS256,
            PublicAlg::Es256 => Algorithm::ES256,
            PublicAlg::EdDsa => Algorithm::EdDSA,
        }
    }

    fn header_name(self) -> &'static str {
        match self {
            PublicAlg::Rs256 => "RS256",
            PublicAlg::Es256 => "ES256",
            PublicAlg::EdDsa => "EdDSA",
        }
    }
}

/// Checks tokens against the configured keys. Cheap to share (`&self`), `Send + Sync`.
pub struct TokenVerifier {
    hs256: Option<(DecodingKey, Validation)>,
    public: Option<(PublicAlg, DecodingKey, Validation)>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.algorithms())
            .finish()
    }
}

/// The header fields looked at before the signature is checked.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
}

/// The claims this server reads; others are ignored.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    rooms: Option<Vec<String>>,
    role: Option<String>,
}

impl TokenVerifier {
    /// Checks the keys and prepares them. Refuses no key at all, an HS256 secret shorter than
    /// [`MIN_HS256_SECRET_BYTES`], and a public key that is not an RSA, EC P-256 or Ed25519
    /// public key in PEM (a private key is refused too: the server needs only the public half).
    pub fn new(keys: TokenKeys) -> Result<TokenVerifier, KeyError> {
        if keys.hs256_secret.is_none() && keys.public_key_pem.is_none() {
            return Err(KeyError::NoKey);
        }
        let hs256 = match &keys.hs256_secret {
            None => None,
            Some(secret) if secret.len() < MIN_HS256_SECRET_BYTES => {
                return Err(KeyError::WeakSecret { len: secret.len() })
            }
            Some(secret) => Some((
                DecodingKey::from_secret(secret),
                validation(Algorithm::HS256),
            )),
        };
        let public = match &keys.public_key_pem {
            None => None,
            Some(pem) => {
                let alg = detect_public_key(pem)?;
                let key = match alg {
                    PublicAlg::Rs256 => DecodingKey::from_rsa_pem(pem),
                    PublicAlg::Es256 => DecodingKey::from_ec_pem(pem),
                    PublicAlg::EdDsa => DecodingKey::from_ed_pem(pem),
                }
                .map_err(|_| KeyError::BadPublicKey("the key could not be read"))?;
                Some((alg, key, validation(alg.algorithm())))
            }
        };
        Ok(TokenVerifier { hs256, public })
    }

    /// The header `alg` values accepted, e.g. `["HS256", "ES256"]`.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut algs = Vec::new();
        if self.hs256.is_some() {
            algs.push("HS256");
        }
        if let Some((alg, _, _)) = &self.public {
            algs.push(alg.header_name());
        }
        algs
    }

    /// Checks `token` at time `now_unix` (seconds since the Unix epoch) and returns who it is
    /// for. See the module docs for the rules.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Identity, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        let header: RawHeader =
            serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;

        // Pick the key by the header's algorithm, and only that key: a key is never tried
        // with an algorithm of another family.
        let (key, validation) = match (header.alg.as_str(), &self.hs256, &self.public) {
            ("HS256", Some((key, validation)), _) => (key, validation),
            (alg, _, Some((public, key, validation))) if alg == public.header_name() => {
                (key, validation)
            }
            _ => return Err(TokenError::UnsupportedAlgorithm),
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey
                | ErrorKind::InvalidRsaKey(_) => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::MissingAlgorithm => TokenError::UnsupportedAlgorithm,
                _ => TokenError::Malformed,
            })?;
        identity(data.claims, now_unix)
    }
}

/// jsonwebtoken's own time checks read the system clock, so they are off: [`identity`] does
/// them with the caller's time. Audience and issuer are not used by this server.
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

fn identity(claims: Claims, now_unix: u64) -> Result<Identity, TokenError> {
    let exp = claims.exp.ok_or(TokenError::MissingExpiry)?;
    if exp.saturating_add(LEEWAY_SECS) < now_unix {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.nbf {
        if nbf > now_unix.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::NotYetValid);
        }
    }
    let user = match claims.sub {
        None => return Err(TokenError::MissingSubject),
        Some(sub) if sub.is_empty() => return Err(TokenError::MissingSubject),
        Some(sub) => sub,
    };
    if user.chars().count() > MAX_SUB_CHARS
        || user.chars().any(char::is_control)
        || user.trim() != user
    {
        return Err(TokenError::BadSubject);
    }
    Ok(Identity {
        user,
        expires_at: Some(exp),
        rooms: claims.rooms,
        admin: claims.role.as_deref() == Some("admin"),
    })
}

// DER object identifiers (tag, length, value) of the SubjectPublicKeyInfo algorithms.
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// Tells which algorithm a PEM public key is for, from its PEM label and the algorithm
/// identifier of its SubjectPublicKeyInfo.
fn detect_public_key(pem_bytes: &[u8]) -> Result<PublicAlg, KeyError> {
    let pem = pem::parse(pem_bytes).map_err(|_| {
        KeyError::BadPublicKey("not a PEM file (expected -----BEGIN PUBLIC KEY-----)")
    })?;
    match pem.tag() {
        "RSA PUBLIC KEY" => return Ok(PublicAlg::Rs256),
        "PUBLIC KEY" => {}
        tag if tag.contains("PRIVATE") => {
            return Err(KeyError::BadPublicKey(
                "this is a private key: give the server only the public key (openssl pkey -pubout)",
            ))
        }
        _ => {
            return Err(KeyError::BadPublicKey(
                "expected a PEM block labelled PUBLIC KEY or RSA PUBLIC KEY",
            ))
        }
    }
    let alg_id = spki_algorithm_identifier(pem.contents())
        .ok_or(KeyError::BadPublicKey("not a DER SubjectPublicKeyInfo"))?;
    if alg_id.starts_with(OID_RSA) {
        Ok(PublicAlg::Rs256)
    } else if alg_id.starts_with(OID_EC_PUBLIC_KEY) {
        if alg_id[OID_EC_PUBLIC_KEY.len()..].starts_with(OID_P256) {
            Ok(PublicAlg::Es256)
        } else {
            Err(KeyError::BadPublicKey(
                "an EC key on a curve other than P-256 (only ES256 is supported)",
            ))
        }
    } else if alg_id.starts_with(OID_ED25519) {
        Ok(PublicAlg::EdDsa)
    } else {
        Err(KeyError::BadPublicKey(
            "not an RSA, EC P-256 or Ed25519 public key",
        ))
    }
}

/// The contents of `SEQUENCE { SEQUENCE { algorithm OID, parameters }, BIT STRING }`'s inner
/// sequence, or `None` when the DER does not have that shape.
fn spki_algorithm_identifier(der: &[u8]) -> Option<&[u8]> {
    let outer = der_sequence(der)?;
    der_sequence(outer)
}

/// The contents of the DER SEQUENCE at the start of `der`.
fn der_sequence(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    rest.get(..len)
}
