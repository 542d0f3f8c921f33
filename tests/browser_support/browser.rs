//! The browser and its tabs, over the DevTools client in `cdp.rs`.

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cdp::Cdp;
use super::chromium::Chromium;
use super::js_string;

/// Upper bound for one CDP round trip; generous for a loaded CI machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a page to reach an expected state.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The colour scheme a page is rendered in (`prefers-color-scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorScheme {
    Light,
    Dark,
}

impl ColorScheme {
    pub fn name(self) -> &'static str {
        match self {
            ColorScheme::Light => "light",
            ColorScheme::Dark => "dark",
        }
    }
}

/// A headless Chromium and the one DevTools connection that drives all of its pages.
pub struct Browser {
    // Declared before `chromium` so the socket is closed before the process is reaped.
    cdp: RefCell<Cdp>,
    chromium: Chromium,
}

impl Browser {
    /// Starts Chromium and connects to it.
    pub fn launch(executable: &Path) -> Browser {
        Self::launch_with(executable, &[])
    }

    /// Starts Chromium with `extra` flags (see [`Chromium::launch_with`]) and connects to it.
    pub fn launch_with(executable: &Path, extra: &[&str]) -> Browser {
        let chromium = Chromium::launch_with(executable, extra);
        let cdp = Cdp::connect(chromium.devtools_url())
            .unwrap_or_else(|e| panic!("connect to Chromium's DevTools: {e}"));
        Browser {
            cdp: RefCell::new(cdp),
            chromium,
        }
    }

    /// Opens `url` in a new tab of its own browser context (separate cookies and storage,
    /// like a second person's browser) and waits until it has loaded. `name` labels the
    /// page in failure messages.
    pub fn open(&self, name: &str, url: &str) -> Page<'_> {
        let context = self.browser_call("Target.createBrowserContext", json!({}));
        let target = self.browser_call(
            "Target.createTarget",
            json!({ "url": "about:blank", "browserContextId": context["browserContextId"] }),
        );
        let target_id = string_field(&target, "targetId");
        let attached = self.browser_call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        let page = Page {
            browser: self,
            name: name.to_owned(),
            target_id,
            session_id: string_field(&attached, "sessionId"),
        };
        // Report uncaught exceptions and console errors (collected by `Cdp`).
        page.call("Runtime.enable", json!({}));
        // Only one tab can be in front; without this the other one would not get focus,
        // so typing into it would go nowhere.
        page.call(
            "Emulation.setFocusEmulationEnabled",
            json!({ "enabled": true }),
        );
        page.navigate(url);
        page
    }

    fn browser_call(&self, method: &str, params: Value) -> Value {
        self.cdp
            .borrow_mut()
            .call(None, method, params, COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask Chromium to quit so it stops its helper processes itself, then give it a
        // moment. The reply may be lost as the browser goes away, so its outcome is moot;
        // `Chromium`'s own Drop kills the process if it is still there.
        let _ = self
            .cdp
            .get_mut()
            .call(None, "Browser.close", json!({}), Duration::from_secs(2));
        self.chromium.await_exit();
    }
}

/// One tab, attached through a flattened CDP session.
pub struct Page<'b> {
    browser: &'b Browser,
    name: String,
    target_id: String,
    session_id: String,
}

impl Page<'_> {
    /// Evaluates `expression` in the page and returns its value as JSON (promises are
    /// awaited). Panics if it throws.
    pub fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression)
            .unwrap_or_else(|e| panic!("{}: evaluating `{expression}`: {e}", self.name))
    }

    /// Polls `predicate` (a JS expression) every 50 ms until it is `true`, for at most
    /// `WAIT_TIMEOUT`. Exceptions count as "not yet", since a page may be mid-update. On
    /// timeout, panics with what was awaited and the state of the page.
    pub fn wait_until(&self, what: &str, predicate: &str) {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        let mut last = String::from("never evaluated");
        while Instant::now() < deadline {
            match self.try_eval(predicate) {
                Ok(Value::Bool(true)) => return,
                Ok(other) => last = format!("evaluated to {other}"),
                Err(e) => last = e,
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        panic!(
            "{name}: timed out after {WAIT_TIMEOUT:?} waiting until {what}\n\
             predicate: {predicate}\nlast result: {last}\n{state}",
            name = self.name,
            state = self.describe(),
        );
    }

    /// Replaces the content of the `selector` input as a user would: focus it, select
    /// what is there, and type the text (CDP `Input.insertText` fires real input events).
    pub fn type_into(&self, selector: &str, text: &str) {
        let focused = self.eval(&format!(
            "(() => {{ const el = document.querySelector({sel});
                if (!el || el.disabled) return false;
                el.focus(); el.select(); return document.activeElement === el; }})()",
            sel = js_string(selector),
        ));
        assert_eq!(
            focused,
            json!(true),
            "{}: cannot focus {selector}",
            self.name
        );
        self.call("Input.insertText", json!({ "text": text }));
        let value = self.eval(&format!(
            "document.querySelector({}).value",
            js_string(selector)
        ));
        assert_eq!(
            value,
            json!(text),
            "{}: {selector} did not take the text",
            self.name
        );
    }

    /// Clicks the middle of the `selector` element with real mouse events, so the click
    /// lands wherever a user's would (on whatever element is on top there).
    pub fn click(&self, selector: &str) {
        let centre = self.eval(&format!(
            "(() => {{ const el = document.querySelector({sel});
                if (!el || el.disabled) return null;
                el.scrollIntoView({{ block: 'center' }});
                const r = el.getBoundingClientRect();
                return {{ x: r.left + r.width / 2, y: r.top + r.height / 2 }}; }})()",
            sel = js_string(selector),
        ));
        assert!(
            centre.is_object(),
            "{}: {selector} is missing or disabled\n{}",
            self.name,
            self.describe()
        );
        // Hover, press, release: `buttons` is the set held down after each event.
        let steps = [
            ("mouseMoved", "none", 0, 0),
            ("mousePressed", "left", 1, 1),
            ("mouseReleased", "left", 0, 1),
        ];
        for (kind, button, buttons, clicks) in steps {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": centre["x"], "y": centre["y"],
                        "button": button, "buttons": buttons, "clickCount": clicks }),
            );
        }
    }

    /// Presses and releases Enter in the focused element.
    pub fn press_enter(&self) {
        for kind in ["keyDown", "keyUp"] {
            let mut key = json!({ "type": kind, "key": "Enter", "code": "Enter",
                                  "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13 });
            if kind == "keyDown" {
                // The text makes Chromium also fire `keypress`, as a physical key does.
                key["text"] = json!("\r");
            }
            self.call("Input.dispatchKeyEvent", key);
        }
    }

    /// Renders the page in `scheme`, as if the system's appearance setting were that
    /// (CDP `Emulation.setEmulatedMedia`).
    pub fn set_color_scheme(&self, scheme: ColorScheme) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme.name() }] }),
        );
    }

    /// Loads `url` in this tab and waits until it has loaded.
    pub fn goto(&self, url: &str) {
        self.navigate(url);
    }

    /// Loads the tab's current address again, as the reload button does.
    pub fn reload(&self) {
        let url = self.eval("window.location.href");
        let url = url
            .as_str()
            .unwrap_or_else(|| panic!("{}: no address to reload: {url}", self.name));
        self.navigate(url);
    }

    /// The cookies this tab's browser context holds for `url`, HttpOnly ones included
    /// (CDP `Network.getCookies`; each is a DevTools `Cookie` object: `name`, `value`,
    /// `httpOnly`, `sameSite`, `expires`...).
    pub fn cookies(&self, url: &str) -> Vec<Value> {
        let reply = self.call("Network.getCookies", json!({ "urls": [url] }));
        reply["cookies"].as_array().cloned().unwrap_or_default()
    }

    /// Stores a cookie for `url` in this tab's browser context, as if a response had set
    /// it (CDP `Network.setCookie`; `cookie` holds `name`, `value` and any of its other
    /// fields, such as `httpOnly`).
    pub fn set_cookie(&self, url: &str, cookie: &Value) {
        let mut params = cookie.clone();
        params["url"] = json!(url);
        self.call("Network.setCookie", params);
        // Its `success` answer is deprecated: look for the cookie instead.
        let stored = self
            .cookies(url)
            .iter()
            .any(|c| c["name"] == cookie["name"] && c["value"] == cookie["value"]);
        assert!(
            stored,
            "{}: the browser refused the cookie {cookie}",
            self.name
        );
    }

    /// The label given at `open`, for failure messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Uncaught exceptions and `console.error` calls seen on this page so far.
    pub fn errors(&self) -> Vec<String> {
        self.browser
            .cdp
            .borrow()
            .page_errors(&self.session_id)
            .to_vec()
    }

    /// Closes the tab, as a user closing it would.
    pub fn close(self) {
        self.browser
            .browser_call("Target.closeTarget", json!({ "targetId": self.target_id }));
    }

    fn navigate(&self, url: &str) {
        let navigation = self.call("Page.navigate", json!({ "url": url }));
        if let Some(error) = navigation.get("errorText") {
            panic!("{}: loading {url} failed: {error}", self.name);
        }
        self.wait_until(
            &format!("{url} has loaded"),
            "document.readyState === 'complete'",
        );
    }

    fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let reply = self
            .browser
            .cdp
            .borrow_mut()
            .call(
                Some(&self.session_id),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
                COMMAND_TIMEOUT,
            )
            .map_err(|e| e.to_string())?;
        if let Some(details) = reply.get("exceptionDetails") {
            let description = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("exception");
            return Err(format!("threw: {description}"));
        }
        // `undefined` has no JSON value; treat it as null.
        Ok(reply["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    fn call(&self, method: &str, params: Value) -> Value {
        self.browser
            .cdp
            .borrow_mut()
            .call(Some(&self.session_id), method, params, COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// The parts of the page that explain a failure: status, message list, errors.
    fn describe(&self) -> String {
        let dom = self
            .try_eval(
                "JSON.stringify({ url: location.href,
                    status: document.getElementById('status')?.outerHTML,
                    messages: document.getElementById('messages')?.innerHTML })",
            )
            .map_or_else(|e| e, |v| v.as_str().unwrap_or_default().to_owned());
        format!("page state: {dom}\npage errors: {:?}", self.errors())
    }
}

fn string_field(object: &Value, field: &str) -> String {
    object[field]
        .as_str()
        .unwrap_or_else(|| panic!("CDP reply without {field}: {object}"))
        .to_owned()
}
