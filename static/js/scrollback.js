/**
 * Scroll-back: older messages than the room's history frame held, asked for
 * with `history_before` when the reader reaches the top of the list (or
 * presses "Load older messages"), and put above what is shown.
 *
 * One request at a time, `before` = the oldest id shown. A `history_page`
 * with `more: false` (or empty) is the beginning: the page stops asking and
 * says so. A refused request (`too_many_fetches`, `store_unavailable`) stops
 * the loading state; the next scroll or click asks again. Message id 1 is the
 * beginning too (ids start at 1), so a short room never asks at all.
 *
 * The top row (#history-top, first in the list) shows the button, its
 * loading state, a failure note, or "Beginning of the conversation".
 */

import { OLDER_PAGE_SIZE } from "./config.js";
import { dom } from "./dom.js";
import { chatMessageItem } from "./render-items.js";
import { fitsWithoutScrolling, insertOlder, isNearTop, keepingView } from "./render-list.js";
import { announce } from "./render-status.js";
import { seenKey, state } from "./state.js";
import { isId } from "./util.js";
import { sendJson } from "./wire.js";

const LOAD_TEXT = "Load older messages";
const LOADING_TEXT = "Loading older messages\u2026";

/** A message of the current epoch is shown: it may be the new oldest one. */
export function noteShown(id) {
  const o = state.older;
  if (o.off || !isId(id)) {
    return;
  }
  if (o.oldestId === null || id < o.oldestId) {
    o.oldestId = id;
    if (id <= 1) {
      o.done = true;
    }
    renderTop();
  }
}

/**
 * The server's epoch changed while messages of the old one are shown: their
 * ids mean nothing to the new server, and the new epoch's older messages
 * would belong below them. Scroll-back stops for this view of the room.
 */
export function epochChanged() {
  const o = state.older;
  if (o.oldestId !== null) {
    o.off = true;
  }
  o.loading = 0;
  renderTop();
}

/** Asks for the page before the oldest message shown, unless one is on its way. */
export function loadOlder() {
  const o = state.older;
  if (o.off || o.done || o.loading || o.oldestId === null || !state.ready) {
    return;
  }
  if (sendJson({ type: "history_before", before: o.oldestId, limit: OLDER_PAGE_SIZE })) {
    o.loading = o.oldestId;
    o.failed = false;
    renderTop();
  }
}

/** The reader scrolled: at the top, fetch more. */
export function onScroll() {
  if (isNearTop()) {
    loadOlder();
  }
}

/** A `history_page` frame. */
export function pageArrived(f) {
  const o = state.older;
  if (!o.loading || f.before !== o.loading || f.room !== state.room) {
    return; // not the answer to the request in flight (another room, a late one)
  }
  o.loading = 0;
  const list = Array.isArray(f.messages) ? f.messages : [];
  const fresh = [];
  let lowest = o.oldestId;
  list.forEach((m) => {
    if (!m || typeof m !== "object" || !isId(m.id) || m.id >= o.oldestId) {
      return; // only older ones belong above the list
    }
    lowest = Math.min(lowest, m.id);
    if (state.seen[seenKey(m.id)]) {
      return;
    }
    state.seen[seenKey(m.id)] = true;
    fresh.push(m);
  });
  fresh.sort((a, b) => a.id - b.id);
  o.oldestId = lowest;
  if (f.more !== true || list.length === 0 || lowest <= 1) {
    o.done = true;
  }
  keepingView(() => {
    insertOlder(fresh.map(chatMessageItem));
    renderTop();
  });
  announce(fresh.length + " older message" + (fresh.length === 1 ? "" : "s") + " loaded" +
    (o.done ? "; this is the beginning of the conversation." : "."));
  if (!o.done && fitsWithoutScrolling()) {
    loadOlder(); // still no scroll bar: the reader could not scroll up for more
  }
}

/** An error frame; true when it answered the request in flight. */
export function requestRefused(code) {
  const o = state.older;
  if (!o.loading || (code !== "too_many_fetches" && code !== "store_unavailable")) {
    return false;
  }
  o.loading = 0;
  o.failed = true;
  keepingView(renderTop);
  announce("Older messages could not be loaded. Try again in a moment.");
  return true;
}

/** The connection ended: the request in flight will not be answered. */
export function connectionLost() {
  if (state.older.loading) {
    state.older.loading = 0;
    renderTop();
  }
}

/** The top row, from `state.older`. */
export function renderTop() {
  const o = state.older;
  const hasButton = !o.off && !o.done && o.oldestId !== null;
  const button = dom["load-older"];
  if (!hasButton && document.activeElement === button) {
    dom.messages.focus(); // the button goes away: keep the reader in the list
  }
  button.hidden = !hasButton;
  button.textContent = o.loading ? LOADING_TEXT : LOAD_TEXT;
  if (o.loading) {
    button.setAttribute("aria-disabled", "true");
  } else {
    button.removeAttribute("aria-disabled");
  }
  dom["history-note"].hidden = !(hasButton && o.failed && !o.loading);
  dom["history-begin"].hidden = !(o.done && !o.off);
  dom["history-top"].hidden = !hasButton && dom["history-begin"].hidden;
  dom["history-top"].classList.toggle("loading", !!o.loading);
}
