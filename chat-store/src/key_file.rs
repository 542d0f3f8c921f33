//! The session-cookie key, kept in `DIR/session.key` (32 bytes, mode 0600) beside the
//! database, so logins survive a restart. It is not in the database on purpose: a copy of
//! `chat.db` (a backup) is then not enough to forge a session cookie.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "session.key";

/// The key in `dir/session.key`; when there is none, `generate` makes one and it is written
/// there first (readable by the owner only, synced). A file of another size is an error, not
/// replaced: replacing it would log everybody out.
pub fn load_or_create_key<E: std::fmt::Display>(
    dir: &Path,
    generate: impl FnOnce() -> Result<[u8; 32], E>,
) -> io::Result<[u8; 32]> {
    let path = dir.join(KEY_FILE);
    let damaged = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {what} (remove it to start over: every login ends)",
                path.display()
            ),
        )
    };
    match fs::File::open(&path) {
        Ok(mut file) => {
            let mut bytes = Vec::with_capacity(33);
            Read::by_ref(&mut file).take(33).read_to_end(&mut bytes)?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| damaged(format!("{} bytes, not 32", b.len())))?;
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
            let key = generate().map_err(|e| io::Error::other(e.to_string()))?;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_key_is_made_once_kept_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("chat-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let made = load_or_create_key(&dir, || Ok::<_, String>([7; 32])).expect("create");
        assert_eq!(made, [7; 32]);
        let mode = fs::metadata(dir.join(KEY_FILE))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create_key(&dir, || Err("must not be called")).expect("read");
        assert_eq!(again, [7; 32]);
        fs::write(dir.join(KEY_FILE), b"short").expect("damage");
        let err = load_or_create_key(&dir, || Ok::<_, String>([1; 32])).expect_err("damaged");
        assert!(err.to_string().contains("5 bytes, not 32"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
