/**
 * The outgoing queue: own chat messages until the server acknowledges them.
 *
 * Entries are kept in send order: { cmid, text, el, state: "queued" | "sent" | "failed" }.
 * Unacknowledged ones are re-sent with the same client_msg_id after a
 * reconnect, and the server deduplicates them. `inflight` is the FIFO of
 * commands on the current connection that expect an answer (ack / direct echo /
 * error), so an error frame can be matched to the command it answers: the
 * server answers commands in order.
 */

import { confirmMessage, pendingMessage, unfailMessage } from "./render-items.js";
import { seenKey, state } from "./state.js";
import { newClientMsgId } from "./util.js";
import { sendJson } from "./wire.js";

export const outbox = {
  entries: [],
  byId: Object.create(null),
  inflight: [],

  /** A new message: shown as "sending…" at once, sent when the connection is ready. */
  add(text) {
    const entry = { cmid: newClientMsgId(), text: text, el: null, state: "queued" };
    entry.el = pendingMessage(entry);
    outbox.entries.push(entry);
    outbox.byId[entry.cmid] = entry;
    outbox.trySend(entry);
  },

  trySend(entry) {
    if (!state.ready) {
      return;
    }
    const ok = sendJson({ type: "message", message: entry.text, client_msg_id: entry.cmid });
    if (ok) {
      entry.state = "sent";
      outbox.inflight.push({ kind: "message", cmid: entry.cmid });
    }
  },

  /** After a (re)connect: everything not refused goes (again), same client_msg_id. */
  flush() {
    outbox.entries.slice().forEach((entry) => {
      if (entry.state !== "failed") {
        outbox.trySend(entry);
      }
    });
  },

  /** The connection ended: nothing in flight will be answered. */
  connectionLost() {
    outbox.inflight = [];
    outbox.entries.forEach((entry) => {
      if (entry.state === "sent") {
        entry.state = "queued";
      }
    });
  },

  remove(entry) {
    const i = outbox.entries.indexOf(entry);
    if (i >= 0) {
      outbox.entries.splice(i, 1);
    }
    delete outbox.byId[entry.cmid];
  },

  /** Our message is known under `id`: confirm it, or drop it if already shown. */
  settle(cmid, id, timestamp) {
    const entry = outbox.byId[cmid];
    if (!entry) {
      return false;
    }
    outbox.remove(entry);
    const key = seenKey(id);
    if (state.seen[key]) {
      entry.el.remove(); // already rendered (e.g. from the history after a resume)
    } else {
      state.seen[key] = true;
      confirmMessage(entry.el, id, timestamp);
    }
    return true;
  },

  /** Drops the in-flight record a frame answers. */
  answered(match) {
    for (let i = 0; i < outbox.inflight.length; i++) {
      if (match(outbox.inflight[i])) {
        outbox.inflight.splice(i, 1);
        return;
      }
    }
  },

  /** Retry pressed on a refused message. */
  retry(entry) {
    if (outbox.byId[entry.cmid] !== entry) {
      return;
    }
    entry.state = "queued";
    unfailMessage(entry);
    outbox.trySend(entry);
  },

  /** Discard pressed on a refused message. */
  discard(entry) {
    outbox.remove(entry);
    entry.el.remove();
  },

  /** Room switch: the messages belong to the old room. */
  clear() {
    outbox.entries = [];
    outbox.byId = Object.create(null);
    outbox.inflight = [];
  }
};
