//! Why [`open`](crate::open) failed, in words an operator can act on.

use std::fmt;
use std::path::PathBuf;

use rusqlite::ErrorCode;

/// Why the store could not be opened. `Display` is one line for the operator: what, where, and
/// what to do about it.
#[derive(Debug)]
pub enum OpenError {
    /// The data directory could not be created or is not a directory (for example a regular file).
    Directory {
        /// The data directory.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Another process holds the database: another server on the same directory, or a program
    /// with a write transaction open.
    Locked {
        /// The file that is locked.
        path: PathBuf,
    },
    /// The database was written by a newer version of the server (its schema version is higher).
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its `PRAGMA user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The file is not an SQLite database, not this server's, truncated, or corrupt.
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the check found.
        reason: String,
    },
    /// An I/O error (permissions, disk full, a failing disk) or any other SQLite failure.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The error.
        reason: String,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Directory { dir, reason } => write!(
                f,
                "cannot use data directory {}: {reason} (choose another --data-dir)",
                dir.display()
            ),
            OpenError::Locked { path } => write!(
                f,
                "database {} is locked by another process (is another server running on this \
                 data directory?)",
                path.display()
            ),
            OpenError::TooNew {
                path,
                found,
                supported,
            } => write!(
                f,
                "database {} has schema version {found}, newer than this server's {supported}: \
                 run a newer server or use another --data-dir",
                path.display()
            ),
            OpenError::Corrupt { path, reason } => write!(
                f,
                "database {} is not a usable chat database ({reason}): restore a backup or move \
                 the file away",
                path.display()
            ),
            OpenError::Io { path, reason } => {
                write!(f, "I/O error on {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for OpenError {}

impl OpenError {
    /// Sorts an SQLite error met while opening `path` into the right kind.
    pub(crate) fn from_sqlite(path: &std::path::Path, error: rusqlite::Error) -> OpenError {
        let path = path.to_path_buf();
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => OpenError::Locked { path },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => OpenError::Corrupt {
                path,
                reason: error.to_string(),
            },
            _ => OpenError::Io {
                path,
                reason: error.to_string(),
            },
        }
    }
}
