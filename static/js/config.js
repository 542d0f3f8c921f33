/** Fixed settings of the browser client. */

export const SUBPROTOCOL = "chat.v2";
export const MAX_USERNAME_CHARS = 32;
export const DEFAULT_ROOM = "general";
export const ROOM_RE = /^[a-z0-9_-]{1,32}$/;
export const STORAGE_KEY = "chat.username";
export const APP_TITLE = "Chat";
/** How close (px) to the bottom counts as "reading the newest messages". */
export const STICK_TO_BOTTOM_PX = 80;
/** How close (px) to the top of the list asks for older messages. */
export const LOAD_OLDER_PX = 80;
/** Older messages asked for per history_before (the server allows 1 to 100). */
export const OLDER_PAGE_SIZE = 50;
/** Reconnect backoff: base and cap of the jitter window. */
export const RECONNECT_BASE_MS = 1000;
export const RECONNECT_MAX_MS = 30000;
/** Send at most one "typing" command per this interval. */
export const TYPING_SEND_INTERVAL_MS = 2000;
/** Forget a typist this long after their last "typing" frame. */
export const TYPING_SHOW_MS = 3500;

export const STATUS_TEXT = {
  connecting: "Connecting\u2026",
  connected: "Connected",
  disconnected: "Disconnected",
  reconnecting: "Reconnecting\u2026"
};
