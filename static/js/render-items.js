/**
 * The items of the message list: chat messages (own ones pending until
 * acknowledged, or failed with Retry / Discard, or marked "Not saved" when the
 * server could not store them), direct messages and notices.
 * Server text always goes in through textContent, never as markup.
 *
 * Buttons inside items carry a `data-action` ("retry", "discard", "reply");
 * their clicks are handled by the UI wiring (ui.js), not here.
 */

import { dom } from "./dom.js";
import { insert, settleInPlace } from "./render-list.js";
import { state } from "./state.js";
import { dayKey, pad2, parseTimestamp } from "./time.js";
import { asText, isId } from "./util.js";

/** A <time> showing the local hour and minute of a server timestamp (or now). */
function timeElement(timestamp) {
  const parsed = parseTimestamp(timestamp);
  const d = parsed || new Date();
  const el = document.createElement("time");
  el.className = "time";
  el.setAttribute("datetime", parsed ? timestamp : d.toISOString());
  el.textContent = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
  el.title = d.toLocaleString();
  return el;
}

function setTime(item, timestamp) {
  const old = item.querySelector("time.time");
  if (old) {
    old.parentNode.replaceChild(timeElement(timestamp), old);
  }
  const d = parseTimestamp(timestamp);
  if (d) {
    item.setAttribute("data-day", dayKey(d));
  }
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) {
    el.textContent = text;
  }
  return el;
}

/** The shell shared by chat messages and DMs: sender and time, then the text. */
function bubble(classes, sender, text, timestamp) {
  const item = element("article", classes);
  item.setAttribute("data-sender", sender);
  const d = parseTimestamp(timestamp) || new Date();
  item.setAttribute("data-day", dayKey(d));

  const meta = element("div", "meta");
  // The empty name is the server itself (a backend posting as the system, PROTOCOL.md).
  meta.appendChild(element("span", sender === "" ? "sender system" : "sender", sender === "" ? "Server" : sender));
  meta.appendChild(timeElement(timestamp));

  item.appendChild(meta);
  item.appendChild(element("p", "text", text));
  return item;
}

function isOwn(name) {
  return state.username !== "" && name === state.username;
}

function markDelivered(item, id) {
  item.setAttribute("data-id", String(id));
  item.setAttribute("data-epoch", String(state.epoch));
}

/** The item of a chat message from the server (with its id), not yet in the list. */
export function chatMessageItem(frame) {
  const sender = asText(frame.client_id);
  const item = bubble(isOwn(sender) ? "message own" : "message", sender,
    asText(frame.message), frame.timestamp);
  if (isId(frame.id)) {
    markDelivered(item, frame.id);
  }
  if (frame.deleted === true) {
    markDeleted(item);
  } else {
    addModActions(item);
  }
  return item;
}

/** Shows `item` as a message an admin deleted: its text is gone, for everyone. */
export function markDeleted(item) {
  item.classList.add("deleted");
  const text = item.querySelector(".text");
  if (text) {
    text.textContent = "This message was deleted.";
  }
  item.querySelectorAll(".mod-actions, .save-note").forEach((el) => el.remove());
}

/**
 * An admin's buttons under a message (only on pages of an admin; the server
 * checks again): Delete it, and, under someone else's, Kick the one tab that
 * sent it. Handled by ui.js through data-action.
 */
function addModActions(item) {
  if (!state.admin || !item.hasAttribute("data-id")) {
    return;
  }
  const actions = element("p", "mod-actions");
  const del = element("button", "btn-link", "Delete");
  del.type = "button";
  del.setAttribute("data-action", "delete");
  del.setAttribute("aria-label", "Delete this message for everyone");
  actions.appendChild(del);
  if (!item.classList.contains("own")) {
    const kick = element("button", "btn-link", "Kick sender");
    kick.type = "button";
    kick.setAttribute("data-action", "kick-sender");
    kick.setAttribute("aria-label", "Disconnect the tab that sent this message");
    actions.appendChild(document.createTextNode(" "));
    actions.appendChild(kick);
  }
  item.appendChild(actions);
}

/** A chat message from the server (with its id), added at the end of the list. */
export function chatMessage(frame) {
  const item = chatMessageItem(frame);
  insert(item, item.classList.contains("own"));
  return item;
}

/** The shown chat message with server id `id` (current epoch), or null. */
export function messageWithId(id) {
  const items = dom.messages.querySelectorAll(".message[data-id]:not(.direct)");
  for (let i = 0; i < items.length; i++) {
    if (items[i].getAttribute("data-id") === String(id) &&
        items[i].getAttribute("data-epoch") === String(state.epoch)) {
      return items[i];
    }
  }
  return null;
}

/**
 * Marks an own message the server delivered but could not store (ack with
 * "stored": false). It is not failed and not sent again: everyone got it,
 * but it may be missing after a server restart.
 */
export function markNotSaved(item) {
  if (item.querySelector(".save-note")) {
    return;
  }
  const why = "Delivered, but the server could not save it: it may be missing after the server restarts.";
  item.classList.add("not-saved");
  const note = element("p", "save-note");
  note.title = why;
  note.appendChild(element("span", "save-note-text", "Not saved"));
  note.appendChild(element("span", "visually-hidden", " (" + why + ")"));
  item.appendChild(note);
}

/** Replaces the delivery line's content by `text` and then `buttons`. */
function setDelivery(item, text, buttons) {
  const delivery = item.querySelector(".delivery");
  delivery.textContent = "";
  delivery.appendChild(element("span", "delivery-text", text));
  (buttons || []).forEach((b) => delivery.appendChild(b));
}

/** An own message waiting for its ack. */
export function pendingMessage(entry) {
  const item = bubble("message own pending unconfirmed", state.username, entry.text, null);
  item.setAttribute("data-client-msg-id", entry.cmid);
  item.appendChild(element("p", "delivery"));
  setDelivery(item, "sending\u2026");
  insert(item, true);
  return item;
}

/** Turns a pending message into a confirmed one with its server id. */
export function confirmMessage(item, id, timestamp) {
  item.classList.remove("pending", "failed", "unconfirmed");
  item.removeAttribute("data-client-msg-id");
  markDelivered(item, id);
  const delivery = item.querySelector(".delivery");
  if (delivery) {
    delivery.remove();
  }
  if (timestamp) {
    setTime(item, timestamp);
  }
  settleInPlace(item);
}

/** A small text button under a message; `action` says what ui.js does on a click. */
function actionButton(action, text, ariaLabel, extraClass) {
  const button = element("button", "btn-link " + extraClass, text);
  button.type = "button";
  button.setAttribute("data-action", action);
  button.setAttribute("aria-label", ariaLabel);
  return button;
}

/** Marks a pending message as refused by the server, with Retry / Discard. */
export function failMessage(entry, reason) {
  const item = entry.el;
  item.classList.remove("pending");
  item.classList.add("failed");
  setDelivery(item, "Not sent" + (reason ? ": " + reason : ""), [
    actionButton("retry", "Retry", "Retry sending this message", "delivery-btn"),
    actionButton("discard", "Discard", "Discard this message", "delivery-btn")
  ]);
}

/** Back to "sending…" (after Retry). */
export function unfailMessage(entry) {
  const item = entry.el;
  item.classList.remove("failed");
  item.classList.add("pending");
  setDelivery(item, "sending\u2026");
}

/** "direct" and "to bob" / "to you", before the time. */
function directLabels(meta, own, to) {
  const time = meta.querySelector("time");
  meta.insertBefore(element("span", "direct-label", "direct"), time);
  meta.insertBefore(element("span", "direct-peer", own ? "to " + to : "to you"), time);
}

export function directMessage(frame) {
  const from = asText(frame.from);
  const to = asText(frame.to);
  const own = isOwn(from);
  const item = bubble(own ? "message direct own" : "message direct", from,
    asText(frame.message), frame.timestamp);
  item.setAttribute("data-from", from);
  item.setAttribute("data-to", to);
  directLabels(item.querySelector(".meta"), own, to);
  if (!own && from) {
    item.appendChild(actionButton("reply", "Reply", "Reply to " + from + " directly", "reply-btn"));
  }
  insert(item, own);
  return item;
}

/** kind: "join" | "leave" | "error" | "system" | "gap" */
export function notice(kind, text, timestamp) {
  const item = element("div", "notice " + kind);
  if (kind === "error") {
    item.setAttribute("role", "alert");
  }
  const d = parseTimestamp(timestamp);
  if (d && (kind === "join" || kind === "leave")) {
    item.setAttribute("data-day", dayKey(d));
  }
  item.appendChild(element("span", "text", asText(text)));
  item.appendChild(timeElement(timestamp));
  insert(item, false);
  return item;
}

/** The item of `dom.messages` that holds `node`, or null. */
export function itemOf(node) {
  const item = node.closest(".message, .notice");
  return item && dom.messages.contains(item) ? item : null;
}
