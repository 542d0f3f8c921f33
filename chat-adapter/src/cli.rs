//! What every adapter's binary does with its command line: the options over the environment
//! over `--config FILE` over the defaults, and the address to print once listening.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::config_file::ConfigFile;
use crate::logging::LogOptions;

/// The command line, over the environment, over the config file (`--config FILE`, CHAT_CONFIG,
/// or the FILE of a `config check FILE` subcommand), over the defaults. `C` has a `config`
/// option. Clap's own errors (and `--help`, `--version`) exit here (code 2); `Err` is a
/// config file's error.
pub fn parse<C: Parser>(args: &[OsString]) -> Result<(C, Option<ConfigFile>), String> {
    let file = match config_path::<C>(args) {
        Some(path) => Some(ConfigFile::load(&path, &C::command())?),
        None => None,
    };
    let command = match &file {
        Some(file) => file.apply(C::command()),
        None => C::command(),
    };
    let matches = command.get_matches_from(args);
    let cli = C::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok((cli, file))
}

/// [`parse`] for a binary's `main`: a config file's error is printed, and the exit code (2,
/// as clap's own errors) is the `Err`.
pub fn parse_or_exit<C: Parser>(args: &[OsString]) -> Result<(C, Option<ConfigFile>), ExitCode> {
    parse(args).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Starts the logs as `logs` says, and records where the options came from; `Err` is the
/// exit code after the reason was printed.
pub fn start_logging(logs: &LogOptions, file: Option<&ConfigFile>) -> Result<(), ExitCode> {
    if let Err(e) = crate::logging::init(logs) {
        eprintln!("cannot start logging: {e}");
        return Err(ExitCode::FAILURE);
    }
    if let Some(file) = file {
        log::info!(file:% = file.path.display(); "options read from {}", file.path.display());
    }
    Ok(())
}

/// The config file named on the command line or in CHAT_CONFIG, found before the real parse
/// (the file's values are the real parse's defaults). Errors are left to the real parse.
fn config_path<C: CommandFactory>(args: &[OsString]) -> Option<PathBuf> {
    let matches = C::command()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    if let Some(("config", config)) = matches.subcommand() {
        if let Some(("check", check)) = config.subcommand() {
            return check.get_one::<PathBuf>("file").cloned();
        }
    }
    matches.get_one::<PathBuf>("config").cloned()
}

/// What to print once listening on `addr`: the URL a browser on this machine opens.
pub fn open_in_browser(scheme: &str, addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    format!(
        "Open {scheme}://{host}:{} in your browser to chat.",
        addr.port()
    )
}
