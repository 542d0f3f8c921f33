/*
 * Browser client for the chat server, speaking the v2 protocol (PROTOCOL.md).
 * The entry point: loaded by index.html as <script type="module">, it starts
 * the page and exposes `window.Chat` for debugging from the console (and
 * `Chat.setToken(token)` for an app that hands the page a fresh signed token).
 *
 * Wire protocol (v2):
 *   - connect to ws(s)://<host><page dir>ws/<encodeURIComponent(username)>?room=R[&since=ID&epoch=E]
 *     offering the subprotocol "chat.v2"
 *   - server -> client: JSON frames; welcome, gap, history, history_page, message,
 *     ack, connection, disconnection, typing, direct, error (unknown types are ignored)
 *   - client -> server: JSON commands
 *     {type: "message" | "typing" | "direct" | "history_before", ...}
 *
 * Modules (static/js/, plain ES modules, no build step), one concern each:
 *   config.js   fixed settings            state.js    the page's state (plain data)
 *   dom.js      element lookups by id     names.js    user/room names, room in the URL
 *   time.js     timestamps and day labels util.js     small helpers (storage, ids)
 *   session.js  GET /session, POST /login and /logout (--auth accounts), as plain answers
 *   render-account.js  who is logged in, the login form's error and busy state
 *   render-status.js  status, which form is shown, composer label, title
 *   render-list.js    the message list: insertion order, scrolling, day separators
 *   render-items.js   messages, pending/failed/not-saved own messages, direct messages, notices
 *   render-people.js  the user list and the typing line
 *   wire.js     send a command            outbox.js   own messages until acknowledged
 *   scrollback.js  older messages (history_before) above the list, at its top
 *   dm.js       direct-message mode       frames.js   one handler per server frame
 *   socket.js   connect, resume, reconnect with backoff
 *   ui.js       event wiring (clicks, keys, page events)
 *   login.js    --auth accounts: the login form, Log out, a session that ended
 * Imports only go down this list's dependency order: there are no cycles.
 */

import { login } from "./js/login.js";
import { normalizeRoom, validateUsername } from "./js/names.js";
import { outbox } from "./js/outbox.js";
import * as items from "./js/render-items.js";
import * as list from "./js/render-list.js";
import * as people from "./js/render-people.js";
import * as status from "./js/render-status.js";
import { handleFrame, setToken, socket } from "./js/socket.js";
import { state } from "./js/state.js";
import { ui } from "./js/ui.js";

window.Chat = {
  state: state,
  render: Object.assign({}, status, list, items, people),
  outbox: outbox,
  socket: socket,
  ui: ui,
  login: login,
  handleFrame: handleFrame,
  setToken: setToken,
  validateUsername: validateUsername,
  normalizeRoom: normalizeRoom
};

// Module scripts run after the document is parsed (they are deferred).
ui.init();
// Then the server's auth mode: with --auth accounts, the login form or the session's user.
login.start();
