//! `--config FILE`: options from a TOML file, below flags and environment variables.
//!
//! The file's keys are the long options without `--` (`bind`, `max-connections`, `log-format`);
//! a repeatable option takes an array (`allowed-origin = ["https://a.example"]`). Each value
//! becomes the option's *default* in the clap command before the command line is parsed, so
//! clap itself applies the precedence, flag > environment variable > file > built-in default,
//! and checks a file's value with the same parser as a flag's. The keys are read from the clap
//! command too, so the file can never accept an option the command line lacks, or the reverse.
//!
//! `toml` parses the file; an unknown key, a value of the wrong shape or one the option's
//! parser refuses is an error naming the file, the line and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{ArgAction, ArgMatches, Command};
use toml::{Spanned, Value};

/// Options that are not keys of the file: the file itself and clap's own.
const NOT_KEYS: [&str; 3] = ["config", "help", "version"];

/// One option set by the file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileValue {
    /// The key, which is the option's long name (`max-connections`).
    pub key: String,
    /// The clap id of the option (`max_connections`).
    pub id: String,
    /// Its value(s) as a command line would spell them.
    pub values: Vec<String>,
    /// The line of the key, from 1.
    pub line: usize,
}

/// A file's options, checked against a command.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub values: Vec<FileValue>,
}

impl ConfigFile {
    /// Reads and checks `path` against `command`'s options.
    pub fn load(path: &Path, command: &Command) -> Result<ConfigFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        Self::parse(path, &text, command)
    }

    /// Checks `text`, the contents of `path`, against `command`'s options.
    pub fn parse(path: &Path, text: &str, command: &Command) -> Result<ConfigFile, String> {
        let at = |line: usize| format!("config file {}, line {line}", path.display());
        let table: BTreeMap<Spanned<String>, Spanned<Value>> =
            toml::from_str(text).map_err(|e| {
                let line = e.span().map_or(1, |span| line_of(text, span.start));
                format!("{}: {}", at(line), e.message())
            })?;
        let mut values = Vec::with_capacity(table.len());
        for (key, value) in table {
            let line = line_of(text, key.span().start);
            let key = key.into_inner();
            let Some(arg) = keys(command).find(|a| a.get_long() == Some(key.as_str())) else {
                return Err(format!(
                    "{}: unknown key `{key}` (the keys are the long options without `--`: {})",
                    at(line),
                    keys(command)
                        .filter_map(|a| a.get_long())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let repeatable = matches!(arg.get_action(), ArgAction::Append);
            let strings = match value.into_inner() {
                Value::Array(items) if repeatable => items
                    .into_iter()
                    .map(scalar)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        format!(
                            "{}: `{key}`: the list may hold strings and numbers",
                            at(line)
                        )
                    })?,
                Value::Array(_) => {
                    return Err(format!("{}: `{key}` takes one value, not a list", at(line)))
                }
                other => vec![scalar(other)
                    .ok_or_else(|| format!("{}: `{key}` takes a string or a number", at(line)))?],
            };
            // The option's own parser, alone in a command of its own: the file's values are
            // checked as a flag's would be, and the error can name the line.
            let checker = Command::new("config")
                .no_binary_name(true)
                .arg(arg.clone().env(None::<&'static str>).required(false));
            for s in &strings {
                checker
                    .clone()
                    .try_get_matches_from([format!("--{key}"), s.clone()])
                    .map_err(|e| format!("{}: `{key}` = {s:?}: {}", at(line), clap_reason(&e)))?;
            }
            values.push(FileValue {
                key,
                id: arg.get_id().to_string(),
                values: strings,
                line,
            });
        }
        Ok(ConfigFile {
            path: path.to_owned(),
            values,
        })
    }

    /// `command` with the file's values as its options' defaults.
    pub fn apply(&self, command: Command) -> Command {
        // In place: `--help` and `config check` keep the options' order.
        command.mut_args(|arg| match self.get(arg.get_id().as_str()) {
            Some(value) => arg.default_values(value.values.clone()),
            None => arg,
        })
    }

    /// The file's entry for the option `id`.
    pub fn get(&self, id: &str) -> Option<&FileValue> {
        self.values.iter().find(|v| v.id == id)
    }
}

/// The options a file may set: every long option of `command` but `--config`, `--help` and
/// `--version`.
pub fn keys(command: &Command) -> impl Iterator<Item = &clap::Arg> {
    command.get_arguments().filter(|a| {
        a.get_long().is_some() && !NOT_KEYS.contains(&a.get_id().as_str()) && !a.is_hide_set()
    })
}

/// Where the value of option `id` came from, for `config check`.
pub fn source(matches: &ArgMatches, file: Option<&ConfigFile>, id: &str) -> String {
    use clap::parser::ValueSource;
    match matches.value_source(id) {
        Some(ValueSource::CommandLine) => "command line".to_owned(),
        Some(ValueSource::EnvVariable) => "environment".to_owned(),
        Some(ValueSource::DefaultValue) => match file.and_then(|f| f.get(id)) {
            Some(v) => format!("file, line {}", v.line),
            None => "default".to_owned(),
        },
        _ => "not set".to_owned(),
    }
}

/// The effective configuration as a TOML file: every option with its value and where the value
/// came from. Option values are never secret (secrets are given as files or through the
/// environment variables CHAT_JWT_SECRET and CHAT_API_KEY, which `secrets` describes masked).
pub fn render(
    command: &Command,
    matches: &ArgMatches,
    file: Option<&ConfigFile>,
    secrets: &[(&str, Option<String>)],
) -> String {
    let mut out = String::from(
        "# The effective configuration: command line > environment > file > default.\n",
    );
    if let Some(file) = file {
        out.push_str(&format!("# file: {}\n", file.path.display()));
    }
    for arg in keys(command) {
        let (Some(key), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = source(matches, file, id);
        let line = if matches!(arg.get_action(), ArgAction::Append) {
            let items: Vec<Value> = raw.iter().map(|s| typed(s)).collect();
            let comment = if items.is_empty() { "# " } else { "" };
            format!("{comment}{key} = {}", Value::Array(items))
        } else if let Some(first) = raw.first() {
            format!("{key} = {}", typed(first))
        } else {
            format!("# {key} =")
        };
        out.push_str(&format!("{line:<40} # {source}\n"));
    }
    out.push_str("# secrets (never shown):\n");
    for (what, how) in secrets {
        match how {
            Some(how) => out.push_str(&format!("#   {what}: *** ({how})\n")),
            None => out.push_str(&format!("#   {what}: not set\n")),
        }
    }
    out
}

/// A value as TOML: a number when it reads as one, else a string (the file takes both).
fn typed(s: &str) -> Value {
    if let Ok(n) = s.parse::<i64>() {
        Value::Integer(n)
    } else if let Some(x) = s
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && s.contains('.'))
    {
        Value::Float(x)
    } else {
        Value::String(s.to_owned())
    }
}

/// A scalar's command-line spelling; `None` for a table, a list or a date.
fn scalar(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Integer(n) => Some(n.to_string()),
        Value::Float(x) => Some(x.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Datetime(_) | Value::Array(_) | Value::Table(_) => None,
    }
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The reason in a clap error, without its `error:` prefix and usage hints.
fn clap_reason(e: &clap::Error) -> String {
    let text = e.to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;
    use crate::Config;

    #[derive(Parser, Debug)]
    struct Cli {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        server: Config,
    }

    fn parse(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse(Path::new("chat.toml"), text, &Cli::command())
    }

    fn config(text: &str, args: &[&str]) -> Config {
        let file = parse(text).expect("a valid file");
        let matches = file
            .apply(Cli::command())
            .try_get_matches_from(std::iter::once("chat").chain(args.iter().copied()))
            .expect("valid arguments");
        Config::from_arg_matches(&matches).expect("a config")
    }

    #[test]
    fn a_file_sets_options_and_flags_override_it() {
        let text = "bind = \"0.0.0.0:9000\"\nmax-connections = 42\n\
                    allowed-origin = [\"https://a.example\", \"https://b.example\"]\n\
                    rate-limit = 2.5\nmemory-budget = \"64MiB\"\nheartbeat = 10\n";
        let c = config(text, &[]);
        assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(c.max_connections, 42);
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.rate_limit, 2.5);
        assert_eq!(c.memory_budget, 64 << 20);
        assert_eq!(c.heartbeat.as_secs(), 10);
        let c = config(text, &["--max-connections", "7", "--allowed-origin", "*"]);
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.allowed_origins, ["*"]);
        assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_key() {
        let cases: &[(&str, &[&str])] = &[
            (
                "bind = \"127.0.0.1:1\"\n\nmax-conections = 5\n",
                &["line 3", "unknown key `max-conections`", "max-connections"],
            ),
            ("bind = \"nonsense\"\n", &["line 1", "`bind`", "nonsense"]),
            (
                "history = 1\nbind = [\"127.0.0.1:1\"]\n",
                &["line 2", "`bind` takes one value"],
            ),
            (
                "[server]\nbind = \"127.0.0.1:1\"\n",
                &["line 1", "unknown key `server`"],
            ),
            (
                "store = { kind = \"sqlite\" }\n",
                &["line 1", "`store` takes a string or a number"],
            ),
            ("sync = \"sometimes\"\n", &["line 1", "`sync`", "sometimes"]),
            ("bind = \n", &["line 1"]),
            ("config = \"other.toml\"\n", &["unknown key `config`"]),
        ];
        for (text, wanted) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.starts_with("config file chat.toml, line"), "{error}");
            for want in *wanted {
                assert!(error.contains(want), "{text:?}: {error:?} lacks {want:?}");
            }
        }
    }

    #[test]
    fn render_shows_every_option_and_where_it_came_from() {
        let file = parse("max-connections = 42\nallowed-origin = [\"https://a.example\"]\n")
            .expect("a valid file");
        let command = file.apply(Cli::command());
        let matches = command
            .clone()
            .try_get_matches_from(["chat", "--history", "5"])
            .expect("valid arguments");
        let text = render(
            &command,
            &matches,
            Some(&file),
            &[("JWT secret", Some("from CHAT_JWT_SECRET".into()))],
        );
        assert!(text.contains("max-connections = 42"), "{text}");
        assert!(text.contains("# file, line 1"), "{text}");
        assert!(
            text.contains("allowed-origin = [\"https://a.example\"]"),
            "{text}"
        );
        assert!(text.contains("history = 5"), "{text}");
        assert!(text.contains("# command line"), "{text}");
        assert!(text.contains("bind = \"127.0.0.1:8000\""), "{text}");
        assert!(text.contains("# static-dir ="), "{text}");
        assert!(
            text.contains("JWT secret: *** (from CHAT_JWT_SECRET)"),
            "{text}"
        );
        // What it prints is a file it accepts.
        let uncommented: String = text
            .lines()
            .map(|l| l.split(" #").next().unwrap_or(l))
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        parse(&uncommented).expect("config check's output is a valid file");
    }
}
