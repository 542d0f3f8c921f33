//! `chat-mio-server`: serves the chat page and the WebSocket chat on one port.

use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chat_auth::password::{hash_password, Secret, MAX_PASSWORD_BYTES};
use chat_store::accounts;

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
    /// Manage built-in accounts (stored as argon2id hashes in the database)
    User {
        #[command(subcommand)]
        action: UserAction,
        /// Directory of the message database
        #[arg(long, value_name = "DIR", default_value = "chat-data", global = true)]
        data_dir: PathBuf,
    },
}

/// What `user` does.
#[derive(Subcommand)]
enum UserAction {
    /// Add a user; the password is read from the terminal (no echo, asked twice) or, when
    /// stdin is not a terminal, as one line from stdin
    Add {
        /// The user name (1 to 32 characters, as a client id)
        name: String,
        /// Make the user an admin
        #[arg(long)]
        admin: bool,
    },
    /// List the users: name, admin, created date
    List,
    /// Remove a user
    Remove {
        /// The user name
        name: String,
    },
    /// Make a user an admin or not
    SetAdmin {
        /// The user name
        name: String,
        /// true or false
        #[arg(action = clap::ArgAction::Set)]
        admin: bool,
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
    if let Some(Command::User { action, data_dir }) = &cli.command {
        return match user_command(action, data_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("user: {e}");
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
    let scheme = if cli.config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "Open {scheme}://{host}:{} in your browser to chat.",
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

/// Runs a `user` subcommand; `Err` is the one-line reason.
fn user_command(action: &UserAction, dir: &Path) -> Result<(), String> {
    match action {
        UserAction::Add { name, admin } => {
            accounts::check_name(name).map_err(|e| e.to_string())?;
            let password = read_password()?;
            let phc = hash_password(&password).map_err(|e| e.to_string())?;
            drop(password);
            accounts::add_user(dir, name, &phc, *admin).map_err(|e| e.to_string())?;
            println!("added user {name}{}", if *admin { " (admin)" } else { "" });
        }
        UserAction::List => {
            let users = accounts::list_users(dir).map_err(|e| e.to_string())?;
            if users.is_empty() {
                println!("no users");
            }
            for user in users {
                let created = chrono::DateTime::from_timestamp_millis(user.created_ms).map_or_else(
                    || "?".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
                );
                println!("{}\tadmin={}\tcreated {created}", user.name, user.admin);
            }
        }
        UserAction::Remove { name } => {
            if !accounts::remove_user(dir, name).map_err(|e| e.to_string())? {
                return Err(format!("no user {name:?}"));
            }
            println!("removed user {name}");
        }
        UserAction::SetAdmin { name, admin } => {
            if !accounts::set_admin(dir, name, *admin).map_err(|e| e.to_string())? {
                return Err(format!("no user {name:?}"));
            }
            println!("user {name}: admin={admin}");
        }
    }
    Ok(())
}

/// The new password: from the terminal without echo (twice, compared) or one line of stdin.
fn read_password() -> Result<Secret, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = Secret::new(
            rpassword::prompt_password("Password: ")
                .map_err(|e| format!("cannot read the password: {e}"))?,
        );
        let second = Secret::new(
            rpassword::prompt_password("Password again: ")
                .map_err(|e| format!("cannot read the password: {e}"))?,
        );
        if first.expose() != second.expose() {
            return Err("the passwords do not match".into());
        }
        first
    } else {
        // Read into a String that the Secret then owns (moved, not copied), so it is zeroed.
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .take((MAX_PASSWORD_BYTES + 3) as u64)
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        for end in ['\n', '\r'] {
            if line.ends_with(end) {
                line.pop();
            }
        }
        Secret::new(line)
    };
    if password.expose().is_empty() {
        return Err("the password is empty".into());
    }
    if password.expose().len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(password)
}
