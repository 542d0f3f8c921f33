/**
 * What each server frame does (one handler per frame type). Every chat message
 * carries an (epoch, id) pair: the page never renders one twice and remembers
 * the highest id for resuming. Unknown frame types are ignored on purpose
 * (forward compatibility).
 */

import { TYPING_SHOW_MS } from "./config.js";
import { setDmTarget } from "./dm.js";
import { normalizeRoom, setUrlRoom } from "./names.js";
import { outbox } from "./outbox.js";
import {
  chatMessage, directMessage, failMessage, markDeleted, markNotSaved, messageWithId, notice
} from "./render-items.js";
import { fitsWithoutScrolling, scrollToBottom } from "./render-list.js";
import { renderTyping, renderUsers } from "./render-people.js";
import { renderRoom, renderTitle } from "./render-status.js";
import * as scrollback from "./scrollback.js";
import { seenKey, state } from "./state.js";
import { asText, isId } from "./util.js";

function countUnread(own) {
  if (!own && document.hidden && !state.firstLoad) {
    state.unread += 1;
    renderTitle();
  }
}

export function stopTyping(name) {
  if (Object.prototype.hasOwnProperty.call(state.typists, name)) {
    window.clearTimeout(state.typists[name]);
    delete state.typists[name];
    renderTyping();
  }
}

export function clearTyping() {
  Object.keys(state.typists).forEach((name) => {
    window.clearTimeout(state.typists[name]);
  });
  state.typists = Object.create(null);
  renderTyping();
}

function showGapNotice(serverText, timestamp) {
  state.restartNoticeDue = false;
  const text = state.restartEpochChanged
    ? "Reconnected to a restarted server: earlier history may be missing."
    : "Earlier messages may be missing" + (serverText ? " (" + serverText + ")." : ".");
  state.restartEpochChanged = false;
  notice("gap", text, timestamp);
}

/** A chat message frame, live or from a history. */
function acceptMessage(f) {
  if (isId(f.id)) {
    if (f.id > state.lastId) {
      state.lastId = f.id;
    }
    scrollback.noteShown(f.id);
    if (state.seen[seenKey(f.id)]) {
      return; // shown already: never render an id twice
    }
    if (typeof f.client_msg_id === "string" && outbox.settle(f.client_msg_id, f.id, f.timestamp)) {
      stopTyping(asText(f.client_id));
      return;
    }
    state.seen[seenKey(f.id)] = true;
  }
  stopTyping(asText(f.client_id));
  chatMessage(f);
  countUnread(asText(f.client_id) === state.username);
}

function errorHint(code) {
  switch (code) {
    case "rate_limited": return "too many messages, wait a moment";
    case "too_long": return "too long";
    default: return "";
  }
}

/** The welcome's epoch: a different one means a restarted server whose ids start again. */
function adoptEpoch(epoch) {
  if (!isId(epoch)) {
    return;
  }
  if (state.epoch !== null && epoch !== state.epoch) {
    state.restartNoticeDue = true;
    state.restartEpochChanged = true;
    state.lastId = 0;
    scrollback.epochChanged();
  }
  state.epoch = epoch;
}

/** `hooks.ready()` is called when a welcome made the connection usable. */
function handlersFor(hooks) {
  return {
    welcome(f) {
      adoptEpoch(f.epoch);
      if (typeof f.client_id === "string" && f.client_id) {
        state.username = f.client_id;
      }
      if (typeof f.room === "string" && normalizeRoom(f.room) && f.room !== state.room) {
        state.room = normalizeRoom(f.room);
        setUrlRoom(state.room, false);
        renderRoom();
      }
      state.members = Array.isArray(f.members) ? f.members.filter((m) => typeof m === "string") : [];
      renderUsers();
      hooks.ready();
    },

    gap(f) {
      if (isId(f.epoch) && state.epoch !== null && f.epoch !== state.epoch) {
        state.epoch = f.epoch;
        state.lastId = 0;
        state.restartEpochChanged = true;
        scrollback.epochChanged();
      }
      showGapNotice(asText(f.message), f.timestamp);
    },

    history(f) {
      const list = Array.isArray(f.messages) ? f.messages : [];
      list.forEach((m) => {
        if (m && typeof m === "object") {
          acceptMessage(m);
        }
      });
      if (state.firstLoad) {
        state.firstLoad = false;
        scrollToBottom();
        if (fitsWithoutScrolling()) {
          scrollback.loadOlder(); // no scroll bar to reach the top with
        }
      }
    },

    history_page(f) {
      scrollback.pageArrived(f);
    },

    /** An admin deleted a message: its text goes, for everyone, wherever it is shown. */
    deleted(f) {
      const item = isId(f.id) && f.room === state.room ? messageWithId(f.id) : null;
      if (item) {
        markDeleted(item);
      }
    },

    message(f) {
      acceptMessage(f);
    },

    ack(f) {
      const cmid = asText(f.client_msg_id);
      outbox.answered((c) => c.kind === "message" && c.cmid === cmid);
      if (isId(f.id)) {
        outbox.settle(cmid, f.id, null);
        scrollback.noteShown(f.id);
        // Delivered but not written to disk: say so, but it is not failed
        // and is not sent again (a retry would get the same answer).
        const item = f.stored === false ? messageWithId(f.id) : null;
        if (item && item.classList.contains("own")) {
          markNotSaved(item);
        }
      }
    },

    connection(f) {
      const name = asText(f.client_id);
      if (name && state.members.indexOf(name) < 0) {
        state.members.push(name);
        renderUsers();
      }
      notice("join", f.message || name + " joined the chat", f.timestamp);
    },

    disconnection(f) {
      const name = asText(f.client_id);
      const i = state.members.indexOf(name);
      if (i >= 0) {
        state.members.splice(i, 1);
        renderUsers();
      }
      stopTyping(name);
      notice("leave", f.message || name + " left the chat", f.timestamp);
      if (state.dmTarget && state.dmTarget === name) {
        setDmTarget(""); // the leave notice says why; the draft stays
      }
    },

    typing(f) {
      const name = asText(f.client_id);
      if (!name || name === state.username) {
        return;
      }
      if (Object.prototype.hasOwnProperty.call(state.typists, name)) {
        window.clearTimeout(state.typists[name]);
      }
      state.typists[name] = window.setTimeout(() => {
        stopTyping(name);
      }, TYPING_SHOW_MS);
      renderTyping();
    },

    direct(f) {
      const from = asText(f.from);
      const own = from === state.username;
      if (own) {
        const to = asText(f.to);
        const text = asText(f.message);
        outbox.answered((c) => c.kind === "direct" && c.to === to && c.text === text);
      } else {
        stopTyping(from);
      }
      directMessage(f);
      countUnread(own);
    },

    error(f) {
      if (scrollback.requestRefused(asText(f.code))) {
        return; // the scroll-back row says so; the next scroll asks again
      }
      // Commands are answered in order: an error answers the oldest command
      // still waiting for its ack / echo.
      const cmd = outbox.inflight.shift();
      if (cmd && cmd.kind === "message" && outbox.byId[cmd.cmid]) {
        const entry = outbox.byId[cmd.cmid];
        entry.state = "failed";
        failMessage(entry, errorHint(f.code));
      }
      notice("error", f.message || "Error", f.timestamp);
    }
  };
}

/** Returns `handleFrame(data)` for one text frame from the server. */
export function frameHandler(hooks) {
  const handlers = handlersFor(hooks);
  return function handleFrame(data) {
    if (typeof data !== "string") {
      return; // binary frames are not part of the protocol
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!frame || typeof frame !== "object") {
      return;
    }
    const type = typeof frame.type === "string" ? frame.type : "";
    if (state.restartNoticeDue && type !== "welcome" && type !== "gap") {
      // The server restarted but sent no gap frame: say so anyway.
      showGapNotice("", null);
    }
    if (Object.prototype.hasOwnProperty.call(handlers, type)) {
      try {
        handlers[type](frame);
      } catch (e) {
        if (window.console) {
          window.console.error("chat: failed to handle frame", e);
        }
      }
    }
  };
}
