//! The one way a browser test starts its world: a chat server and a browser whose pages
//! load from it. The test binary declares `mod common;` next to `mod browser_support;`.

use std::path::{Path, PathBuf};

use chat_mio_server::{Config, StoreKind};

use crate::common::TestServer;

use super::{chromium_or_skip, Browser, Page};

/// A chat server and a headless Chromium. Fields drop in declaration order: the browser
/// (and with it every page's WebSocket) goes away before the server, so the server never
/// waits on a client that is being killed; the server's data directory, if any, goes last.
pub struct BrowserTest {
    pub browser: Browser,
    pub server: TestServer,
    data_dir: Option<TempDir>,
}

impl BrowserTest {
    /// Starts a server with the default configuration and a browser; `None` when the test
    /// is skipped because Chromium is missing (see `chromium_or_skip`).
    pub fn start() -> Option<BrowserTest> {
        Self::with_config(Config::default())
    }

    /// Starts a server with `config` (its bind address is replaced) and a browser.
    pub fn with_config(config: Config) -> Option<BrowserTest> {
        Self::with_config_and_flags(config, &[])
    }

    /// Like [`BrowserTest::with_config`], with extra Chromium flags for this test only
    /// (`--ignore-certificate-errors` for a server with a throwaway certificate: its pages
    /// then load from `https://`, see `TestServer::http_url`).
    pub fn with_config_and_flags(config: Config, flags: &[&str]) -> Option<BrowserTest> {
        let chromium = chromium_or_skip()?;
        let server = TestServer::with_config(config);
        let browser = Browser::launch_with(&chromium, flags);
        Some(BrowserTest {
            browser,
            server,
            data_dir: None,
        })
    }

    /// Starts a server that keeps messages in SQLite, in a fresh directory of its own under
    /// the system's temp dir (removed when the test ends), with `config`'s other settings.
    /// `name` tells the directories of concurrent tests apart.
    pub fn durable(name: &str, config: Config) -> Option<BrowserTest> {
        Self::durable_with(name, config, |_| {})
    }

    /// Like [`BrowserTest::durable`], with `prepare` run on the fresh data directory
    /// before the server starts on it (to add accounts with `chat-mio-server user add`,
    /// for instance).
    pub fn durable_with(
        name: &str,
        config: Config,
        prepare: impl FnOnce(&Path),
    ) -> Option<BrowserTest> {
        let chromium = chromium_or_skip()?;
        let data_dir = TempDir::new(name);
        prepare(data_dir.path());
        let server = TestServer::with_config(Config {
            store: StoreKind::Sqlite,
            data_dir: data_dir.path().to_owned(),
            ..config
        });
        let browser = Browser::launch(&chromium);
        Some(BrowserTest {
            browser,
            server,
            data_dir: Some(data_dir),
        })
    }

    /// Opens `path` of the server (`/`, `/?room=lobby`) in a new tab of its own browser
    /// context, as another person's browser would.
    pub fn open(&self, name: &str, path: &str) -> Page<'_> {
        self.browser.open(name, &self.server.http_url(path))
    }

    /// Opens any `url` (a proxy in front of the server, for instance) the same way.
    pub fn open_url(&self, name: &str, url: &str) -> Page<'_> {
        self.browser.open(name, url)
    }
}

/// A browser alone, for a test that starts and stops its servers itself (a server
/// restart). Declare those servers before the browser, so they are dropped after it.
pub fn browser_or_skip() -> Option<Browser> {
    browser_with_flags_or_skip(&[])
}

/// [`browser_or_skip`] with extra Chromium flags for this test only.
pub fn browser_with_flags_or_skip(flags: &[&str]) -> Option<Browser> {
    let chromium = chromium_or_skip()?;
    Some(Browser::launch_with(&chromium, flags))
}

/// A directory of its own under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "chat-browser-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
