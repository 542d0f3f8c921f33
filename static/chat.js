/*
 * Browser client for the chat server, speaking the v2 protocol (PROTOCOL.md).
 *
 * Wire protocol (v2):
 *   - connect to ws(s)://<host>/ws/<encodeURIComponent(username)>?room=R[&since=ID&epoch=E]
 *     offering the subprotocol "chat.v2"
 *   - server -> client: JSON frames; welcome, gap, history, message, ack,
 *     connection, disconnection, typing, direct, error (unknown types are ignored)
 *   - client -> server: JSON commands {type: "message" | "typing" | "direct", ...}
 *   The page needs a v2 server: browsers refuse the handshake when the server
 *   does not answer the offered subprotocol.
 *
 * Delivery: every chat message carries a (epoch, id) pair. The page remembers
 * the pairs it rendered (never renders one twice), resumes after a lost
 * connection with since=<last id>&epoch=<epoch>, and keeps its own messages
 * "pending" until the server acknowledges their client_msg_id; unacknowledged
 * ones are re-sent with the same client_msg_id after a reconnect, and the
 * server deduplicates them.
 *
 * Reconnect: exponential backoff with full jitter,
 *   delay = random(0, min(30 s, 1 s * 2^attempt)), attempt reset by a welcome.
 *
 * Structure: `state` (plain data), `dom` (element lookups), `render` (pure DOM
 * output, server text always via textContent), `handlers` (one per frame
 * type), `outbox` (own messages until acknowledged), `socket` (WebSocket
 * lifecycle and reconnect), `ui` (event wiring). Everything hangs off the
 * single global namespace `window.Chat`.
 */
(function () {
  "use strict";

  var SUBPROTOCOL = "chat.v2";
  var MAX_USERNAME_CHARS = 32;
  var DEFAULT_ROOM = "general";
  var ROOM_RE = /^[a-z0-9_-]{1,32}$/;
  var STORAGE_KEY = "chat.username";
  var APP_TITLE = "Chat";
  /** How close (px) to the bottom counts as "reading the newest messages". */
  var STICK_TO_BOTTOM_PX = 80;
  /** Reconnect backoff: base and cap of the jitter window. */
  var RECONNECT_BASE_MS = 1000;
  var RECONNECT_MAX_MS = 30000;
  /** Send at most one "typing" command per this interval. */
  var TYPING_SEND_INTERVAL_MS = 2000;
  /** Forget a typist this long after their last "typing" frame. */
  var TYPING_SHOW_MS = 3500;

  var STATUS_TEXT = {
    connecting: "Connecting\u2026",
    connected: "Connected",
    disconnected: "Disconnected",
    reconnecting: "Reconnecting\u2026"
  };

  // ---------------------------------------------------------------- state

  var state = {
    /** "disconnected" | "connecting" | "connected" | "reconnecting" */
    status: "disconnected",
    /** The username of the current / last connection. */
    username: "",
    /** The room this page is in (also in the page URL as ?room=). */
    room: DEFAULT_ROOM,
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
    stickToBottom: true
  };

  // ------------------------------------------------------------------ dom

  var dom = {};

  function lookupDom() {
    var ids = [
      "status", "status-dot", "status-text", "retry-btn", "announcer",
      "room-name", "join-room", "users-toggle", "users-toggle-count",
      "username-section", "username-form", "username", "connect-btn", "username-error",
      "chat-section", "messages", "typing", "composer", "messageInput", "messageInput-label",
      "send-btn", "dm-bar", "dm-target", "dm-cancel",
      "sidebar", "room-form", "room-input", "room-btn", "room-error", "users", "user-count"
    ];
    ids.forEach(function (id) {
      dom[id] = document.getElementById(id);
    });
  }

  // -------------------------------------------------------------- helpers

  function storageGet(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (e) {
      return null;
    }
  }

  function storageSet(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (e) {
      /* storage may be unavailable (private mode, quotas); not fatal */
    }
  }

  function charCount(s) {
    // Count code points, not UTF-16 units, so an emoji counts as one.
    return Array.from(s).length;
  }

  /** Returns an error string, or "" when the name is acceptable. */
  function validateUsername(name) {
    if (name.length === 0) {
      return "Please enter a username.";
    }
    if (charCount(name) > MAX_USERNAME_CHARS) {
      return "Usernames can be at most " + MAX_USERNAME_CHARS + " characters.";
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) {
      return "Usernames cannot contain control characters.";
    }
    return "";
  }

  /** "#Random " -> "random"; returns "" when the result is not a valid room name. */
  function normalizeRoom(raw) {
    var room = String(raw === undefined || raw === null ? "" : raw).trim().replace(/^#/, "").toLowerCase();
    return ROOM_RE.test(room) ? room : "";
  }

  function roomFromUrl() {
    var raw = null;
    try {
      raw = new URLSearchParams(window.location.search).get("room");
    } catch (e) {
      raw = null;
    }
    if (raw === null || raw.trim() === "") {
      return { room: DEFAULT_ROOM, valid: true, given: false };
    }
    var room = normalizeRoom(raw);
    return room ? { room: room, valid: true, given: true } : { room: DEFAULT_ROOM, valid: false, given: true };
  }

  /** Puts `room` into the page URL (?room=), keeping any other parameters. */
  function setUrlRoom(room, push) {
    if (!window.history || typeof window.history.replaceState !== "function") {
      return;
    }
    try {
      var url = new URL(window.location.href);
      if (url.searchParams.get("room") === room) {
        return;
      }
      url.searchParams.set("room", room);
      var st = { room: room };
      if (push) {
        window.history.pushState(st, "", url.toString());
      } else {
        window.history.replaceState(st, "", url.toString());
      }
    } catch (e) {
      /* e.g. a file: URL; the room still works for this page */
    }
  }

  function pad2(n) {
    return (n < 10 ? "0" : "") + n;
  }

  /** Parses a server timestamp; null when missing/invalid. */
  function parseTimestamp(ts) {
    if (typeof ts !== "string" || !ts) {
      return null;
    }
    var d = new Date(ts);
    return isNaN(d.getTime()) ? null : d;
  }

  /** Local calendar day of `d`, as "YYYY-MM-DD". */
  function dayKey(d) {
    return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate());
  }

  function dayLabel(key) {
    var parts = key.split("-");
    var d = new Date(Number(parts[0]), Number(parts[1]) - 1, Number(parts[2]));
    var today = new Date();
    var yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (key === dayKey(today)) {
      return "Today";
    }
    if (key === dayKey(yesterday)) {
      return "Yesterday";
    }
    var opts = { weekday: "long", month: "long", day: "numeric" };
    if (d.getFullYear() !== today.getFullYear()) {
      opts.year = "numeric";
    }
    try {
      return d.toLocaleDateString(undefined, opts);
    } catch (e) {
      return key;
    }
  }

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var url = scheme + "//" + window.location.host + "/ws/" + encodeURIComponent(state.username) +
      "?room=" + encodeURIComponent(state.room);
    if (state.epoch !== null && state.lastId > 0) {
      url += "&since=" + encodeURIComponent(String(state.lastId)) +
        "&epoch=" + encodeURIComponent(String(state.epoch));
    }
    return url;
  }

  function asText(value) {
    if (value === undefined || value === null) {
      return "";
    }
    return String(value);
  }

  function isPlainEnter(ev) {
    return ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229;
  }

  var idCounter = 0;

  /** A unique-enough client_msg_id (1 to 64 characters). */
  function newClientMsgId() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID();
      } catch (e) {
        /* insecure context in some browsers: fall through */
      }
    }
    idCounter += 1;
    return "c-" + Date.now().toString(36) + "-" + idCounter.toString(36) + "-" +
      Math.random().toString(36).slice(2, 12);
  }

  function seenKey(id) {
    return String(state.epoch) + ":" + String(id);
  }

  /** A small text button under a message that could not be sent. */
  function deliveryButton(text, ariaLabel, onClick) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn-link delivery-btn";
    button.textContent = text;
    button.setAttribute("aria-label", ariaLabel);
    button.addEventListener("click", onClick);
    return button;
  }

  function isId(v) {
    return typeof v === "number" && isFinite(v);
  }

  // --------------------------------------------------------------- render

  var render = {
    status: function () {
      var s = state.status;
      dom.status.className = "status " + s;
      dom.status.setAttribute("data-state", s);
      dom["status-dot"].className = "status-dot " + s;

      var waiting = s === "reconnecting" && state.reconnect.timer !== null;
      if (waiting) {
        var secs = Math.max(1, Math.ceil((state.reconnect.at - Date.now()) / 1000));
        dom["status-text"].textContent = "Reconnecting in " + secs + " s";
      } else {
        dom["status-text"].textContent = STATUS_TEXT[s] || s;
      }
      dom["retry-btn"].hidden = !waiting;

      var connected = s === "connected";
      var connecting = s === "connecting";

      // Connection controls.
      dom["connect-btn"].disabled = connecting;
      dom.username.disabled = connecting;
      dom["connect-btn"].textContent = connecting
        ? "Connecting\u2026"
        : (state.username && !connected ? "Reconnect" : "Connect");

      // Sections: the username form is shown whenever there is no session
      // (never connected, or the connection failed before it was usable); the
      // conversation stays visible once shown so its history remains readable.
      dom["username-section"].hidden = connected || state.sessionLive;
      if (connected) {
        dom["chat-section"].hidden = false;
      }
      document.body.classList.toggle("has-chat", !dom["chat-section"].hidden);

      // Once in a session the composer stays usable (reconnecting, joining
      // another room): messages wait, marked "sending…", and go out on welcome.
      var canCompose = connected || state.sessionLive;
      dom.messageInput.disabled = !canCompose;
      dom["send-btn"].disabled = !canCompose;
      render.composerHint();
    },

    composerHint: function () {
      var s = state.status;
      var placeholder;
      var label;
      if (state.dmTarget) {
        label = "Direct message to " + state.dmTarget;
        placeholder = "Message " + state.dmTarget + " privately\u2026";
      } else {
        label = "Message to #" + state.room;
        placeholder = "Write a message\u2026";
      }
      if (s !== "connected" && !state.sessionLive) {
        placeholder = "Disconnected";
      }
      dom.messageInput.placeholder = placeholder;
      dom["messageInput-label"].textContent = label;
    },

    announce: function (text) {
      // Re-setting the same text would not be announced again; clear first.
      dom.announcer.textContent = "";
      window.setTimeout(function () {
        dom.announcer.textContent = text;
      }, 50);
    },

    usernameError: function (text) {
      var el = dom["username-error"];
      el.textContent = text || "";
      el.hidden = !text;
      if (text) {
        dom.username.setAttribute("aria-invalid", "true");
      } else {
        dom.username.removeAttribute("aria-invalid");
      }
    },

    roomError: function (text) {
      var el = dom["room-error"];
      el.textContent = text || "";
      el.hidden = !text;
      if (text) {
        dom["room-input"].setAttribute("aria-invalid", "true");
      } else {
        dom["room-input"].removeAttribute("aria-invalid");
      }
    },

    room: function () {
      dom["room-name"].textContent = state.room;
      dom["join-room"].textContent = state.room;
      render.title();
      render.composerHint();
    },

    title: function () {
      var base = APP_TITLE + " \u2014 " + state.room;
      document.title = state.unread > 0 ? "(" + state.unread + ") " + base : base;
    },

    /** A <time> showing the local hour and minute of a server timestamp (or now). */
    time: function (timestamp) {
      var parsed = parseTimestamp(timestamp);
      var d = parsed || new Date();
      var el = document.createElement("time");
      el.className = "time";
      el.setAttribute("datetime", parsed ? timestamp : d.toISOString());
      el.textContent = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
      el.title = d.toLocaleString();
      return el;
    },

    setTime: function (item, timestamp) {
      var old = item.querySelector("time.time");
      var fresh = render.time(timestamp);
      if (old) {
        old.parentNode.replaceChild(fresh, old);
      }
      var d = parseTimestamp(timestamp);
      if (d) {
        item.setAttribute("data-day", dayKey(d));
      }
    },

    isNearBottom: function () {
      var m = dom.messages;
      return m.scrollHeight - m.scrollTop - m.clientHeight <= STICK_TO_BOTTOM_PX;
    },

    scrollToBottom: function () {
      dom.messages.scrollTop = dom.messages.scrollHeight;
      state.stickToBottom = true;
    },

    /** The first own message not yet acknowledged; confirmed items go above it. */
    firstUnconfirmed: function () {
      return dom.messages.querySelector(".unconfirmed");
    },

    /**
     * Inserts an item: unconfirmed own messages at the very end, everything
     * else above them (so the list stays in server order), then fixes the day
     * separators around it and keeps the newest item visible when appropriate.
     */
    insert: function (node, forceScroll) {
      var stick = forceScroll || state.stickToBottom || render.isNearBottom();
      var before = node.classList.contains("unconfirmed") ? null : render.firstUnconfirmed();
      dom.messages.insertBefore(node, before);
      render.fixSeparators(node);
      if (stick) {
        render.scrollToBottom();
      }
    },

    clearMessages: function () {
      dom.messages.textContent = "";
      state.stickToBottom = true;
    },

    // -- day separators: one between two consecutive dated items whose local
    //    days differ (dated = has a server timestamp: messages, join/leave).

    isDated: function (el) {
      return el.hasAttribute("data-day") && !el.classList.contains("day-separator");
    },

    datedSibling: function (el, forward) {
      var cur = forward ? el.nextElementSibling : el.previousElementSibling;
      while (cur && !render.isDated(cur)) {
        cur = forward ? cur.nextElementSibling : cur.previousElementSibling;
      }
      return cur;
    },

    /** Makes the stretch between dated items a and b hold exactly the separators it needs. */
    fixGap: function (a, b) {
      var seps = [];
      var cur = a ? a.nextElementSibling : dom.messages.firstElementChild;
      while (cur && cur !== b) {
        if (cur.classList.contains("day-separator")) {
          seps.push(cur);
        }
        cur = cur.nextElementSibling;
      }
      var need = a && b && a.getAttribute("data-day") !== b.getAttribute("data-day");
      var keep = null;
      if (need) {
        var day = b.getAttribute("data-day");
        keep = seps.length > 0 ? seps.pop() : null;
        if (!keep || keep.nextElementSibling !== b) {
          if (keep) {
            keep.remove();
          }
          keep = document.createElement("div");
          keep.className = "day-separator";
          var label = document.createElement("span");
          label.className = "day-label";
          keep.appendChild(label);
          dom.messages.insertBefore(keep, b);
        }
        keep.setAttribute("data-day", day);
        keep.firstChild.textContent = dayLabel(day);
      }
      seps.forEach(function (s) {
        s.remove();
      });
    },

    fixSeparators: function (node) {
      if (!render.isDated(node)) {
        return;
      }
      render.fixGap(render.datedSibling(node, false), node);
      render.fixGap(node, render.datedSibling(node, true));
    },

    /** "Today" turns into "Yesterday" at midnight; refreshed when the tab is shown. */
    refreshDayLabels: function () {
      var seps = dom.messages.querySelectorAll(".day-separator");
      for (var i = 0; i < seps.length; i++) {
        seps[i].firstChild.textContent = dayLabel(seps[i].getAttribute("data-day"));
      }
    },

    // -- items

    /** The shell shared by chat messages and DMs. */
    bubble: function (classes, sender, text, timestamp) {
      var item = document.createElement("article");
      item.className = classes;
      item.setAttribute("data-sender", sender);
      var d = parseTimestamp(timestamp) || new Date();
      item.setAttribute("data-day", dayKey(d));

      var meta = document.createElement("div");
      meta.className = "meta";
      var who = document.createElement("span");
      who.className = "sender";
      who.textContent = sender;
      meta.appendChild(who);
      meta.appendChild(render.time(timestamp));

      var body = document.createElement("p");
      body.className = "text";
      body.textContent = text;

      item.appendChild(meta);
      item.appendChild(body);
      return item;
    },

    /** A chat message from the server (with its id). */
    chatMessage: function (frame) {
      var sender = asText(frame.client_id);
      var own = state.username !== "" && sender === state.username;
      var item = render.bubble(own ? "message own" : "message", sender, asText(frame.message), frame.timestamp);
      if (isId(frame.id)) {
        item.setAttribute("data-id", String(frame.id));
        item.setAttribute("data-epoch", String(state.epoch));
      }
      render.insert(item, own);
      return item;
    },

    /** An own message waiting for its ack. */
    pendingMessage: function (entry) {
      var item = render.bubble("message own pending unconfirmed", state.username, entry.text, null);
      item.setAttribute("data-client-msg-id", entry.cmid);
      var delivery = document.createElement("p");
      delivery.className = "delivery";
      var label = document.createElement("span");
      label.className = "delivery-text";
      label.textContent = "sending\u2026";
      delivery.appendChild(label);
      item.appendChild(delivery);
      render.insert(item, true);
      return item;
    },

    /** Turns a pending message into a confirmed one with its server id. */
    confirmMessage: function (item, id, timestamp) {
      item.classList.remove("pending", "failed", "unconfirmed");
      item.removeAttribute("data-client-msg-id");
      item.setAttribute("data-id", String(id));
      item.setAttribute("data-epoch", String(state.epoch));
      var delivery = item.querySelector(".delivery");
      if (delivery) {
        delivery.remove();
      }
      if (timestamp) {
        render.setTime(item, timestamp);
      }
      // Keep server order: a confirmed message sits above every unconfirmed one.
      var first = render.firstUnconfirmed();
      if (first && (first.compareDocumentPosition(item) & Node.DOCUMENT_POSITION_FOLLOWING)) {
        dom.messages.insertBefore(item, first);
      }
      render.fixSeparators(item);
    },

    /** Marks a pending message as refused by the server, with Retry / Discard. */
    failMessage: function (entry, reason) {
      var item = entry.el;
      item.classList.remove("pending");
      item.classList.add("failed");
      var delivery = item.querySelector(".delivery");
      delivery.textContent = "";
      var label = document.createElement("span");
      label.className = "delivery-text";
      label.textContent = "Not sent" + (reason ? ": " + reason : "");
      delivery.appendChild(label);

      var retry = deliveryButton("Retry", "Retry sending this message", function () {
        outbox.retry(entry);
      });
      var discard = deliveryButton("Discard", "Discard this message", function () {
        outbox.discard(entry);
      });
      delivery.appendChild(retry);
      delivery.appendChild(discard);
    },

    /** Back to "sending…" (after Retry). */
    unfailMessage: function (entry) {
      var item = entry.el;
      item.classList.remove("failed");
      item.classList.add("pending");
      var delivery = item.querySelector(".delivery");
      delivery.textContent = "";
      var label = document.createElement("span");
      label.className = "delivery-text";
      label.textContent = "sending\u2026";
      delivery.appendChild(label);
    },

    directMessage: function (frame) {
      var from = asText(frame.from);
      var to = asText(frame.to);
      var own = state.username !== "" && from === state.username;
      var item = render.bubble(own ? "message direct own" : "message direct", from,
        asText(frame.message), frame.timestamp);
      item.setAttribute("data-from", from);
      item.setAttribute("data-to", to);

      var meta = item.querySelector(".meta");
      var tag = document.createElement("span");
      tag.className = "direct-label";
      tag.textContent = "direct";
      var peer = document.createElement("span");
      peer.className = "direct-peer";
      peer.textContent = own ? "to " + to : "to you";
      meta.insertBefore(tag, meta.querySelector("time"));
      meta.insertBefore(peer, meta.querySelector("time"));

      if (!own && from) {
        var reply = document.createElement("button");
        reply.type = "button";
        reply.className = "btn-link reply-btn";
        reply.textContent = "Reply";
        reply.setAttribute("aria-label", "Reply to " + from + " directly");
        reply.addEventListener("click", function () {
          ui.setDmTarget(from);
        });
        item.appendChild(reply);
      }
      render.insert(item, own);
      return item;
    },

    /** kind: "join" | "leave" | "error" | "system" | "gap" */
    notice: function (kind, text, timestamp) {
      var item = document.createElement("div");
      item.className = "notice " + kind;
      if (kind === "error") {
        item.setAttribute("role", "alert");
      }
      var d = parseTimestamp(timestamp);
      if (d && (kind === "join" || kind === "leave")) {
        item.setAttribute("data-day", dayKey(d));
      }

      var body = document.createElement("span");
      body.className = "text";
      body.textContent = asText(text);
      item.appendChild(body);
      item.appendChild(render.time(timestamp));
      render.insert(item, false);
      return item;
    },

    typing: function () {
      var names = Object.keys(state.typists).sort(function (a, b) {
        return a.localeCompare(b);
      });
      var text = "";
      if (names.length === 1) {
        text = names[0] + " is typing\u2026";
      } else if (names.length === 2) {
        text = names[0] + " and " + names[1] + " are typing\u2026";
      } else if (names.length === 3) {
        text = names[0] + ", " + names[1] + " and " + names[2] + " are typing\u2026";
      } else if (names.length > 3) {
        text = "Several people are typing\u2026";
      }
      dom.typing.textContent = text;
      dom.typing.setAttribute("data-typists", names.join(","));
    },

    /** The user list, updated in place so keyboard focus survives changes. */
    users: function () {
      var names = state.members.slice().sort(function (a, b) {
        return a.localeCompare(b) || (a < b ? -1 : a > b ? 1 : 0);
      });
      var existing = Object.create(null);
      Array.prototype.forEach.call(dom.users.children, function (li) {
        existing[li.getAttribute("data-user")] = li;
      });
      names.forEach(function (name, i) {
        var li = existing[name] || render.userItem(name);
        delete existing[name];
        var btn = li.querySelector("button");
        if (btn) {
          btn.setAttribute("aria-pressed", state.dmTarget === name ? "true" : "false");
        }
        if (dom.users.children[i] !== li) {
          dom.users.insertBefore(li, dom.users.children[i] || null);
        }
      });
      Object.keys(existing).forEach(function (name) {
        existing[name].remove();
      });
      dom["user-count"].textContent = String(names.length);
      dom["users-toggle-count"].textContent = String(names.length);
    },

    userItem: function (name) {
      var li = document.createElement("li");
      li.className = "user";
      li.setAttribute("data-user", name);
      var avatar = document.createElement("span");
      avatar.className = "avatar";
      avatar.setAttribute("aria-hidden", "true");
      // The initial is drawn by CSS (attr()), so the item's text is just the name.
      avatar.setAttribute("data-initial", (Array.from(name)[0] || "?").toUpperCase());
      avatar.style.setProperty("--hue", String(hue(name)));
      var label = document.createElement("span");
      label.className = "user-name";
      label.textContent = name;

      if (name === state.username) {
        li.classList.add("self");
        var you = document.createElement("span");
        you.className = "you";
        you.textContent = "(you)";
        li.appendChild(avatar);
        li.appendChild(label);
        li.appendChild(you);
      } else {
        var btn = document.createElement("button");
        btn.type = "button";
        btn.className = "user-btn";
        btn.title = "Send " + name + " a direct message";
        btn.setAttribute("aria-label", name + ": send a direct message");
        btn.appendChild(avatar);
        btn.appendChild(label);
        btn.addEventListener("click", function () {
          ui.setDmTarget(name);
        });
        li.appendChild(btn);
      }
      return li;
    }
  };

  /** A stable colour per name for the avatar initial. */
  function hue(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) {
      h = (h * 31 + name.charCodeAt(i)) % 360;
    }
    return h;
  }

  // --------------------------------------------------------------- outbox

  /**
   * Own chat messages until the server acknowledges them. Entries are kept in
   * send order: { cmid, text, el, state: "queued" | "sent" | "failed" }.
   * `inflight` is the FIFO of commands on the current connection that expect
   * an answer (ack / direct echo / error), so an error frame can be matched
   * to the command it answers: the server answers commands in order.
   */
  var outbox = {
    entries: [],
    byId: Object.create(null),
    inflight: [],

    add: function (text) {
      var entry = { cmid: newClientMsgId(), text: text, el: null, state: "queued" };
      entry.el = render.pendingMessage(entry);
      outbox.entries.push(entry);
      outbox.byId[entry.cmid] = entry;
      outbox.trySend(entry);
    },

    trySend: function (entry) {
      if (!state.ready) {
        return;
      }
      var ok = socket.sendJson({ type: "message", message: entry.text, client_msg_id: entry.cmid });
      if (ok) {
        entry.state = "sent";
        outbox.inflight.push({ kind: "message", cmid: entry.cmid });
      }
    },

    /** After a (re)connect: everything not refused goes (again), same client_msg_id. */
    flush: function () {
      outbox.entries.slice().forEach(function (entry) {
        if (entry.state !== "failed") {
          outbox.trySend(entry);
        }
      });
    },

    /** The connection ended: nothing in flight will be answered. */
    connectionLost: function () {
      outbox.inflight = [];
      outbox.entries.forEach(function (entry) {
        if (entry.state === "sent") {
          entry.state = "queued";
        }
      });
    },

    remove: function (entry) {
      var i = outbox.entries.indexOf(entry);
      if (i >= 0) {
        outbox.entries.splice(i, 1);
      }
      delete outbox.byId[entry.cmid];
    },

    /** Our message is known under `id`: confirm it, or drop it if already shown. */
    settle: function (cmid, id, timestamp) {
      var entry = outbox.byId[cmid];
      if (!entry) {
        return false;
      }
      outbox.remove(entry);
      var key = seenKey(id);
      if (state.seen[key]) {
        entry.el.remove(); // already rendered (e.g. from the history after a resume)
      } else {
        state.seen[key] = true;
        render.confirmMessage(entry.el, id, timestamp);
      }
      return true;
    },

    /** Drops the in-flight record a frame answers. */
    answered: function (match) {
      for (var i = 0; i < outbox.inflight.length; i++) {
        if (match(outbox.inflight[i])) {
          outbox.inflight.splice(i, 1);
          return;
        }
      }
    },

    retry: function (entry) {
      if (outbox.byId[entry.cmid] !== entry) {
        return;
      }
      entry.state = "queued";
      render.unfailMessage(entry);
      outbox.trySend(entry);
      dom.messageInput.focus();
    },

    discard: function (entry) {
      outbox.remove(entry);
      entry.el.remove();
      dom.messageInput.focus();
    },

    /** Room switch: the messages belong to the old room. */
    clear: function () {
      outbox.entries = [];
      outbox.byId = Object.create(null);
      outbox.inflight = [];
    }
  };

  // ------------------------------------------------------ frame handling

  function countUnread(own) {
    if (!own && document.hidden && !state.firstLoad) {
      state.unread += 1;
      render.title();
    }
  }

  function stopTyping(name) {
    if (Object.prototype.hasOwnProperty.call(state.typists, name)) {
      window.clearTimeout(state.typists[name]);
      delete state.typists[name];
      render.typing();
    }
  }

  function clearTyping() {
    Object.keys(state.typists).forEach(function (name) {
      window.clearTimeout(state.typists[name]);
    });
    state.typists = Object.create(null);
    render.typing();
  }

  function showGapNotice(serverText, timestamp) {
    state.restartNoticeDue = false;
    var text = state.restartEpochChanged
      ? "Reconnected to a restarted server: earlier history may be missing."
      : "Earlier messages may be missing" + (serverText ? " (" + serverText + ")." : ".");
    state.restartEpochChanged = false;
    render.notice("gap", text, timestamp);
  }

  /** A chat message frame, live or from a history. */
  function acceptMessage(f) {
    var hasId = isId(f.id);
    if (hasId) {
      if (f.id > state.lastId) {
        state.lastId = f.id;
      }
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
    render.chatMessage(f);
    countUnread(asText(f.client_id) === state.username);
  }

  var handlers = {
    welcome: function (f) {
      if (isId(f.epoch)) {
        if (state.epoch !== null && f.epoch !== state.epoch) {
          // A restarted server: ids start again, so ours mean nothing there.
          state.restartNoticeDue = true;
          state.restartEpochChanged = true;
          state.lastId = 0;
        }
        state.epoch = f.epoch;
      }
      if (typeof f.client_id === "string" && f.client_id) {
        state.username = f.client_id;
      }
      if (typeof f.room === "string" && normalizeRoom(f.room) && f.room !== state.room) {
        state.room = normalizeRoom(f.room);
        setUrlRoom(state.room, false);
        render.room();
      }
      state.members = Array.isArray(f.members)
        ? f.members.filter(function (m) { return typeof m === "string"; })
        : [];
      render.users();
      socket.ready();
    },

    gap: function (f) {
      if (isId(f.epoch) && state.epoch !== null && f.epoch !== state.epoch) {
        state.epoch = f.epoch;
        state.lastId = 0;
        state.restartEpochChanged = true;
      }
      showGapNotice(asText(f.message), f.timestamp);
    },

    history: function (f) {
      var list = Array.isArray(f.messages) ? f.messages : [];
      list.forEach(function (m) {
        if (m && typeof m === "object") {
          acceptMessage(m);
        }
      });
      if (state.firstLoad) {
        state.firstLoad = false;
        render.scrollToBottom();
      }
    },

    message: function (f) {
      acceptMessage(f);
    },

    ack: function (f) {
      var cmid = asText(f.client_msg_id);
      outbox.answered(function (c) { return c.kind === "message" && c.cmid === cmid; });
      if (isId(f.id)) {
        outbox.settle(cmid, f.id, null);
      }
    },

    connection: function (f) {
      var name = asText(f.client_id);
      if (name && state.members.indexOf(name) < 0) {
        state.members.push(name);
        render.users();
      }
      render.notice("join", f.message || name + " joined the chat", f.timestamp);
    },

    disconnection: function (f) {
      var name = asText(f.client_id);
      var i = state.members.indexOf(name);
      if (i >= 0) {
        state.members.splice(i, 1);
        render.users();
      }
      stopTyping(name);
      render.notice("leave", f.message || name + " left the chat", f.timestamp);
      if (state.dmTarget && state.dmTarget === name) {
        ui.setDmTarget("", true); // the leave notice says why; the draft stays
      }
    },

    typing: function (f) {
      var name = asText(f.client_id);
      if (!name || name === state.username) {
        return;
      }
      if (Object.prototype.hasOwnProperty.call(state.typists, name)) {
        window.clearTimeout(state.typists[name]);
      }
      state.typists[name] = window.setTimeout(function () {
        stopTyping(name);
      }, TYPING_SHOW_MS);
      render.typing();
    },

    direct: function (f) {
      var from = asText(f.from);
      var own = from === state.username;
      if (own) {
        var to = asText(f.to);
        var text = asText(f.message);
        outbox.answered(function (c) { return c.kind === "direct" && c.to === to && c.text === text; });
      } else {
        stopTyping(from);
      }
      render.directMessage(f);
      countUnread(own);
    },

    error: function (f) {
      // Commands are answered in order: an error answers the oldest command
      // still waiting for its ack / echo.
      var cmd = outbox.inflight.shift();
      if (cmd && cmd.kind === "message" && outbox.byId[cmd.cmid]) {
        var entry = outbox.byId[cmd.cmid];
        entry.state = "failed";
        render.failMessage(entry, errorHint(f.code));
      }
      render.notice("error", f.message || "Error", f.timestamp);
    }
  };

  function errorHint(code) {
    switch (code) {
      case "rate_limited": return "too many messages, wait a moment";
      case "too_long": return "too long";
      default: return "";
    }
  }

  function handleFrame(data) {
    if (typeof data !== "string") {
      return; // binary frames are not part of the protocol
    }
    var frame;
    try {
      frame = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!frame || typeof frame !== "object") {
      return;
    }
    var type = typeof frame.type === "string" ? frame.type : "";
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
    // Unknown types are ignored on purpose (forward compatibility).
  }

  // --------------------------------------------------------------- socket

  var socket = {
    /** retrying: true for an automatic reconnect, false for a deliberate join. */
    open: function (retrying) {
      socket.close();
      socket.cancelReconnect();

      state.ready = false;
      state.retrying = !!retrying;
      state.status = retrying ? "reconnecting" : "connecting";
      render.status();

      var ws;
      try {
        ws = new WebSocket(socketUrl(), [SUBPROTOCOL]);
      } catch (e) {
        state.status = "disconnected";
        state.sessionLive = false;
        render.status();
        render.usernameError("Could not connect: " + (e && e.message ? e.message : "invalid address"));
        return;
      }
      state.ws = ws;

      // Every handler checks that it still belongs to the current socket, so
      // a late event from an old connection cannot clobber the new state.
      ws.addEventListener("open", function () {
        if (ws !== state.ws) { return; }
        if (ws.protocol !== SUBPROTOCOL) {
          // Only a server that answers "chat.v2" sends what this page needs.
          state.ws = null;
          ws.close(1000, "chat.v2 required");
          socket.onClosed({ reason: "the server does not speak " + SUBPROTOCOL });
        }
        // Usable once the welcome frame arrives.
      });

      ws.addEventListener("message", function (ev) {
        if (ws !== state.ws) { return; }
        handleFrame(ev.data);
      });

      ws.addEventListener("close", function (ev) {
        if (ws !== state.ws) { return; }
        state.ws = null;
        socket.onClosed(ev);
      });
      // "error" is always followed by "close"; nothing extra to do here.
    },

    /** The connection is usable: its welcome arrived. */
    ready: function () {
      var resumed = state.retrying;
      state.ready = true;
      state.sessionLive = true;
      state.lastCloseReason = "";
      state.reconnect.attempt = 0;
      state.status = "connected";
      render.usernameError("");
      render.status();
      render.room();
      if (resumed) {
        state.reconnects += 1;
        dom.status.setAttribute("data-reconnects", String(state.reconnects));
        render.notice("system", "Reconnected", null); // the log announces it
      } else {
        render.announce("Connected to #" + state.room);
      }
      outbox.flush();
      var active = document.activeElement;
      if (!resumed || !active || active === document.body || active === dom["retry-btn"]) {
        dom.messageInput.focus();
      }
    },

    close: function () {
      var ws = state.ws;
      if (!ws) { return; }
      state.ws = null;
      state.ready = false;
      outbox.connectionLost();
      try {
        ws.close(1000, "client closing");
      } catch (e) {
        /* ignore */
      }
    },

    /** Sends one command; false when there is no open connection. */
    sendJson: function (command) {
      var ws = state.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        return false;
      }
      ws.send(JSON.stringify(command));
      return true;
    },

    /** Called once per connection when it ends. */
    onClosed: function (ev) {
      var wasReady = state.ready;
      state.ready = false;
      outbox.connectionLost();
      clearTyping();

      if (state.sessionLive) {
        // Had a working connection in this session: keep trying, forever,
        // with backoff; the page resumes where it left off.
        if (wasReady) {
          render.notice("system", "Connection lost", null);
        } else if (ev && ev.reason && ev.reason !== state.lastCloseReason) {
          // Refused before it was usable (e.g. "too many rooms"): say why, once.
          state.lastCloseReason = ev.reason;
          render.notice("error", "The server refused the connection: " + ev.reason, null);
        }
        socket.scheduleReconnect();
        return;
      }

      state.status = "disconnected";
      render.status();
      var reason = ev && ev.reason ? ": " + ev.reason : ".";
      render.usernameError("Could not connect to the chat server" + reason);
      ui.focusUsername();
    },

    scheduleReconnect: function () {
      socket.cancelReconnect();
      var r = state.reconnect;
      var windowMs = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * Math.pow(2, r.attempt));
      var delay = Math.floor(Math.random() * windowMs);
      r.attempt += 1;
      r.at = Date.now() + delay;
      r.timer = window.setTimeout(socket.reconnectNow, delay);
      r.ticker = window.setInterval(render.status, 250);
      state.status = "reconnecting";
      render.status();
    },

    cancelReconnect: function () {
      var r = state.reconnect;
      if (r.timer !== null) {
        window.clearTimeout(r.timer);
        r.timer = null;
      }
      if (r.ticker !== null) {
        window.clearInterval(r.ticker);
        r.ticker = null;
      }
    },

    reconnectNow: function () {
      socket.cancelReconnect();
      if (state.ws || !state.sessionLive) {
        return;
      }
      socket.open(true);
    }
  };

  // ------------------------------------------------------------------- ui

  var ui = {
    focusUsername: function () {
      if (!dom["username-section"].hidden && !dom.username.disabled) {
        dom.username.focus();
      }
    },

    onConnectSubmit: function (ev) {
      ev.preventDefault();
      if (state.status === "connecting") {
        return;
      }
      var name = dom.username.value.trim();
      var error = validateUsername(name);
      render.usernameError(error);
      if (error) {
        dom.username.focus();
        return;
      }
      dom.username.value = name;
      storageSet(STORAGE_KEY, name);
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
    resetRoomView: function () {
      state.epoch = null;
      state.lastId = 0;
      state.seen = Object.create(null);
      state.restartNoticeDue = false;
      state.restartEpochChanged = false;
      state.firstLoad = true;
      state.members = [];
      state.unread = 0;
      outbox.clear();
      clearTyping();
      ui.setDmTarget("", true);
      render.clearMessages();
      render.users();
      render.title();
    },

    /** Joins `room` (already normalized). push: add a browser history entry. */
    switchRoom: function (room, push) {
      if (room === state.room) {
        setUrlRoom(room, false);
        return;
      }
      var inSession = state.sessionLive || state.ws !== null;
      socket.close();
      socket.cancelReconnect();
      state.room = room;
      setUrlRoom(room, push);
      ui.resetRoomView();
      render.room();
      if (inSession && state.username) {
        render.announce("Joining #" + room);
        socket.open();
      } else {
        render.status();
      }
    },

    onRoomSubmit: function (ev) {
      ev.preventDefault();
      var raw = dom["room-input"].value;
      var room = normalizeRoom(raw);
      if (!room) {
        render.roomError(raw.trim() === ""
          ? "Please enter a room name."
          : "Room names are 1 to 32 letters, digits, - or _.");
        dom["room-input"].focus();
        return;
      }
      render.roomError("");
      dom["room-input"].value = "";
      ui.closeSidebar(false);
      ui.switchRoom(room, true);
      dom.messageInput.focus();
    },

    onPopState: function () {
      var r = roomFromUrl();
      ui.switchRoom(r.room, false);
    },

    /** name "" leaves direct-message mode. */
    setDmTarget: function (name, silent) {
      if (name && name === state.username) {
        return;
      }
      state.dmTarget = name || "";
      dom["dm-target"].textContent = state.dmTarget;
      dom["dm-bar"].hidden = !state.dmTarget;
      dom.composer.classList.toggle("dm-mode", !!state.dmTarget);
      render.users();
      render.composerHint();
      if (!silent) {
        if (state.dmTarget) {
          ui.closeSidebar(false);
        }
        if (!dom.messageInput.disabled) {
          dom.messageInput.focus();
        }
      }
    },

    onComposerSubmit: function (ev) {
      ev.preventDefault();
      var text = dom.messageInput.value;
      if (text.trim() === "") {
        dom.messageInput.focus();
        return;
      }
      if (state.dmTarget) {
        if (!state.ready) {
          render.notice("system", "Direct messages need a live connection; yours is still in the message box.", null);
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

    onComposerInput: function () {
      if (!state.ready || state.dmTarget || dom.messageInput.value.trim() === "") {
        return;
      }
      var now = Date.now();
      if (now - state.lastTypingSent >= TYPING_SEND_INTERVAL_MS) {
        if (socket.sendJson({ type: "typing" })) {
          state.lastTypingSent = now;
        }
      }
    },

    toggleSidebar: function () {
      var open = !dom.sidebar.classList.contains("open");
      dom.sidebar.classList.toggle("open", open);
      dom["users-toggle"].setAttribute("aria-expanded", open ? "true" : "false");
      if (open) {
        var first = dom.sidebar.querySelector("button, input");
        if (first) {
          first.focus();
        }
      }
    },

    closeSidebar: function (returnFocus) {
      if (!dom.sidebar.classList.contains("open")) {
        return;
      }
      dom.sidebar.classList.remove("open");
      dom["users-toggle"].setAttribute("aria-expanded", "false");
      if (returnFocus) {
        dom["users-toggle"].focus();
      }
    },

    onVisibilityChange: function () {
      if (!document.hidden) {
        state.unread = 0;
        render.title();
        render.refreshDayLabels();
        // Back to the tab while a long reconnect wait is running: try now.
        if (state.reconnect.timer !== null && state.reconnect.at - Date.now() > 2000) {
          socket.reconnectNow();
        }
      }
    },

    init: function () {
      lookupDom();

      var fromUrl = roomFromUrl();
      state.room = fromUrl.room;
      if (!fromUrl.valid) {
        // An unusable ?room= in a link: say where we actually are.
        setUrlRoom(state.room, false);
      }
      render.room();

      var saved = storageGet(STORAGE_KEY);
      if (saved) {
        dom.username.value = saved;
      }

      dom["username-form"].addEventListener("submit", ui.onConnectSubmit);
      dom.composer.addEventListener("submit", ui.onComposerSubmit);
      dom["room-form"].addEventListener("submit", ui.onRoomSubmit);
      // Enter submits in the fields. Handled explicitly (and the implicit
      // form submission suppressed) so it also works for synthetic events.
      dom.username.addEventListener("keydown", function (ev) {
        if (isPlainEnter(ev)) {
          ev.preventDefault();
          ui.onConnectSubmit(ev);
        }
      });
      dom.messageInput.addEventListener("keydown", function (ev) {
        if (isPlainEnter(ev)) {
          ev.preventDefault();
          ui.onComposerSubmit(ev);
        } else if (ev.key === "Escape" && state.dmTarget) {
          ev.preventDefault();
          ui.setDmTarget("");
        }
      });
      dom["room-input"].addEventListener("keydown", function (ev) {
        if (isPlainEnter(ev)) {
          ev.preventDefault();
          ui.onRoomSubmit(ev);
        }
      });
      dom.messageInput.addEventListener("input", ui.onComposerInput);
      dom.username.addEventListener("input", function () {
        if (!dom["username-error"].hidden) {
          render.usernameError("");
        }
      });
      dom["room-input"].addEventListener("input", function () {
        if (!dom["room-error"].hidden) {
          render.roomError("");
        }
      });
      dom["dm-cancel"].addEventListener("click", function () {
        ui.setDmTarget("");
      });
      dom["retry-btn"].addEventListener("click", function () {
        socket.reconnectNow();
      });
      dom["users-toggle"].addEventListener("click", ui.toggleSidebar);
      dom.sidebar.addEventListener("keydown", function (ev) {
        if (ev.key === "Escape") {
          ui.closeSidebar(true);
        }
      });
      // The narrow-screen panel closes when you tap elsewhere.
      document.addEventListener("click", function (ev) {
        var t = ev.target;
        if (dom.sidebar.classList.contains("open") && t instanceof Node &&
            !dom.sidebar.contains(t) && !dom["users-toggle"].contains(t)) {
          ui.closeSidebar(false);
        }
      });

      window.addEventListener("popstate", ui.onPopState);
      document.addEventListener("visibilitychange", ui.onVisibilityChange);
      // Back online while waiting to retry: retry now.
      window.addEventListener("online", function () {
        if (state.reconnect.timer !== null) {
          socket.reconnectNow();
        }
      });

      // Follow the newest message unless the user scrolled up to read; keep
      // following when the list is resized (e.g. a phone keyboard opening).
      dom.messages.addEventListener("scroll", function () {
        state.stickToBottom = render.isNearBottom();
      }, { passive: true });
      var keepBottom = function () {
        if (state.stickToBottom) {
          dom.messages.scrollTop = dom.messages.scrollHeight;
        }
      };
      if (typeof window.ResizeObserver === "function") {
        new window.ResizeObserver(keepBottom).observe(dom.messages);
      } else {
        window.addEventListener("resize", keepBottom);
      }

      render.status();
      render.users();
      render.typing();
      // No auto-connect: joining announces you to the room, so it takes a
      // deliberate Enter / click; the remembered name is prefilled.
      dom.username.focus();
      if (dom.username.value) {
        dom.username.select();
      }
    }
  };

  // ------------------------------------------------------------ namespace

  window.Chat = {
    state: state,
    render: render,
    outbox: outbox,
    socket: socket,
    ui: ui,
    handleFrame: handleFrame,
    validateUsername: validateUsername,
    normalizeRoom: normalizeRoom
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ui.init);
  } else {
    ui.init();
  }
})();
