//! The process's logger: `--log-format text|json`, `--log-level`, and the access log.
//!
//! A small [`log::Log`]: the code logs through the `log` facade, with structured fields where it
//! has them (`log::info!(peer:% = addr, user = name; "...")`), and this writes each record as
//! one line to stderr: text for a terminal or the journal, or one JSON object (`timestamp`,
//! `level`, `target`, `message`, then the fields) for a log shipper. The access log is the
//! records of target [`ACCESS`] (one per HTTP answer and WebSocket upgrade); it is off, mixed
//! into the log (`on`), or appended to a file of its own, in the same format.
//!
//! No secret ever reaches a record: request targets are logged through
//! `Request::loggable_target` (token-like query values replaced by `***`), credentials are
//! `Credential`s whose `Debug` hides them, and neither headers nor bodies are logged.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, LineWriter, Write};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use clap::{Args, ValueEnum};
use log::kv::{Error as KvError, Key, Value as KvValue, VisitSource};
use log::{LevelFilter, Log, Metadata, Record};
use serde_json::Value;

/// The target of access-log records.
pub const ACCESS: &str = "access";

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    // `2026-11-30T07:00:00.123Z INFO  [target] message key=value` (plain comments: doc
    // comments would list the values in `--help` at length).
    Text,
    // One JSON object per line.
    Json,
}

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    /// Into the log itself (stderr), as records of target `access`.
    On,
    /// Appended to this file.
    File(PathBuf),
}

impl FromStr for AccessLog {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(AccessLog::Off),
            "on" => Ok(AccessLog::On),
            "" => Err("empty: give off, on or a file".into()),
            path => Ok(AccessLog::File(PathBuf::from(path))),
        }
    }
}

/// The logging options of the command line.
#[derive(Debug, Clone, Args)]
pub struct LogOptions {
    /// Log level: off, error, warn, info, debug or trace [default: RUST_LOG if set, else info]
    #[arg(long, value_name = "LEVEL", env = "CHAT_LOG_LEVEL")]
    pub log_level: Option<LevelFilter>,

    /// Log format: text (a line per event, for a terminal or the journal) or json (one JSON
    /// object per line: timestamp, level, target, message and fields such as peer, user, room)
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text, env = "CHAT_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Access log of HTTP requests and WebSocket upgrades (peer, method, path with secrets
    /// masked, status): off, on (into the log, target `access`) or a FILE to append to, in
    /// --log-format
    #[arg(
        long,
        value_name = "off|on|FILE",
        default_value = "off",
        env = "CHAT_ACCESS_LOG"
    )]
    pub access_log: AccessLog,
}

impl LogOptions {
    /// The level in force: `--log-level` (or CHAT_LOG_LEVEL), else RUST_LOG when it holds a
    /// plain level, else info.
    pub fn level(&self) -> LevelFilter {
        self.log_level
            .or_else(|| std::env::var("RUST_LOG").ok()?.trim().parse().ok())
            .unwrap_or(LevelFilter::Info)
    }
}

/// Installs the logger for the whole process. `Err` if the access log's file cannot be opened,
/// or a logger is installed already.
pub fn init(options: &LogOptions) -> io::Result<()> {
    let level = options.level();
    let access = match &options.access_log {
        AccessLog::Off => Access::Off,
        AccessLog::On => Access::Log,
        AccessLog::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("--access-log {}: {e}", path.display()))
                })?;
            Access::File(Mutex::new(LineWriter::new(file)))
        }
    };
    let max = match access {
        Access::Off => level,
        _ => level.max(LevelFilter::Info),
    };
    let logger = Logger {
        level,
        format: options.log_format,
        access,
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| io::Error::other(e.to_string()))?;
    log::set_max_level(max);
    Ok(())
}

enum Access {
    Off,
    Log,
    File(Mutex<LineWriter<File>>),
}

struct Logger {
    level: LevelFilter,
    format: LogFormat,
    access: Access,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        if metadata.target() == ACCESS {
            !matches!(self.access, Access::Off)
        } else {
            metadata.level() <= self.level
        }
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_record(self.format, record, chrono::Utc::now());
        // A log line that cannot be written has nowhere else to go.
        match (&self.access, record.target() == ACCESS) {
            (Access::File(file), true) => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                let _ = file.write_all(line.as_bytes());
            }
            // One write of the whole line, so lines of different threads never interleave.
            _ => {
                let _ = io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {
        if let Access::File(file) = &self.access {
            let _ = file.lock().unwrap_or_else(|e| e.into_inner()).flush();
        }
        let _ = io::stderr().flush();
    }
}

/// One record as one line, `\n` included.
pub fn format_record(
    format: LogFormat,
    record: &Record,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let timestamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut fields = Fields::default();
    // Our visitor never fails.
    let _ = record.key_values().visit(&mut fields);
    match format {
        LogFormat::Text => {
            let mut line = format!(
                "{timestamp} {:<5} [{}] {}",
                record.level(),
                record.target(),
                record.args()
            );
            for (key, value) in &fields.0 {
                let _ = match value {
                    Value::String(s) => write!(line, " {key}={s:?}"),
                    other => write!(line, " {key}={other}"),
                };
            }
            line.push('\n');
            line
        }
        LogFormat::Json => {
            // Written key by key (serde_json escapes each part) so the four fixed keys come
            // first, in this order, whatever order a JSON map would choose.
            let fixed = [
                ("timestamp", Value::from(timestamp)),
                ("level", Value::from(record.level().as_str())),
                ("target", Value::from(record.target())),
                ("message", Value::from(record.args().to_string())),
            ];
            let mut line = String::from("{");
            let mut seen: Vec<&str> = Vec::new();
            let all = fixed
                .iter()
                .map(|(k, v)| (*k, v))
                .chain(fields.0.iter().map(|(k, v)| (k.as_str(), v)));
            for (key, value) in all {
                // A field never hides one of the fixed keys, nor an earlier field.
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                if line.len() > 1 {
                    line.push(',');
                }
                let _ = write!(line, "{}:{value}", Value::from(key));
            }
            line.push_str("}\n");
            line
        }
    }
}

/// A record's structured fields, in the order given.
#[derive(Default)]
struct Fields(Vec<(String, Value)>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), KvError> {
        let value = if let Some(n) = value.to_u64() {
            Value::from(n)
        } else if let Some(n) = value.to_i64() {
            Value::from(n)
        } else if let Some(b) = value.to_bool() {
            Value::from(b)
        } else if let Some(x) = value.to_f64() {
            Value::from(x)
        } else {
            Value::from(value.to_string())
        };
        self.0.push((key.as_str().to_owned(), value));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: LogFormat) -> String {
        let peer: std::net::SocketAddr = ([127, 0, 0, 1], 4000).into();
        let kvs: [(&str, KvValue); 3] = [
            ("peer", KvValue::from_display(&peer)),
            ("user", KvValue::from("alice")),
            ("status", KvValue::from(101u16)),
        ];
        let now = chrono::DateTime::from_timestamp_millis(1_800_000_000_123).expect("a time");
        format_record(
            format,
            &Record::builder()
                .args(format_args!("alice connected"))
                .level(log::Level::Info)
                .target("chat")
                .key_values(&kvs)
                .build(),
            now,
        )
    }

    #[test]
    fn json_lines_carry_the_record_and_its_fields() {
        let text = line(LogFormat::Json);
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text}"
        );
        assert!(text.starts_with("{\"timestamp\":"), "{text}");
        let value: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "timestamp": "2027-01-15T08:00:00.123Z",
                "level": "INFO",
                "target": "chat",
                "message": "alice connected",
                "peer": "127.0.0.1:4000",
                "user": "alice",
                "status": 101,
            })
        );
    }

    #[test]
    fn text_lines_append_the_fields() {
        assert_eq!(
            line(LogFormat::Text),
            "2027-01-15T08:00:00.123Z INFO  [chat] alice connected peer=\"127.0.0.1:4000\" \
             user=\"alice\" status=101\n"
        );
    }
}
