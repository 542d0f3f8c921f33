//! Server settings, shared by the command line (clap) and the library API. Every limit is here,
//! with its default, and shows in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};

/// Where chat messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    // In SQLite, in `--data-dir`: history, ids and the epoch survive restarts and crashes.
    Sqlite,
    // In memory only: everything is forgotten when the server stops.
    Memory,
}

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    // Anyone may take any name (the tutorial's way).
    Open,
    // A signed token (JWT) from the operator's app: its `sub` is the user name.
    Token,
    // Built-in accounts (`chat-mio-server user add`): the page logs in, a session cookie
    // proves it.
    Accounts,
}

/// How hard each commit is pushed to the disk (SQLite's `PRAGMA synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncLevel {
    // An acknowledged message survives a crash of the server and a power loss.
    Full,
    // An acknowledged message survives a crash of the server; a power loss may take the last
    // commits.
    Normal,
    // Nothing is forced to the disk: the operating system writes when it likes.
    Off,
}

/// How the server runs. [`Config::default`] gives the same values as the command line with no
/// arguments, except one: it keeps messages in memory ([`StoreKind::Memory`]), so a program
/// that embeds the server decides itself whether and where it writes to the disk.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address and port to listen on (0.0.0.0:8000 accepts connections from other hosts)
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:8000",
        env = "CHAT_BIND"
    )]
    pub bind: SocketAddr,

    /// Serve HTTPS and wss:// on --bind with this PEM certificate chain (leaf first); needs
    /// --tls-key. Both files are read again on SIGHUP (new connections get the new
    /// certificate, open ones stay; a bad file is logged and the old one kept)
    #[arg(long, value_name = "PEM", requires = "tls_key", env = "CHAT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "PEM", requires = "tls_cert", env = "CHAT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Serve the browser client from this directory instead of the copy built into the binary
    /// (files are read once, at start-up)
    #[arg(long, value_name = "DIR", env = "CHAT_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Origin allowed to open a WebSocket besides the server's own (repeatable; `*` allows any).
    /// Requests without an Origin header (non-browser clients) are always allowed
    #[arg(
        long = "allowed-origin",
        value_name = "ORIGIN",
        env = "CHAT_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Most connections served at once; more are answered 503 (capped by the open-files limit)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        env = "CHAT_MAX_CONNECTIONS"
    )]
    pub max_connections: usize,

    /// How clients prove who they are: open (any name, as in the tutorial), token (a JWT
    /// signed by your app: ?token= or Authorization: Bearer) or accounts (users added with
    /// `chat-mio-server user add` log in on the page; needs --store sqlite). See README,
    /// Security
    #[arg(long, value_enum, value_name = "MODE", default_value_t = AuthMode::Open, env = "CHAT_AUTH")]
    pub auth: AuthMode,

    /// File with the HS256 secret (32 bytes or more) that checks tokens; the environment
    /// variable CHAT_JWT_SECRET may hold it instead
    #[arg(long, value_name = "FILE", env = "CHAT_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// PEM public key (RSA, EC P-256 or Ed25519) that checks RS256, ES256 or EdDSA tokens
    #[arg(long, value_name = "FILE", env = "CHAT_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Only these users may join ROOM (repeatable, one room each); others get 403. Needs
    /// --auth token or accounts (in open mode anyone can take any name)
    #[arg(long = "room-access", value_name = "ROOM=USER,USER", value_parser = room_access, env = "CHAT_ROOM_ACCESS", value_delimiter = ';')]
    pub room_access: Vec<RoomAccess>,

    /// Run as one node of a cluster whose rooms, ids, history and presence live in this Redis
    /// (redis://HOST:PORT/DB); without it the node is alone (see README, Running several nodes)
    #[arg(long, value_name = "URL", env = "CHAT_REDIS")]
    pub redis: Option<String>,

    /// The prefix of the cluster's keys and channels in Redis, so several chats can share one
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "chat:",
        env = "CHAT_REDIS_PREFIX"
    )]
    pub redis_prefix: String,

    /// This node's name in the cluster, unique among the running nodes [default: ADDR:PORT#PID]
    #[arg(long, value_name = "NAME", env = "CHAT_NODE_NAME")]
    pub node_name: Option<String>,

    /// Seconds after which a silent node is taken for dead and its users leave their rooms
    #[arg(
        long,
        value_name = "SECS",
        default_value = "30",
        value_parser = seconds,
        env = "CHAT_CLUSTER_DEAD_AFTER"
    )]
    pub cluster_dead_after: Duration,

    /// Days a login lasts (--auth accounts): the session cookie's lifetime
    #[arg(long, value_name = "DAYS", default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=365), env = "CHAT_SESSION_DAYS")]
    pub session_days: u32,

    /// File with the key of the server API for backends (/api/, Authorization: Bearer; 16
    /// bytes or more); the environment variable CHAT_API_KEY may hold it instead. Without
    /// one there is no API
    #[arg(long, value_name = "FILE", env = "CHAT_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Most connections one client address may hold at once; more are answered 429; 0 = no
    /// limit
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        env = "CHAT_MAX_CONNECTIONS_PER_IP"
    )]
    pub max_connections_per_ip: usize,

    /// Address of a reverse proxy whose X-Forwarded-For names the client (repeatable); from
    /// any other peer X-Forwarded-For is ignored
    #[arg(
        long = "trusted-proxy",
        value_name = "IP",
        env = "CHAT_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Largest text message a client may send, in bytes (larger: close 1009)
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, env = "CHAT_MAX_MESSAGE_SIZE")]
    pub max_message_size: usize,

    /// Most bytes queued for one client; a client that lets more pile up is closed with 1008
    /// "slow consumer"
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024, env = "CHAT_MAX_OUTBOUND")]
    pub max_outbound: usize,

    /// Messages per second each connection may send on average; 0 turns the limit off
    #[arg(
        long,
        value_name = "PER_SECOND",
        default_value_t = 5.0,
        env = "CHAT_RATE_LIMIT"
    )]
    pub rate_limit: f64,

    /// Messages a connection may send in a burst before the rate limit applies
    #[arg(long, value_name = "N", default_value_t = 20, env = "CHAT_RATE_BURST")]
    pub rate_burst: u32,

    /// Chat messages kept per room, sent to v2 clients when they join or resume; 0 keeps none
    #[arg(long, value_name = "N", default_value_t = 100, env = "CHAT_HISTORY")]
    pub history: usize,

    /// Most rooms at once; rooms nobody is in are forgotten (oldest first) to make room
    #[arg(long, value_name = "N", default_value_t = 1000, env = "CHAT_MAX_ROOMS")]
    pub max_rooms: usize,

    /// Where messages are kept: sqlite (in --data-dir; history, ids and epoch survive
    /// restarts) or memory (lost when the server stops)
    #[arg(long, value_enum, value_name = "KIND", default_value_t = StoreKind::Sqlite, env = "CHAT_STORE")]
    pub store: StoreKind,

    /// Directory of the message database (created if missing); relative paths start in the
    /// directory the server is started from
    #[arg(
        long,
        value_name = "DIR",
        default_value = "chat-data",
        env = "CHAT_DATA_DIR"
    )]
    pub data_dir: PathBuf,

    /// When a message counts as stored (and a v2 client gets its ack): full survives a power
    /// loss, normal survives a crash of the server, off promises neither
    #[arg(long = "sync", value_enum, value_name = "LEVEL", default_value_t = SyncLevel::Full, env = "CHAT_SYNC")]
    pub sync: SyncLevel,

    /// Delete stored messages older than this many days; 0 keeps them for ever
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = 0,
        env = "CHAT_RETENTION_DAYS"
    )]
    pub retention_days: u64,

    /// Keep at most this many stored messages per room (older ones are deleted); 0 = no limit
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "CHAT_RETENTION_MESSAGES"
    )]
    pub retention_messages: u64,

    /// Ping a client after this many seconds without hearing from it; 0 never pings
    #[arg(long, value_name = "SECS", default_value = "25", value_parser = seconds, env = "CHAT_HEARTBEAT")]
    pub heartbeat: Duration,

    /// Close a client that sent nothing, not even a pong, for this many seconds; 0 never does
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds, env = "CHAT_IDLE_TIMEOUT")]
    pub idle_timeout: Duration,

    /// Seconds a client has to send a complete HTTP request head (slow clients are cut off)
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds, env = "CHAT_REQUEST_TIMEOUT")]
    pub request_timeout: Duration,

    /// Seconds an idle keep-alive HTTP connection is kept open
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds, env = "CHAT_KEEP_ALIVE_TIMEOUT")]
    pub keep_alive_timeout: Duration,

    /// Seconds a graceful shutdown waits for clients to take their close frames
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds, env = "CHAT_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Duration,

    /// Stop gracefully on SIGINT and SIGTERM (a second signal stops at once). The command line
    /// always sets it; an embedding program usually handles signals itself.
    #[arg(skip = false)]
    pub handle_signals: bool,

    /// Most memory the growing structures may hold together (history, outbound queues,
    /// messages and request heads being received); past it the server sheds: history first,
    /// then the slowest readers, then the largest unfinished messages (see README, Limits).
    /// Sizes like 512MiB or 1GiB; 0 = no budget
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = size, env = "CHAT_MEMORY_BUDGET")]
    pub memory_budget: usize,

    /// Most bytes of chat messages each room keeps in memory, besides --history's count
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = size, env = "CHAT_HISTORY_BYTES")]
    pub history_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        // Parsing no arguments yields exactly the documented defaults, so the two never drift;
        // the environment (CHAT_BIND, ...) is for the command line, not for a program that
        // embeds the server, so it is switched off here.
        let command = Defaults::command().mut_args(|arg| arg.env(None::<&'static str>));
        let config = command
            .try_get_matches_from(["chat-mio-server"])
            .and_then(|matches| Config::from_arg_matches(&matches));
        match config {
            Ok(config) => Config {
                store: StoreKind::Memory,
                ..config
            },
            // Every option has a default or is optional: no arguments always parse.
            Err(e) => unreachable!("the built-in defaults do not parse: {e}"),
        }
    }
}

/// The certificate chain and key files, as given on the command line (`--tls-cert`,
/// `--tls-key`). Reading and parsing them is the adapter's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl Config {
    /// The certificate and key files, when the server serves TLS itself. `Err` when only one
    /// of the two is given.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            _ => Err("--tls-cert and --tls-key go together".to_owned()),
        }
    }

    /// Combinations of options that cannot work, found before anything starts (`Server::bind`
    /// and `chat-mio-server config check` both ask); `Err` is the reason.
    pub fn check(&self) -> Result<(), String> {
        if !self.room_access.is_empty() && self.auth == AuthMode::Open {
            return Err(
                "--room-access needs --auth token or --auth accounts: in open mode \
                        anyone can take any name"
                    .into(),
            );
        }
        if self.auth == AuthMode::Accounts && self.store != StoreKind::Sqlite {
            return Err(
                "--auth accounts keeps users and sessions in the database: use --store sqlite"
                    .into(),
            );
        }
        if self.redis.is_some() && self.auth == AuthMode::Accounts {
            return Err(
                "--auth accounts keeps users in one node's database: it cannot be used with \
                 --redis yet (use --auth token for a cluster)"
                    .into(),
            );
        }
        self.tls_files().map(drop)
    }

    /// The chat core's settings derived from these.
    pub fn core(&self) -> chat_protocol::Config {
        let rate_limit =
            (self.rate_limit > 0.0 && self.rate_burst > 0).then_some(chat_protocol::RateLimit {
                burst: self.rate_burst,
                per_second: self.rate_limit,
            });
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        chat_protocol::Config::default()
            .with_rate_limit(rate_limit)
            .with_heartbeat_interval(nonzero(self.heartbeat))
            .with_idle_timeout(nonzero(self.idle_timeout))
            .with_history(self.history)
            .with_room_history_bytes(self.history_bytes)
            // The event loop gives history what the rest of the memory budget leaves; at
            // start that is all of it.
            .with_history_budget(if self.memory_budget == 0 {
                usize::MAX
            } else {
                self.memory_budget
            })
            .with_max_rooms(self.max_rooms)
    }
}

/// A room only some users may join (`--room-access`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAccess {
    pub room: chat_protocol::RoomName,
    pub users: Vec<String>,
}

impl RoomAccess {
    /// Why `user` may not join `room`, if this rule forbids it.
    pub fn refusal(rules: &[RoomAccess], room: &str, user: &str) -> Option<String> {
        let rule = rules.iter().find(|r| r.room.as_str() == room)?;
        (!rule.users.iter().any(|u| u == user)).then(|| {
            format!("the room {room:?} is open to its members only, and {user:?} is not one\n")
        })
    }
}

/// `ROOM=USER,USER,...`.
fn room_access(s: &str) -> Result<RoomAccess, String> {
    let (room, users) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ROOM=USER,USER"))?;
    let room = chat_protocol::RoomName::parse(room).map_err(|e| format!("room {room:?}: {e}"))?;
    let users: Vec<String> = users
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    if users.is_empty() {
        return Err(format!("{s:?} names no user"));
    }
    Ok(RoomAccess { room, users })
}

/// A size in bytes: a whole number with an optional unit, `B`, `KiB`, `MiB`, `GiB` (powers of
/// 1024; `K`, `M`, `G` too) or `KB`, `MB`, `GB` (powers of 1000), case-insensitive
/// (`512MiB`, `64mib`, `1GiB`, `65536`).
pub fn size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (for example 512MiB, 1GiB or 65536)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let factor: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use B, KiB, MiB or GiB)"
            ))
        }
    };
    number
        .checked_mul(factor)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A non-negative number of seconds, fractions allowed (`0.5`).
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a usable duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_has_its_environment_variable() {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: Config,
        }
        for arg in Cli::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" {
                continue;
            }
            let want = format!("CHAT_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(want.as_str()),
                "--{long}"
            );
        }
    }

    #[test]
    fn the_library_default_ignores_the_environment() {
        // The variable is for the command line only: Config::default() must not see it. (No
        // other test of this binary reads CHAT_HISTORY_BYTES.)
        std::env::set_var("CHAT_HISTORY_BYTES", "7");
        let config = Config::default();
        assert_eq!(config.history_bytes, 1 << 20);
        assert_eq!(config.store, StoreKind::Memory);
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        let cases: &[(&str, Option<usize>)] = &[
            ("65536", Some(65_536)),
            ("0", Some(0)),
            ("512MiB", Some(512 << 20)),
            ("64mib", Some(64 << 20)),
            ("1GiB", Some(1 << 30)),
            ("1 GiB", Some(1 << 30)),
            ("8K", Some(8192)),
            ("2MB", Some(2_000_000)),
            ("10b", Some(10)),
            ("", None),
            ("MiB", None),
            ("-1MiB", None),
            ("1.5GiB", None),
            ("12 parsecs", None),
            ("99999999999999GiB", None),
        ];
        for &(input, want) in cases {
            assert_eq!(size(input).ok(), want, "{input:?}");
        }
    }
}
