/**
 * The WebSocket's lifecycle: connect, resume, reconnect with backoff.
 *
 * Connects to ws(s)://<host><page dir>ws/<name>?room=R[&since=ID&epoch=E] offering the
 * subprotocol "chat.v2" (browsers refuse the handshake when the server does not
 * answer it). After a lost connection the page resumes with since=<last id>.
 * Reconnect: exponential backoff with full jitter,
 *   delay = random(0, min(30 s, 1 s * 2^attempt)), attempt reset by a welcome.
 */

import { RECONNECT_BASE_MS, RECONNECT_MAX_MS, SUBPROTOCOL } from "./config.js";
import { dom } from "./dom.js";
import { clearTyping, frameHandler } from "./frames.js";
import { outbox } from "./outbox.js";
import { notice } from "./render-items.js";
import { announce, focusUsername, renderRoom, renderStatus, usernameError } from "./render-status.js";
import * as scrollback from "./scrollback.js";
import { state } from "./state.js";
import { sendJson } from "./wire.js";

/**
 * The signed token of a server started with --auth token, given to the page by
 * the app that embeds or links it: in the fragment (`#token=...`, which is never
 * sent to any server nor kept in logs) or the query (`?token=...`). Taken once,
 * then removed from the address bar so it does not end up in bookmarks.
 */
let token = (function takeToken() {
  const fromHash = new URLSearchParams(window.location.hash.replace(/^#/, "")).get("token");
  const query = new URLSearchParams(window.location.search);
  const found = fromHash || query.get("token");
  if (found && window.history && window.history.replaceState) {
    query.delete("token");
    const rest = query.toString();
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  }
  return found || null;
})();

/** Whether a token's payload says `role: "admin"` (read, not verified: only to show buttons). */
function tokenSaysAdmin(t) {
  try {
    const payload = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(window.atob(payload)).role === "admin";
  } catch (e) {
    return false;
  }
}
state.admin = token ? tokenSaysAdmin(token) : false;

/**
 * A fresh token from the embedding app: used by the next connection, and sent
 * at once as a `refresh` on a live one, so it is not closed when the old one
 * expires.
 */
export function setToken(fresh) {
  token = fresh;
  state.admin = tokenSaysAdmin(fresh);
  if (state.ready && state.ws) {
    sendJson({ type: "refresh", token: fresh });
  }
}

/**
 * --auth accounts: asked after every close whether the session still exists,
 * before anything else happens. A browser sees a refused upgrade (401 without
 * a live session, 403 for another user's name) only as a close without a
 * reason, and a session ended elsewhere (a logout in another tab) also closes
 * the socket: reconnecting would only be refused again. The check resolves to
 * true to go on as usual (reconnect, or report), false when it took over
 * (login.js shows the login form). Null in the other modes.
 */
let sessionCheck = null;

export function checkSessionOnClose(check) {
  sessionCheck = check;
}

/** Close codes after which reconnecting is up to the person, not automatic (PROTOCOL.md). */
const TOKEN_EXPIRED = 4001;
const KICKED = 4003;
const BANNED = 4004;

function socketUrl() {
  // Relative to the page, so a chat mounted under a prefix (/chat/ in an app of its own)
  // connects to /chat/ws/NAME; at the root this is /ws/NAME.
  const base = new URL("ws/" + encodeURIComponent(state.username), document.baseURI);
  const scheme = base.protocol === "https:" ? "wss:" : "ws:";
  let url = scheme + "//" + base.host + base.pathname + "?room=" + encodeURIComponent(state.room);
  if (token) {
    url += "&token=" + encodeURIComponent(token);
  }
  if (state.epoch !== null && state.lastId > 0) {
    url += "&since=" + encodeURIComponent(String(state.lastId)) +
      "&epoch=" + encodeURIComponent(String(state.epoch));
  }
  return url;
}

export const socket = {
  /** retrying: true for an automatic reconnect, false for a deliberate join. */
  open(retrying) {
    socket.close();
    socket.cancelReconnect();

    state.ready = false;
    state.retrying = !!retrying;
    state.status = retrying ? "reconnecting" : "connecting";
    renderStatus();

    let ws;
    try {
      ws = new WebSocket(socketUrl(), [SUBPROTOCOL]);
    } catch (e) {
      state.status = "disconnected";
      state.sessionLive = false;
      renderStatus();
      usernameError("Could not connect: " + (e && e.message ? e.message : "invalid address"));
      return;
    }
    state.ws = ws;

    // Every handler checks that it still belongs to the current socket, so
    // a late event from an old connection cannot clobber the new state.
    ws.addEventListener("open", () => {
      if (ws !== state.ws) { return; }
      if (ws.protocol !== SUBPROTOCOL) {
        // Only a server that answers "chat.v2" sends what this page needs.
        state.ws = null;
        ws.close(1000, "chat.v2 required");
        socket.onClosed({ reason: "the server does not speak " + SUBPROTOCOL });
      }
      // Usable once the welcome frame arrives.
    });

    ws.addEventListener("message", (ev) => {
      if (ws !== state.ws) { return; }
      handleFrame(ev.data);
    });

    ws.addEventListener("close", (ev) => {
      if (ws !== state.ws) { return; }
      state.ws = null;
      socket.onClosed(ev);
    });
    // "error" is always followed by "close"; nothing extra to do here.
  },

  /** The connection is usable: its welcome arrived. */
  ready() {
    const resumed = state.retrying;
    state.ready = true;
    state.sessionLive = true;
    state.lastCloseReason = "";
    state.reconnect.attempt = 0;
    state.status = "connected";
    usernameError("");
    renderStatus();
    renderRoom();
    if (resumed) {
      state.reconnects += 1;
      dom.status.setAttribute("data-reconnects", String(state.reconnects));
      notice("system", "Reconnected", null); // the log announces it
    } else {
      announce("Connected to #" + state.room);
    }
    outbox.flush();
    const active = document.activeElement;
    if (!resumed || !active || active === document.body || active === dom["retry-btn"]) {
      dom.messageInput.focus();
    }
  },

  close() {
    const ws = state.ws;
    if (!ws) { return; }
    state.ws = null;
    state.ready = false;
    outbox.connectionLost();
    scrollback.connectionLost();
    try {
      ws.close(1000, "client closing");
    } catch (e) {
      /* ignore */
    }
  },

  sendJson: sendJson,

  /** Called once per connection when it ends. */
  onClosed(ev) {
    const wasReady = state.ready;
    state.ready = false;
    outbox.connectionLost();
    scrollback.connectionLost();
    clearTyping();

    const ended = ev && {
      [TOKEN_EXPIRED]: sessionCheck ? "" : "Your session expired: reload the page to sign in again.",
      [KICKED]: "You were removed from the chat by an admin",
      [BANNED]: "You were banned from the chat by an admin"
    }[ev.code];
    if (!ended && sessionCheck) {
      if (wasReady) {
        state.status = "reconnecting";
        renderStatus();
      }
      sessionCheck().then((goOn) => {
        // Unless the check took over, or another connection started meanwhile.
        if (goOn && state.ws === null && state.reconnect.timer === null) {
          socket.afterClose(ev, wasReady);
        }
      });
      return;
    }
    if (ended) {
      // Reconnecting by itself would undo a kick, or only be refused: the person decides.
      state.sessionLive = false;
      state.status = "disconnected";
      renderStatus();
      // A kick or a ban carries the admin's words in its close reason ("kicked by an admin: ...").
      const text = ev.code !== TOKEN_EXPIRED && ev.reason
        ? ev.reason.charAt(0).toUpperCase() + ev.reason.slice(1) + "."
        : ended + (ev.code === TOKEN_EXPIRED ? "" : ".");
      notice("error", text, null);
      return;
    }
    socket.afterClose(ev, wasReady);
  },

  /** What a close leads to when it did not end the session: reconnect, or say why not. */
  afterClose(ev, wasReady) {
    if (state.sessionLive) {
      // Had a working connection in this session: keep trying, forever,
      // with backoff; the page resumes where it left off.
      if (wasReady) {
        notice("system", "Connection lost", null);
      } else if (ev && ev.reason && ev.reason !== state.lastCloseReason) {
        // Refused before it was usable (e.g. "too many rooms"): say why, once.
        state.lastCloseReason = ev.reason;
        notice("error", "The server refused the connection: " + ev.reason, null);
      }
      socket.scheduleReconnect();
      return;
    }

    state.status = "disconnected";
    renderStatus();
    const reason = ev && ev.reason ? ": " + ev.reason : ".";
    usernameError("Could not connect to the chat server" + reason);
    focusUsername();
  },

  scheduleReconnect() {
    socket.cancelReconnect();
    const r = state.reconnect;
    const windowMs = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * Math.pow(2, r.attempt));
    const delay = Math.floor(Math.random() * windowMs);
    r.attempt += 1;
    r.at = Date.now() + delay;
    r.timer = window.setTimeout(socket.reconnectNow, delay);
    r.ticker = window.setInterval(renderStatus, 250);
    state.status = "reconnecting";
    renderStatus();
  },

  cancelReconnect() {
    const r = state.reconnect;
    if (r.timer !== null) {
      window.clearTimeout(r.timer);
      r.timer = null;
    }
    if (r.ticker !== null) {
      window.clearInterval(r.ticker);
      r.ticker = null;
    }
  },

  reconnectNow() {
    socket.cancelReconnect();
    if (state.ws || !state.sessionLive) {
      return;
    }
    socket.open(true);
  }
};

/** Handles one text frame of the current connection (exported for debugging as Chat.handleFrame). */
export const handleFrame = frameHandler({ ready: socket.ready });
