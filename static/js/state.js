/**
 * The page's state: plain data, no DOM. Every other module reads and writes it;
 * only `render*` modules turn it into output.
 */

import { DEFAULT_ROOM } from "./config.js";

export const state = {
  /** "disconnected" | "connecting" | "connected" | "reconnecting" */
  status: "disconnected",
  /** The username of the current / last connection. */
  username: "",
  /** The room this page is in (also in the page URL as ?room=). */
  room: DEFAULT_ROOM,
  /** How the server wants clients to prove who they are (GET /session):
   *  "open" (any name; also an older server without /session), "token" or
   *  "accounts" (log in with a name and password; see login.js). */
  auth: "open",
  /** --auth accounts: the name the session cookie is logged in as, or null. */
  account: null,
  /** The page's token (--auth token) or account (--auth accounts) says admin:
   *  moderation buttons are shown (the server checks for itself; this only
   *  decides what to offer). */
  admin: false,
  /** The live WebSocket, or null. */
  ws: null,
  /** True once the current connection got its welcome. */
  ready: false,
  /** True when the current connection is an automatic reconnect. */
  retrying: false,
  /** True once a connection succeeded since the user pressed Connect:
   *  from then on a lost connection is retried instead of reported. */
  sessionLive: false,

  /** Server epoch of the messages shown (null before the first welcome). */
  epoch: null,
  /** The highest message id seen in `epoch` (0: none). */
  lastId: 0,
  /** "epoch:id" of every chat message rendered in this room. */
  seen: Object.create(null),
  /** Set at a welcome with a different epoch; cleared when the gap notice is shown. */
  restartNoticeDue: false,
  /** The current connection's epoch differs from the one the page had. */
  restartEpochChanged: false,
  /** The close reason last reported while reconnecting (reported once). */
  lastCloseReason: "",
  /** True until the room's first history has been rendered (not "unread"). */
  firstLoad: true,

  /** User names in the room, per the server. */
  members: [],
  /** Typist name -> timeout handle. */
  typists: Object.create(null),
  /** When this page last sent a "typing" command (ms). */
  lastTypingSent: 0,
  /** Direct-message recipient chosen in the user list, or "". */
  dmTarget: "",

  /** Reconnect: attempt counter, timers and the moment of the next try. */
  reconnect: { attempt: 0, timer: null, ticker: null, at: 0 },
  /** Successful automatic reconnects in this page (#status[data-reconnects]). */
  reconnects: 0,

  /** Chat messages and DMs that arrived while the tab was hidden. */
  unread: 0,
  /** Whether the message list follows the newest message. */
  stickToBottom: true,

  /** Scroll-back (history_before) in this room; see scrollback.js. */
  older: freshOlder()
};

/**
 * oldestId: the lowest message id shown in this epoch (null: none yet);
 * loading: the `before` of the history_before in flight (0: none);
 * done: nothing older exists (the beginning is shown);
 * off: scroll-back stopped for this view (the server's epoch changed under it);
 * failed: the last request was refused (a scroll or click asks again).
 */
function freshOlder() {
  return { oldestId: null, loading: 0, done: false, off: false, failed: false };
}

/** The key under which message `id` of the current epoch is remembered in `state.seen`. */
export function seenKey(id) {
  return String(state.epoch) + ":" + String(id);
}

/** Forgets the resume position and everything seen (room switch, new name). */
export function resetRoomState() {
  state.epoch = null;
  state.lastId = 0;
  state.seen = Object.create(null);
  state.restartNoticeDue = false;
  state.restartEpochChanged = false;
  state.firstLoad = true;
  state.members = [];
  state.unread = 0;
  state.older = freshOlder();
}
