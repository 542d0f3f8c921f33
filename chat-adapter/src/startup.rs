//! What an adapter does once before serving: open the message store (when `--store sqlite`)
//! and build the core with the rooms, the epoch and the bans it had. Synchronous (SQLite is
//! opened and read here); the storage thread is started by the adapter, which decides where
//! its completions go (`chat_store::Store::start`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::ChatServer;

use crate::assets::Assets;
use crate::bans::{loaded_bans, Bans};
use crate::config::{AuthMode, Config, StoreKind, SyncLevel};
use crate::store_records::restored_rooms;

/// The static files: `--static-dir`, read whole now, or the embedded ones. A directory
/// without the page is served anyway (with a warning: `/` answers 404).
pub fn assets(config: &Config) -> io::Result<Assets> {
    let assets = match &config.static_dir {
        Some(dir) => Assets::from_dir(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("static dir {}: {e}", dir.display())))?,
        None => Assets::embedded(),
    };
    if assets.get(crate::routes::INDEX).is_none() {
        log::warn!(
            "no {} among the static files: / will answer 404",
            crate::routes::INDEX
        );
    }
    Ok(assets)
}

/// The core and what backs it, before serving.
pub struct Restored {
    pub core: ChatServer,
    /// The opened store, its thread not started yet; `None` with `--store memory`.
    pub store: Option<chat_store::Store>,
    pub bans: Bans,
}

/// The epoch (PROTOCOL.md) of a run that keeps nothing, or that cannot keep the stored one:
/// the start time in milliseconds, which differs on every start.
pub fn fresh_epoch() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(1)
}

/// The core's options for this configuration (its epoch and mode still to be set).
pub fn core_config(config: &Config) -> chat_protocol::Config {
    config
        .core()
        .with_token_auth(config.auth == AuthMode::Token)
}

/// The core, and the store when messages are kept on disk: the store is opened before
/// anything is served (its faults stop the start with a clear message), and the core gets
/// back the rooms and the epoch it had.
pub fn restore(config: &Config, fresh_epoch: u64) -> io::Result<Restored> {
    let core_config = core_config(config);
    if config.store == StoreKind::Memory {
        // Bans live in memory only: a restart forgets them.
        return Ok(Restored {
            core: ChatServer::new(core_config.with_epoch(fresh_epoch)),
            store: None,
            bans: Bans::default(),
        });
    }
    // A file that may grow no more (a size limit, `ulimit -f`) must fail the write (the store
    // reports it and chat goes on) rather than kill the process with SIGXFSZ.
    if let Err(e) = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    ) {
        log::warn!("cannot catch SIGXFSZ (a file size limit would stop the server): {e}");
    }
    let days = |d: u64| Duration::from_secs(d.saturating_mul(24 * 60 * 60));
    let opened = chat_store::open(chat_store::Options {
        dir: config.data_dir.clone(),
        synchronous: match config.sync {
            SyncLevel::Full => chat_store::Synchronous::Full,
            SyncLevel::Normal => chat_store::Synchronous::Normal,
            SyncLevel::Off => chat_store::Synchronous::Off,
        },
        retention: chat_store::Retention {
            max_age: (config.retention_days > 0).then(|| days(config.retention_days)),
            max_per_room: (config.retention_messages > 0).then_some(config.retention_messages),
        },
        history_per_room: config.history,
        max_rooms: config.max_rooms,
        fresh_epoch,
    })
    .map_err(|e| io::Error::other(format!("message store: {e}")))?;
    if opened.epoch_is_new {
        log::info!(
            "message store {}: epoch {} (new: the last run did not close the store cleanly, or \
             this is the first)",
            config.data_dir.display(),
            opened.epoch
        );
    } else {
        log::info!(
            "message store {}: epoch {} kept, {} rooms loaded",
            config.data_dir.display(),
            opened.epoch,
            opened.rooms.len()
        );
    }
    let mut core = ChatServer::new(core_config.with_epoch(opened.epoch).with_durable(true));
    core.restore(restored_rooms(opened.rooms), opened.retired_last_id);
    if !opened.bans.is_empty() {
        log::info!("{} bans in force loaded", opened.bans.len());
    }
    Ok(Restored {
        core,
        store: Some(opened.store),
        bans: loaded_bans(opened.bans),
    })
}
