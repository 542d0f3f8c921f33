//! `chat-mio-server`: serves the chat page and the WebSocket chat on one port.

mod systemd;

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chat_auth::password::{hash_password, Secret, MAX_PASSWORD_BYTES};
use chat_store::accounts;

use chat_mio_server::config_file::{self, ConfigFile};
use chat_mio_server::logging::LogOptions;
use chat_mio_server::{AuthMode, Config, Server};
use clap::{CommandFactory, Parser, Subcommand};

/// The version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CHAT_GIT_COMMIT"),
    ")"
);

/// A real-time WebSocket chat server. Open the printed URL in a browser to chat.
#[derive(Parser)]
#[command(version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// TOML file of options: the keys are the long options without `--` (`bind = "0.0.0.0:8000"`,
    /// `allowed-origin = ["https://chat.example.org"]`). Every option may also come from its
    /// environment variable (shown as [env: ...]); a flag beats the environment, which beats
    /// the file, which beats the default. Check one with `chat-mio-server config check FILE`
    #[arg(long, value_name = "FILE", env = "CHAT_CONFIG")]
    config: Option<PathBuf>,

    #[command(flatten)]
    server: Config,

    #[command(flatten)]
    logs: LogOptions,
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
    /// Configuration files
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// What `config` does.
#[derive(Subcommand)]
enum ConfigAction {
    /// Check FILE (unknown keys, bad values) and print the effective configuration: the file,
    /// overridden by the environment and the flags given before `config`; secrets masked
    Check {
        /// The TOML file
        file: PathBuf,
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
    let args: Vec<OsString> = std::env::args_os().collect();
    let (cli, file) = match chat_adapter::cli::parse_or_exit::<Cli>(&args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if let Some(Command::Config {
        action: ConfigAction::Check { .. },
    }) = &cli.command
    {
        return config_check(&cli, &args, file.as_ref());
    }
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
    if let Err(code) = chat_adapter::cli::start_logging(&cli.logs, file.as_ref()) {
        return code;
    }

    let mut config = cli.server.clone();
    config.handle_signals = true;
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            log::error!(bind:% = cli.server.bind; "cannot start on {}: {e}", cli.server.bind);
            return ExitCode::FAILURE;
        }
    };
    server.on_drain(systemd::stopping);
    let addr = server.local_addr();
    log::info!(addr:% = addr, version = VERSION; "chat server listening on {addr}");
    let scheme = if cli.server.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    println!("{}", chat_adapter::cli::open_in_browser(scheme, addr));
    systemd::ready();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `config check FILE`: the file parsed already (or the parse failed before this); checks what
/// only the whole configuration shows and prints it.
fn config_check(cli: &Cli, args: &[OsString], file: Option<&ConfigFile>) -> ExitCode {
    let command = match file {
        Some(file) => file.apply(Cli::command()),
        None => Cli::command(),
    };
    let matches = command.clone().get_matches_from(args);
    let secret = |env: &str, file: &Option<PathBuf>, flag: &str| match (file, std::env::var_os(env))
    {
        (Some(path), _) => Some(format!("read from {flag} {}", path.display())),
        (None, Some(_)) => Some(format!("from the environment variable {env}")),
        (None, None) => None,
    };
    let secrets = [
        (
            "JWT secret",
            secret(
                "CHAT_JWT_SECRET",
                &cli.server.jwt_secret_file,
                "--jwt-secret-file",
            ),
        ),
        (
            "API key",
            secret("CHAT_API_KEY", &cli.server.api_key_file, "--api-key-file"),
        ),
    ];
    print!(
        "{}",
        config_file::render(&command, &matches, file, &secrets)
    );
    let token_keys = secrets[0].1.is_some() || cli.server.jwt_public_key.is_some();
    let checked = cli.server.check().and_then(|()| {
        if cli.server.auth == AuthMode::Token && !token_keys {
            Err("--auth token needs --jwt-secret-file, CHAT_JWT_SECRET or --jwt-public-key".into())
        } else {
            Ok(())
        }
    });
    match checked {
        Ok(()) => {
            if let Some(file) = file {
                eprintln!("{}: OK", file.path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
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
