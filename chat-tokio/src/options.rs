//! The options of the shared [`Config`] this adapter refuses, each with the alternative.

use std::io;

use chat_adapter::{AuthMode, Config};

/// Why this adapter cannot run `config` (one line naming the alternative), if it cannot.
pub fn unsupported(config: &Config) -> Option<&'static str> {
    if config.tls_cert.is_some() || config.tls_key.is_some() {
        return Some(
            "--tls-cert/--tls-key are not supported by chat-tokio: terminate TLS in a reverse \
             proxy, or serve the router with axum-server/rustls in your app",
        );
    }
    if config.redis.is_some() {
        return Some(
            "--redis (cluster mode) is not supported by chat-tokio: run chat-mio-server for a \
             cluster",
        );
    }
    if config.auth == AuthMode::Accounts {
        return Some(
            "--auth accounts is not supported by chat-tokio: use --auth token (signed tokens \
             from your app) or chat-mio-server",
        );
    }
    if config.api_key_file.is_some() || std::env::var_os("CHAT_API_KEY").is_some() {
        return Some(
            "the server API (--api-key-file, CHAT_API_KEY) is not supported by chat-tokio: \
             unset it, or run chat-mio-server for /api/",
        );
    }
    None
}

/// [`unsupported`] and the shared checks ([`Config::check`]) as a start error.
pub fn check(config: &Config) -> io::Result<()> {
    if let Some(why) = unsupported(config) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    config
        .check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_names_its_option() {
        let tls = Config {
            tls_cert: Some("cert.pem".into()),
            ..Config::default()
        };
        let redis = Config {
            redis: Some("redis://127.0.0.1".into()),
            ..Config::default()
        };
        let accounts = Config {
            auth: AuthMode::Accounts,
            ..Config::default()
        };
        let api = Config {
            api_key_file: Some("key".into()),
            ..Config::default()
        };
        for (config, option) in [
            (tls, "--tls-cert"),
            (redis, "--redis"),
            (accounts, "--auth accounts"),
            (api, "--api-key-file"),
        ] {
            let error = check(&config).expect_err(option);
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
            assert!(error.to_string().contains(option), "{error}");
        }
    }

    #[test]
    fn the_defaults_run() {
        // The memory budget has a non-zero default: it is not refused (see the crate docs).
        if std::env::var_os("CHAT_API_KEY").is_none() {
            assert!(check(&Config::default()).is_ok());
        }
    }
}
