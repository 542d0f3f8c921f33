/**
 * UI wiring: what the user's clicks and keys do. The only module that adds
 * event listeners to the page (besides the WebSocket's own in socket.js, and
 * login.js's for the login form and Log out, which exist in accounts mode).
 */

import { STORAGE_KEY, TYPING_SEND_INTERVAL_MS } from "./config.js";
import { setDmTarget as applyDmTarget } from "./dm.js";
import { dom, lookupDom } from "./dom.js";
import { clearTyping } from "./frames.js";
import { normalizeRoom, roomFromUrl, setUrlRoom, validateUsername } from "./names.js";
import { outbox } from "./outbox.js";
import { itemOf, notice } from "./render-items.js";
import { clearMessages, isNearBottom, refreshDayLabels } from "./render-list.js";
import { renderTyping, renderUsers } from "./render-people.js";
import {
  announce, renderRoom, renderStatus, renderTitle, roomError, usernameError
} from "./render-status.js";
import * as scrollback from "./scrollback.js";
import { socket } from "./socket.js";
import { resetRoomState, state } from "./state.js";
import { isPlainEnter, storageGet, storageSet } from "./util.js";

export const ui = {
  onConnectSubmit(ev) {
    ev.preventDefault();
    if (state.status === "connecting") {
      return;
    }
    if (state.auth === "accounts") {
      // The name is the session's (the field is read-only): this is a retry.
      if (state.account !== null) {
        ui.connect(state.account);
      }
      return;
    }
    const name = dom.username.value.trim();
    const error = validateUsername(name);
    usernameError(error);
    if (error) {
      dom.username.focus();
      return;
    }
    dom.username.value = name;
    storageSet(STORAGE_KEY, name);
    ui.connect(name);
  },

  /** Joins the room as `name` (already valid), deliberately: not a reconnect. */
  connect(name) {
    usernameError("");
    if (name !== state.username) {
      // Another identity: its view of the room starts afresh.
      ui.resetRoomView();
    }
    state.username = name;
    state.sessionLive = false;
    state.reconnect.attempt = 0;
    socket.open();
  },

  /** Forgets everything shown for the current room (room switch, new name). */
  resetRoomView() {
    resetRoomState();
    outbox.clear();
    clearTyping();
    ui.setDmTarget("", true);
    clearMessages();
    scrollback.renderTop();
    renderUsers();
    renderTitle();
  },

  /** Joins `room` (already normalized). push: add a browser history entry. */
  switchRoom(room, push) {
    if (room === state.room) {
      setUrlRoom(room, false);
      return;
    }
    const inSession = state.sessionLive || state.ws !== null;
    socket.close();
    socket.cancelReconnect();
    state.room = room;
    setUrlRoom(room, push);
    ui.resetRoomView();
    renderRoom();
    if (inSession && state.username) {
      announce("Joining #" + room);
      socket.open();
    } else {
      renderStatus();
    }
  },

  onRoomSubmit(ev) {
    ev.preventDefault();
    const raw = dom["room-input"].value;
    const room = normalizeRoom(raw);
    if (!room) {
      roomError(raw.trim() === ""
        ? "Please enter a room name."
        : "Room names are 1 to 32 letters, digits, - or _.");
      dom["room-input"].focus();
      return;
    }
    roomError("");
    dom["room-input"].value = "";
    ui.closeSidebar(false);
    ui.switchRoom(room, true);
    dom.messageInput.focus();
  },

  onPopState() {
    ui.switchRoom(roomFromUrl().room, false);
  },

  /** name "" leaves direct-message mode; silent: no focus or panel change. */
  setDmTarget(name, silent) {
    if (!applyDmTarget(name) || silent) {
      return;
    }
    if (state.dmTarget) {
      ui.closeSidebar(false);
    }
    if (!dom.messageInput.disabled) {
      dom.messageInput.focus();
    }
  },

  onComposerSubmit(ev) {
    ev.preventDefault();
    const text = dom.messageInput.value;
    if (text.trim() === "") {
      dom.messageInput.focus();
      return;
    }
    if (state.dmTarget) {
      if (!state.ready) {
        notice("system", "Direct messages need a live connection; yours is still in the message box.", null);
        dom.messageInput.focus();
        return;
      }
      if (socket.sendJson({ type: "direct", to: state.dmTarget, message: text })) {
        outbox.inflight.push({ kind: "direct", to: state.dmTarget, text: text });
        dom.messageInput.value = "";
      }
    } else {
      outbox.add(text);
      dom.messageInput.value = "";
    }
    dom.messageInput.focus();
  },

  onComposerInput() {
    if (!state.ready || state.dmTarget || dom.messageInput.value.trim() === "") {
      return;
    }
    const now = Date.now();
    if (now - state.lastTypingSent >= TYPING_SEND_INTERVAL_MS) {
      if (socket.sendJson({ type: "typing" })) {
        state.lastTypingSent = now;
      }
    }
  },

  /** Retry / Discard under a refused message, Reply under a direct message. */
  onMessageAction(ev) {
    const button = ev.target instanceof Element ? ev.target.closest("button[data-action]") : null;
    const item = button ? itemOf(button) : null;
    if (!item) {
      return;
    }
    const action = button.getAttribute("data-action");
    if (action === "delete") {
      const id = Number(item.getAttribute("data-id"));
      if (Number.isSafeInteger(id) && window.confirm("Delete this message for everyone?")) {
        socket.sendJson({ type: "delete", id: id });
      }
      return;
    }
    if (action === "kick-sender") {
      const id = Number(item.getAttribute("data-id"));
      if (Number.isSafeInteger(id) && window.confirm("Disconnect the tab that sent this message?")) {
        socket.sendJson({ type: "kick", id: id, reason: "by an admin, for a message" });
      }
      return;
    }
    if (action === "reply") {
      ui.setDmTarget(item.getAttribute("data-from") || "");
      return;
    }
    const entry = outbox.byId[item.getAttribute("data-client-msg-id") || ""];
    if (!entry || entry.el !== item) {
      return;
    }
    if (action === "retry") {
      outbox.retry(entry);
    } else if (action === "discard") {
      outbox.discard(entry);
    }
    dom.messageInput.focus();
  },

  /** A click on someone in the user list starts a direct message to them. */
  onUserPick(ev) {
    const mod = ev.target instanceof Element ? ev.target.closest("button[data-mod]") : null;
    const target = mod ? mod.closest("li[data-user]") : null;
    if (mod && target && dom.users.contains(target)) {
      const user = target.getAttribute("data-user");
      const action = mod.getAttribute("data-mod");
      const reason = window.prompt((action === "ban" ? "Ban " : "Kick ") + user + ": reason (shown to them)", "");
      if (reason !== null) {
        const command = { type: action, user: user, reason: reason };
        if (action === "ban") {
          command.minutes = 60;
        }
        socket.sendJson(command);
      }
      return;
    }
    const button = ev.target instanceof Element ? ev.target.closest("button.user-btn") : null;
    const li = button ? button.closest("li[data-user]") : null;
    if (li && dom.users.contains(li)) {
      ui.setDmTarget(li.getAttribute("data-user"));
    }
  },

  toggleSidebar() {
    const open = !dom.sidebar.classList.contains("open");
    dom.sidebar.classList.toggle("open", open);
    dom["users-toggle"].setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      const first = dom.sidebar.querySelector("button, input");
      if (first) {
        first.focus();
      }
    }
  },

  closeSidebar(returnFocus) {
    if (!dom.sidebar.classList.contains("open")) {
      return;
    }
    dom.sidebar.classList.remove("open");
    dom["users-toggle"].setAttribute("aria-expanded", "false");
    if (returnFocus) {
      dom["users-toggle"].focus();
    }
  },

  onVisibilityChange() {
    if (!document.hidden) {
      state.unread = 0;
      renderTitle();
      refreshDayLabels();
      // Back to the tab while a long reconnect wait is running: try now.
      if (state.reconnect.timer !== null && state.reconnect.at - Date.now() > 2000) {
        socket.reconnectNow();
      }
    }
  },

  init() {
    lookupDom();
    restoreRoomAndName();
    wireForms();
    wireKeys();
    wireLists();
    wirePage();
    followNewest();
    wireScrollback();

    renderStatus();
    scrollback.renderTop();
    renderUsers();
    renderTyping();
    // No auto-connect: joining announces you to the room, so it takes a
    // deliberate Enter / click; the remembered name is prefilled.
    dom.username.focus();
    if (dom.username.value) {
      dom.username.select();
    }
  }
};

/** The room from the URL, the name remembered from last time. */
function restoreRoomAndName() {
  const fromUrl = roomFromUrl();
  state.room = fromUrl.room;
  if (!fromUrl.valid) {
    // An unusable ?room= in a link: say where we actually are.
    setUrlRoom(state.room, false);
  }
  renderRoom();
  const saved = storageGet(STORAGE_KEY);
  if (saved) {
    dom.username.value = saved;
  }
}

function clearErrorOnInput(input, errorEl, clear) {
  input.addEventListener("input", () => {
    if (!errorEl.hidden) {
      clear("");
    }
  });
}

function wireForms() {
  dom["username-form"].addEventListener("submit", ui.onConnectSubmit);
  dom.composer.addEventListener("submit", ui.onComposerSubmit);
  dom["room-form"].addEventListener("submit", ui.onRoomSubmit);
  dom.messageInput.addEventListener("input", ui.onComposerInput);
  clearErrorOnInput(dom.username, dom["username-error"], usernameError);
  clearErrorOnInput(dom["room-input"], dom["room-error"], roomError);
  dom["dm-cancel"].addEventListener("click", () => {
    ui.setDmTarget("");
  });
  dom["retry-btn"].addEventListener("click", () => {
    socket.reconnectNow();
  });
}

/**
 * Enter submits in the fields. Handled explicitly (and the implicit form
 * submission suppressed) so it also works for synthetic events.
 */
function wireKeys() {
  dom.username.addEventListener("keydown", (ev) => {
    if (isPlainEnter(ev)) {
      ev.preventDefault();
      ui.onConnectSubmit(ev);
    }
  });
  dom.messageInput.addEventListener("keydown", (ev) => {
    if (isPlainEnter(ev)) {
      ev.preventDefault();
      ui.onComposerSubmit(ev);
    } else if (ev.key === "Escape" && state.dmTarget) {
      ev.preventDefault();
      ui.setDmTarget("");
    }
  });
  dom["room-input"].addEventListener("keydown", (ev) => {
    if (isPlainEnter(ev)) {
      ev.preventDefault();
      ui.onRoomSubmit(ev);
    }
  });
}

/** Buttons inside the message and user lists, by delegation (items come and go). */
function wireLists() {
  dom.messages.addEventListener("click", ui.onMessageAction);
  dom.users.addEventListener("click", ui.onUserPick);
  dom["users-toggle"].addEventListener("click", ui.toggleSidebar);
  dom.sidebar.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      ui.closeSidebar(true);
    }
  });
  // The narrow-screen panel closes when you tap elsewhere.
  document.addEventListener("click", (ev) => {
    const t = ev.target;
    if (dom.sidebar.classList.contains("open") && t instanceof Node &&
        !dom.sidebar.contains(t) && !dom["users-toggle"].contains(t)) {
      ui.closeSidebar(false);
    }
  });
}

function wirePage() {
  window.addEventListener("popstate", ui.onPopState);
  document.addEventListener("visibilitychange", ui.onVisibilityChange);
  // Back online while waiting to retry: retry now.
  window.addEventListener("online", () => {
    if (state.reconnect.timer !== null) {
      socket.reconnectNow();
    }
  });
}

/** Older messages: at the top of the list, or on "Load older messages" (keyboard, no wheel). */
function wireScrollback() {
  dom.messages.addEventListener("scroll", scrollback.onScroll, { passive: true });
  dom["load-older"].addEventListener("click", () => {
    scrollback.loadOlder();
  });
}

/**
 * Follow the newest message unless the user scrolled up to read; keep
 * following when the list is resized (e.g. a phone keyboard opening).
 */
function followNewest() {
  dom.messages.addEventListener("scroll", () => {
    state.stickToBottom = isNearBottom();
  }, { passive: true });
  const keepBottom = () => {
    if (state.stickToBottom) {
      dom.messages.scrollTop = dom.messages.scrollHeight;
    }
  };
  if (typeof window.ResizeObserver === "function") {
    new window.ResizeObserver(keepBottom).observe(dom.messages);
  } else {
    window.addEventListener("resize", keepBottom);
  }
}
