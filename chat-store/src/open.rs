//! [`open`]: from a directory to a loaded, locked database, before the server serves.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior};

use crate::sql::{self, META_CLEAN, META_EPOCH};
use crate::stats::Stats;
use crate::store::Store;
use crate::{schema, LoadedRoom, OpenError, Opened, Options, Synchronous, DB_FILE, LOCK_FILE};

/// How long `open` waits for SQLite's locks before calling the database locked. Short: a
/// server that is running holds them for good, and an operator wants the answer now.
const OPEN_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Opens (or creates) `options.dir/chat.db`, migrates it, settles the epoch and loads the most
/// recently written rooms. Synchronous: call it before serving. See the crate docs for the
/// epoch rule and the cost.
pub fn open(options: Options) -> Result<Opened, OpenError> {
    let dir = options.dir.clone();
    prepare_dir(&dir)?;
    let lock = take_lock(&dir)?;
    let path = dir.join(DB_FILE);
    check_header(&path)?;

    let sqlite = |e| OpenError::from_sqlite(&path, e);
    let mut conn = Connection::open(&path).map_err(sqlite)?;
    conn.busy_timeout(OPEN_BUSY_TIMEOUT).map_err(sqlite)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Io {
            path: path.clone(),
            reason: format!("cannot switch to WAL mode (journal_mode is {mode})"),
        });
    }
    // The epoch decision must be on disk before any id of this run is: always FULL here.
    conn.pragma_update(None, "synchronous", Synchronous::Full.pragma())
        .map_err(sqlite)?;
    // Deleted text (moderation, retention) is zeroed in the file, not left in free space.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(sqlite)?;
    // Bound the WAL file that checkpoints leave behind.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(sqlite)?;

    // The write lock first: another writer answers Locked within OPEN_BUSY_TIMEOUT.
    let (epoch, epoch_is_new) = {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        schema::migrate(&tx, &path)?;
        let stored = sql::get_meta(&tx, META_EPOCH).map_err(sqlite)?;
        let clean = sql::get_meta(&tx, META_CLEAN).map_err(sqlite)? == Some(1);
        if stored.is_some() && !clean {
            // The last run did not end cleanly: SQLite recovered the WAL; check what it left.
            quick_check(&tx, &path)?;
        }
        let (epoch, is_new) = match stored {
            Some(epoch) if clean => (epoch as u64, false),
            _ => (options.fresh_epoch, true),
        };
        sql::set_meta(&tx, META_EPOCH, epoch as i64).map_err(sqlite)?;
        sql::set_meta(&tx, META_CLEAN, 0).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        (epoch, is_new)
    };
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())
        .map_err(sqlite)?;

    let (rooms, retired_last_id, room_names) = load_rooms(&conn, &options).map_err(sqlite)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let bans = sql::live_bans(&conn, now_ms).map_err(sqlite)?;
    crate::sessions::delete_expired(&conn, now_ms).map_err(sqlite)?;
    let stats = Arc::new(Stats::default());
    stats.refresh_db_bytes(&path);
    let store = Store {
        conn,
        lock,
        path,
        epoch,
        retention: options.retention,
        rooms_to_prune: if options.retention.max_per_room.is_some() {
            room_names
        } else {
            Vec::new()
        },
        stats,
    };
    Ok(Opened {
        epoch,
        epoch_is_new,
        rooms,
        retired_last_id,
        bans,
        store,
    })
}

pub(crate) fn prepare_dir(dir: &Path) -> Result<(), OpenError> {
    let failed = |reason: String| OpenError::Directory {
        dir: dir.to_path_buf(),
        reason,
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(failed("it exists and is not a directory".into())),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| failed(format!("cannot create it: {e}")))
        }
        Err(e) => Err(failed(e.to_string())),
    }
}

/// Takes `dir/chat.lock` exclusively for as long as the returned file lives.
fn take_lock(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| OpenError::Directory {
            dir: dir.to_path_buf(),
            reason: format!("cannot write in it: {e}"),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(OpenError::Locked { path }),
        Err(TryLockError::Error(e)) => Err(OpenError::Io {
            path,
            reason: format!("cannot lock: {e}"),
        }),
    }
}

/// Checks the 100-byte header before SQLite sees the file: the magic string, the page size,
/// and, when there is no WAL to complete it, that the file is as long as the header says.
pub(crate) fn check_header(path: &Path) -> Result<(), OpenError> {
    let corrupt = |reason: String| OpenError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let io = |e: std::io::Error| OpenError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    if !meta.is_file() {
        return Err(corrupt("not a regular file".into()));
    }
    let len = meta.len();
    if len == 0 {
        return Ok(()); // SQLite takes an empty file for a new database
    }
    if len < 100 {
        return Err(corrupt(format!(
            "truncated: {len} bytes, shorter than a database header"
        )));
    }
    let mut header = [0u8; 100];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(io)?;
    if &header[..16] != b"SQLite format 3\0" {
        return Err(corrupt("not an SQLite database".into()));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536u64,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => return Err(corrupt(format!("invalid page size {n}"))),
    };
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let wal_len = fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let change_counter = &header[24..28];
    let valid_for = &header[92..96];
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    // With frames in the WAL, a checkpoint may have been cut short: SQLite completes it.
    if wal_len == 0 && change_counter == valid_for && len < pages * page_size {
        return Err(corrupt(format!(
            "truncated: the header says {} bytes, the file has {len}",
            pages * page_size
        )));
    }
    Ok(())
}

fn quick_check(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
        .map_err(|e| OpenError::from_sqlite(path, e))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(OpenError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("quick_check: {verdict}"),
        })
    }
}

type Loaded = (Vec<LoadedRoom>, u64, Vec<String>);

/// The `max_rooms` most recently written rooms with their consecutive tails, the largest
/// `last_id` of the others, and every room's name (for retention).
fn load_rooms(conn: &Connection, options: &Options) -> rusqlite::Result<Loaded> {
    let tx = conn.unchecked_transaction()?; // one consistent read
    let mut all = tx.prepare("SELECT name, last_id FROM rooms ORDER BY last_seq DESC")?;
    let rows = all
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut rooms = Vec::with_capacity(rows.len().min(options.max_rooms));
    let mut retired_last_id = 0;
    for (name, last_id) in &rows {
        if rooms.len() >= options.max_rooms {
            retired_last_id = retired_last_id.max(*last_id);
            continue;
        }
        let mut messages = if options.history_per_room == 0 {
            Vec::new()
        } else {
            sql::room_before(
                &tx,
                name,
                last_id.saturating_add(1),
                options.history_per_room,
            )?
        };
        let start = consecutive_tail(&messages, *last_id);
        messages.drain(..start);
        rooms.push(LoadedRoom {
            name: name.clone(),
            last_id: *last_id,
            messages,
        });
    }
    drop(all);
    tx.commit()?;
    Ok((
        rooms,
        retired_last_id,
        rows.into_iter().map(|(name, _)| name).collect(),
    ))
}

/// The index where the run of consecutive ids ending at `last_id` starts in `messages`
/// (ascending ids); `messages.len()` if the last message is not `last_id`.
fn consecutive_tail(messages: &[crate::Message], last_id: u64) -> usize {
    let mut start = messages.len();
    let mut expected = Some(last_id);
    while start > 0 && Some(messages[start - 1].id) == expected {
        start -= 1;
        expected = expected.and_then(|id| id.checked_sub(1));
    }
    start
}

#[cfg(test)]
mod tests {
    use super::consecutive_tail;
    use crate::Message;

    fn ids(ids: &[u64]) -> Vec<Message> {
        ids.iter()
            .map(|&id| Message {
                room: "r".into(),
                epoch: 1,
                id,
                user: "u".into(),
                text: String::new(),
                client_msg_id: None,
                timestamp_ms: 0,
                to: None,
                deleted: false,
            })
            .collect()
    }

    #[test]
    fn the_tail_is_the_consecutive_run_ending_at_last_id() {
        assert_eq!(consecutive_tail(&ids(&[1, 2, 3]), 3), 0);
        assert_eq!(consecutive_tail(&ids(&[1, 2, 4, 5]), 5), 2);
        assert_eq!(consecutive_tail(&ids(&[1, 2, 4, 5]), 6), 4);
        assert_eq!(consecutive_tail(&ids(&[]), 6), 0);
        assert_eq!(consecutive_tail(&ids(&[5, 5, 6]), 6), 1);
        assert_eq!(consecutive_tail(&ids(&[0, 1]), 1), 0);
    }
}
