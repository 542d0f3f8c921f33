/**
 * The message list as a whole: where an item goes, following the newest one,
 * and the day separators between items of different local days.
 *
 * Order: the scroll-back row (#history-top) is always first; unconfirmed own
 * messages stay at the very end; everything else goes between, so the list is
 * in server order. Older messages from scroll-back go right below the
 * scroll-back row, with the reader's view kept where it was.
 */

import { LOAD_OLDER_PX, STICK_TO_BOTTOM_PX } from "./config.js";
import { dom } from "./dom.js";
import { state } from "./state.js";
import { dayLabel } from "./time.js";

export function isNearBottom() {
  const m = dom.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight <= STICK_TO_BOTTOM_PX;
}

export function isNearTop() {
  return dom.messages.scrollTop <= LOAD_OLDER_PX;
}

/** Whether the list has no scroll bar (all of it is visible). */
export function fitsWithoutScrolling() {
  return dom.messages.scrollHeight <= dom.messages.clientHeight;
}

export function scrollToBottom() {
  dom.messages.scrollTop = dom.messages.scrollHeight;
  state.stickToBottom = true;
}

/** The first own message not yet acknowledged; confirmed items go above it. */
function firstUnconfirmed() {
  return dom.messages.querySelector(".unconfirmed");
}

/**
 * Inserts an item in its place, fixes the day separators around it and keeps
 * the newest item visible when the reader follows it (or `forceScroll`).
 */
export function insert(node, forceScroll) {
  const stick = forceScroll || state.stickToBottom || isNearBottom();
  const before = node.classList.contains("unconfirmed") ? null : firstUnconfirmed();
  dom.messages.insertBefore(node, before);
  fixSeparators(node);
  if (stick) {
    scrollToBottom();
  }
}

/** Moves a just-confirmed message above every unconfirmed one (server order). */
export function settleInPlace(item) {
  const first = firstUnconfirmed();
  if (first && (first.compareDocumentPosition(item) & Node.DOCUMENT_POSITION_FOLLOWING)) {
    dom.messages.insertBefore(item, first);
  }
  fixSeparators(item);
}

/** Puts `nodes` (oldest first) above every item, right below the scroll-back row. */
export function insertOlder(nodes) {
  const first = dom["history-top"].nextElementSibling;
  nodes.forEach((node) => {
    dom.messages.insertBefore(node, first);
  });
  nodes.forEach(fixSeparators);
}

/**
 * Runs `change` (which adds or resizes things above the reader's view) and
 * then scrolls by what it added, so the item that was at the top of the list
 * stays where the reader saw it. Done by hand (with overflow-anchor: none in
 * the CSS) so it does not depend on the browser's own scroll anchoring.
 */
export function keepingView(change) {
  const anchor = dom["history-top"].nextElementSibling;
  const before = anchor ? anchor.getBoundingClientRect().top : 0;
  change();
  if (anchor && anchor.parentNode === dom.messages) {
    dom.messages.scrollTop += anchor.getBoundingClientRect().top - before;
  }
  state.stickToBottom = isNearBottom();
}

/** Empties the list, keeping its scroll-back row. */
export function clearMessages() {
  const top = dom["history-top"];
  while (dom.messages.lastElementChild && dom.messages.lastElementChild !== top) {
    dom.messages.lastElementChild.remove();
  }
  state.stickToBottom = true;
}

// Day separators: one between two consecutive dated items whose local days
// differ (dated = has a server timestamp: messages, join/leave).

function isDated(el) {
  return el.hasAttribute("data-day") && !el.classList.contains("day-separator");
}

function datedSibling(el, forward) {
  let cur = forward ? el.nextElementSibling : el.previousElementSibling;
  while (cur && !isDated(cur)) {
    cur = forward ? cur.nextElementSibling : cur.previousElementSibling;
  }
  return cur;
}

/** The separators between dated items a and b (either may be null: the list's ends). */
function separatorsBetween(a, b) {
  const seps = [];
  let cur = a ? a.nextElementSibling : dom.messages.firstElementChild;
  while (cur && cur !== b) {
    if (cur.classList.contains("day-separator")) {
      seps.push(cur);
    }
    cur = cur.nextElementSibling;
  }
  return seps;
}

function newSeparator() {
  const sep = document.createElement("div");
  sep.className = "day-separator";
  const label = document.createElement("span");
  label.className = "day-label";
  sep.appendChild(label);
  return sep;
}

/** Makes the stretch between dated items a and b hold exactly the separators it needs. */
function fixGap(a, b) {
  const seps = separatorsBetween(a, b);
  const need = a && b && a.getAttribute("data-day") !== b.getAttribute("data-day");
  if (need) {
    const day = b.getAttribute("data-day");
    let keep = seps.length > 0 ? seps.pop() : null;
    if (!keep || keep.nextElementSibling !== b) {
      if (keep) {
        keep.remove();
      }
      keep = newSeparator();
      dom.messages.insertBefore(keep, b);
    }
    keep.setAttribute("data-day", day);
    keep.firstChild.textContent = dayLabel(day);
  }
  seps.forEach((s) => {
    s.remove();
  });
}

export function fixSeparators(node) {
  if (!isDated(node)) {
    return;
  }
  fixGap(datedSibling(node, false), node);
  fixGap(node, datedSibling(node, true));
}

/** "Today" turns into "Yesterday" at midnight; refreshed when the tab is shown. */
export function refreshDayLabels() {
  const seps = dom.messages.querySelectorAll(".day-separator");
  for (let i = 0; i < seps.length; i++) {
    seps[i].firstChild.textContent = dayLabel(seps[i].getAttribute("data-day"));
  }
}
