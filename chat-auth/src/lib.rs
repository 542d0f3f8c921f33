//! (docs to come)
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cookie;
pub mod password;
pub mod throttle;
pub mod token;

pub use cookie::{
    clear_cookie_header, find_session_cookie, session_cookies, session_id, set_cookie_header,
    RngError, SessionKey, COOKIE_NAME,
};
pub use password::{
    hash_password, verify_dummy, verify_password, Busy, HashDone, Hasher, PasswordError, Secret,
};
pub use throttle::{LoginThrottle, RetryAfter, Throttle, ThrottleConfig};
pub use token::{Identity, KeyError, TokenError, TokenKeys, TokenVerifier};
