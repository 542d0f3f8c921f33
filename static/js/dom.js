/** The page's elements, looked up once by id (the tutorial's ids are kept). */

const IDS = [
  "status", "status-dot", "status-text", "retry-btn", "announcer",
  "room-name", "join-room", "users-toggle", "users-toggle-count",
  "account", "account-name", "logout-btn",
  "login-section", "login-form", "login-name", "login-password", "login-btn", "login-error",
  "username-section", "username-form", "username-hint", "username", "connect-btn", "username-error",
  "chat-section", "messages", "history-top", "load-older", "history-begin", "history-note",
  "typing", "composer", "messageInput", "messageInput-label",
  "send-btn", "dm-bar", "dm-target", "dm-cancel",
  "sidebar", "room-form", "room-input", "room-btn", "room-error", "users", "user-count"
];

/** id -> element; filled by `lookupDom()` once the document is parsed. */
export const dom = {};

export function lookupDom() {
  IDS.forEach((id) => {
    dom[id] = document.getElementById(id);
  });
}
