//! The static files of the browser client, loaded once at start-up so the event loop never
//! touches the disk. A request can only name a file of this set: lookups are by exact name, so
//! no path (`..`, absolute, encoded) can reach anything else.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::{fs, io};

use bytes::Bytes;

/// The files built into the binary from the workspace's `static/` directory (see `build.rs`).
const EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/embedded_assets.rs"));

/// One servable file.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Shared by every response that sends it: a refcount, not a copy.
    pub body: Bytes,
    pub content_type: String,
    /// A strong validator of the content, for `If-None-Match`.
    pub etag: String,
}

impl Asset {
    fn new(name: &str, body: Vec<u8>) -> Self {
        let mime = mime_guess::from_path(name).first_or_octet_stream();
        let content_type = match (mime.type_(), mime.subtype().as_str()) {
            (mime_guess::mime::TEXT, _) | (_, "javascript" | "json" | "xml" | "svg") => {
                format!("{}; charset=utf-8", mime.essence_str())
            }
            _ => mime.essence_str().to_owned(),
        };
        // DefaultHasher::new() uses fixed keys: the same bytes give the same tag on every run.
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        Asset {
            etag: format!("\"{:016x}\"", hasher.finish()),
            body: body.into(),
            content_type,
        }
    }
}

/// The set of static files, by `/`-separated name relative to the static root.
#[derive(Debug, Clone, Default)]
pub struct Assets {
    files: HashMap<String, Asset>,
}

impl Assets {
    /// The copy built into the binary.
    pub fn embedded() -> Self {
        let files = EMBEDDED
            .iter()
            .map(|&(name, body)| (name.to_owned(), Asset::new(name, body.to_vec())))
            .collect();
        Assets { files }
    }

    /// Every regular file below `dir`. Symbolic links are followed only when they stay inside
    /// `dir`; anything else is skipped with a warning.
    pub fn from_dir(dir: &Path) -> io::Result<Self> {
        let root = dir.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", dir.display()),
            ));
        }
        let mut assets = Assets::default();
        assets.load_dir(&root, &root)?;
        Ok(assets)
    }

    fn load_dir(&mut self, root: &Path, dir: &Path) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let real = match path.canonicalize() {
                Ok(real) if real.starts_with(root) => real,
                _ => {
                    log::warn!(
                        "skipping {}: it leads outside the static directory",
                        path.display()
                    );
                    continue;
                }
            };
            if real.is_dir() {
                // A link to a directory inside the root would be loaded twice or loop: only
                // real subdirectories are walked.
                if real == path {
                    self.load_dir(root, &real)?;
                }
            } else if real.is_file() {
                let rel = path.strip_prefix(root).map_err(io::Error::other)?;
                let Some(name) = rel
                    .iter()
                    .map(|c| c.to_str())
                    .collect::<Option<Vec<_>>>()
                    .map(|parts| parts.join("/"))
                else {
                    log::warn!("skipping {}: the name is not UTF-8", path.display());
                    continue;
                };
                let body = fs::read(&real)?;
                self.files.insert(name.clone(), Asset::new(&name, body));
            }
        }
        Ok(())
    }

    /// The file called `name` (relative, `/`-separated, already percent-decoded).
    pub fn get(&self, name: &str) -> Option<&Asset> {
        self.files.get(name)
    }

    /// How many files there are.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files at all.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
