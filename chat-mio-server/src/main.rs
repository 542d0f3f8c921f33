//! `chat-mio-server`: serves the chat page and the WebSocket chat on one port.

use std::path::PathBuf;
use std::process::ExitCode;

use chat_mio_server::{Config, Server};
use clap::{Parser, Subcommand};
use log::LevelFilter;

/// A real-time WebSocket chat server. Open the printed URL in a browser to chat.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    config: Config,

    /// Log level: off, error, warn, info, debug or trace [default: RUST_LOG if set, else info]
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<LevelFilter>,
}

/// Operator tools; without one, the server runs.
#[derive(Subcommand)]
enum Command {
    /// Copy the message database to OUT, consistently, even while the server runs
    Backup {
        /// The copy to write (replaced if it exists)
        out: PathBuf,
        /// Directory of the message database
        #[arg(long, value_name = "DIR", default_value = "chat-data")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Backup { out, data_dir }) = &cli.command {
        return match chat_store::backup(data_dir, out) {
            Ok(()) => {
                println!("backed up {} to {}", data_dir.display(), out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("backup failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let logger = simple_logger::SimpleLogger::new().with_level(LevelFilter::Info);
    // RUST_LOG (a plain level) overrides the default; --log-level overrides both.
    let logger = match cli.log_level {
        Some(level) => logger.with_level(level),
        None => logger.env(),
    };
    if let Err(e) = logger.init() {
        eprintln!("cannot start logging: {e}");
    }

    let mut config = cli.config.clone();
    config.handle_signals = true;
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            log::error!("cannot start on {}: {e}", cli.config.bind);
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    log::info!("chat server listening on {addr}");
    println!(
        "Open http://{host}:{} in your browser to chat.",
        addr.port()
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
