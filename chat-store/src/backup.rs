//! [`backup`]: a consistent copy of a live database through SQLite's online backup API.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::DB_FILE;

/// How often a busy step is retried, 50 ms apart.
const BUSY_TRIES: u32 = 100;

/// Copies the database of data directory `dir` to the file `out`, consistently, while a server
/// may be writing it. Needs no lock the server holds: the copy is one read transaction (a WAL
/// snapshot; the server's commits go on meanwhile). The copy is written to `out.partial` and
/// renamed over `out` only once complete, so `out` is never a half-written database.
///
/// To restore, stop the server and put the copy in place as `DIR/chat.db` (remove any
/// `chat.db-wal` and `chat.db-shm` left there). A backup taken from a running server is not
/// marked clean, so the server started on it takes a new epoch: clients then get an honest gap.
pub fn backup(dir: &Path, out: &Path) -> Result<(), String> {
    let src_path = dir.join(DB_FILE);
    if !src_path.is_file() {
        return Err(format!("no database at {}", src_path.display()));
    }
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let copied = copy(&src_path, &partial);
    if let Err(e) = copied {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    fs::rename(&partial, out).map_err(|e| {
        let _ = fs::remove_file(&partial);
        format!("cannot move the backup to {}: {e}", out.display())
    })
}

fn copy(src_path: &Path, partial: &Path) -> Result<(), String> {
    let src = Connection::open_with_flags(
        src_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", src_path.display()))?;
    src.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let _ = fs::remove_file(partial); // a leftover from an interrupted backup
    let mut dst = Connection::open(partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    {
        let backup = Backup::new(&src, &mut dst).map_err(|e| format!("backup: {e}"))?;
        // All pages in one step: one read transaction, so one consistent snapshot, however
        // much the server writes meanwhile (a step-by-step copy restarts on every write).
        let mut tries = 0;
        loop {
            match backup.step(-1).map_err(|e| format!("backup: {e}"))? {
                StepResult::Done => break,
                StepResult::Busy | StepResult::Locked if tries < BUSY_TRIES => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => return Err("backup: the database stayed busy".into()),
            }
        }
    }
    // The copy carries the source's WAL flag; fold everything into the one file.
    dst.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| format!("backup: {e}"))?;
    dst.close().map_err(|(_, e)| format!("backup: {e}"))
}
