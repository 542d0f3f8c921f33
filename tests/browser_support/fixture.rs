//! The one way a browser test starts its world: a chat server and a browser whose pages
//! load from it. The test binary declares `mod common;` next to `mod browser_support;`.

use crate::common::TestServer;

use super::{chromium_or_skip, Browser, Page};

/// A chat server and a headless Chromium. Fields drop in declaration order: the browser
/// (and with it every page's WebSocket) goes away before the server, so the server never
/// waits on a client that is being killed.
pub struct BrowserTest {
    pub browser: Browser,
    pub server: TestServer,
}

impl BrowserTest {
    /// Starts a server with the default configuration and a browser; `None` when the test
    /// is skipped because Chromium is missing (see `chromium_or_skip`).
    pub fn start() -> Option<BrowserTest> {
        let chromium = chromium_or_skip()?;
        let server = TestServer::start();
        let browser = Browser::launch(&chromium);
        Some(BrowserTest { browser, server })
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
    let chromium = chromium_or_skip()?;
    Some(Browser::launch(&chromium))
}
