//! `chat-tokio-server`: the chat page and the WebSocket chat on one port, on tokio and axum.
//! The same options as `chat-mio-server` (flags, `CHAT_*` environment, `--config FILE`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use chat_adapter::logging::LogOptions;
use chat_adapter::Config;
use chat_tokio::Chat;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

/// A real-time WebSocket chat server on tokio and axum. Open the printed URL in a browser to
/// chat.
#[derive(Parser)]
#[command(name = "chat-tokio-server", version, about)]
struct Cli {
    #[command(flatten)]
    logs: LogOptions,

    /// TOML file of options, keyed by the long options without `--` (`max-outbound = 65536`);
    /// the environment and then the flags override it
    #[arg(long, value_name = "FILE", env = "CHAT_CONFIG")]
    config: Option<PathBuf>,

    #[command(flatten)]
    server: Config,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let (cli, file) = match chat_adapter::cli::parse_or_exit::<Cli>(&args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if let Err(code) = chat_adapter::cli::start_logging(&cli.logs, file.as_ref()) {
        return code;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.server))
}

async fn run(config: Config) -> ExitCode {
    let bind = config.bind;
    let chat = match Chat::start(config).await {
        Ok(chat) => chat,
        Err(e) => {
            log::error!(bind:% = bind; "cannot start on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(e) => {
            log::error!(bind:% = bind; "cannot start on {bind}: {e}");
            chat.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            log::error!("cannot read the listening address: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(addr:% = addr; "chat server listening on {addr}");
    println!("{}", chat_adapter::cli::open_in_browser("http", addr));
    // The binary always stops on SIGINT and SIGTERM (`--handle-signals` is for embedding): the
    // first begins the graceful drain, a second one stops at once.
    let (mut interrupt, mut terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
        (Err(e), _) | (_, Err(e)) => {
            log::error!("cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (first_tx, first) = tokio::sync::oneshot::channel::<()>();
    let (second_tx, second) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        for tx in [first_tx, second_tx] {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            let _ = tx.send(());
        }
    });
    let shutdown = async move {
        if first.await.is_ok() {
            log::info!("signal received: shutting down (send it again to stop at once)");
        }
    };
    let serving = chat_tokio::serve(listener, chat, shutdown);
    tokio::pin!(serving);
    let second_signal = async move {
        if second.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = &mut serving => match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("serving failed: {e}");
                ExitCode::FAILURE
            }
        },
        () = second_signal => {
            log::warn!("second signal: stopping without waiting for clients");
            ExitCode::FAILURE
        }
    }
}
