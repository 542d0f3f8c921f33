/**
 * The page around the conversation: connection status, which form is shown and
 * usable, the composer's label, field errors, the room name and the title.
 */

import { APP_TITLE, STATUS_TEXT } from "./config.js";
import { dom } from "./dom.js";
import { renderAccount } from "./render-account.js";
import { state } from "./state.js";

/** Everything that follows from `state.status` (and, in accounts mode, `state.account`). */
export function renderStatus() {
  const s = state.status;
  const waiting = s === "reconnecting" && state.reconnect.timer !== null;
  statusIndicator(s, waiting);
  connectionControls(s);
  renderAccount();
  sections(s);
  composerEnabled(s);
  renderComposerHint();
}

/** The dot, the text ("Reconnecting in 3 s" while a retry is scheduled) and Retry now. */
function statusIndicator(s, waiting) {
  dom.status.className = "status " + s;
  dom.status.setAttribute("data-state", s);
  dom["status-dot"].className = "status-dot " + s;
  if (waiting) {
    const secs = Math.max(1, Math.ceil((state.reconnect.at - Date.now()) / 1000));
    dom["status-text"].textContent = "Reconnecting in " + secs + " s";
  } else {
    dom["status-text"].textContent = STATUS_TEXT[s] || s;
  }
  dom["retry-btn"].hidden = !waiting;
}

function connectionControls(s) {
  const connecting = s === "connecting";
  dom["connect-btn"].disabled = connecting;
  dom.username.disabled = connecting;
  dom["connect-btn"].textContent = connecting
    ? "Connecting\u2026"
    : (state.username && s !== "connected" ? "Reconnect" : "Connect");
}

/**
 * The username form is shown whenever there is no session (never connected, or
 * the connection failed before it was usable); the conversation stays visible
 * once shown so its history remains readable. With --auth accounts and nobody
 * logged in, the login form is shown instead of both (after a logout the
 * conversation is not left on the screen for the next person).
 */
function sections(s) {
  const connected = s === "connected";
  const loggedOut = state.auth === "accounts" && state.account === null;
  dom["login-section"].hidden = !loggedOut;
  dom["username-section"].hidden = loggedOut || connected || state.sessionLive;
  if (loggedOut) {
    dom["chat-section"].hidden = true;
  } else if (connected) {
    dom["chat-section"].hidden = false;
  }
  document.body.classList.toggle("has-chat", !dom["chat-section"].hidden);
}

/**
 * Once in a session the composer stays usable (reconnecting, joining another
 * room): messages wait, marked "sending…", and go out on welcome.
 */
function composerEnabled(s) {
  const canCompose = s === "connected" || state.sessionLive;
  dom.messageInput.disabled = !canCompose;
  dom["send-btn"].disabled = !canCompose;
}

/** The composer's label and placeholder: the room, or the direct-message recipient. */
export function renderComposerHint() {
  let placeholder;
  let label;
  if (state.dmTarget) {
    label = "Direct message to " + state.dmTarget;
    placeholder = "Message " + state.dmTarget + " privately\u2026";
  } else {
    label = "Message to #" + state.room;
    placeholder = "Write a message\u2026";
  }
  if (state.status !== "connected" && !state.sessionLive) {
    placeholder = "Disconnected";
  }
  dom.messageInput.placeholder = placeholder;
  dom["messageInput-label"].textContent = label;
}

/** Says `text` to screen readers through the polite live region. */
export function announce(text) {
  // Re-setting the same text would not be announced again; clear first.
  dom.announcer.textContent = "";
  window.setTimeout(() => {
    dom.announcer.textContent = text;
  }, 50);
}

/** Shows `text` under `input` (marked invalid), or clears it when `text` is empty. */
function fieldError(el, input, text) {
  el.textContent = text || "";
  el.hidden = !text;
  if (text) {
    input.setAttribute("aria-invalid", "true");
  } else {
    input.removeAttribute("aria-invalid");
  }
}

export function usernameError(text) {
  fieldError(dom["username-error"], dom.username, text);
}

export function roomError(text) {
  fieldError(dom["room-error"], dom["room-input"], text);
}

export function renderRoom() {
  dom["room-name"].textContent = state.room;
  dom["join-room"].textContent = state.room;
  renderTitle();
  renderComposerHint();
}

export function renderTitle() {
  const base = APP_TITLE + " \u2014 " + state.room;
  document.title = state.unread > 0 ? "(" + state.unread + ") " + base : base;
}

/** Back to the username field, when the form is shown and usable. */
export function focusUsername() {
  if (!dom["username-section"].hidden && !dom.username.disabled) {
    dom.username.focus();
  }
}
