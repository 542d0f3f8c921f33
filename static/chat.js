/*
 * Browser client for the chat server.
 *
 * Wire protocol:
 *   - connect to ws(s)://<host>/ws/<encodeURIComponent(username)>
 *   - server -> client: JSON text frames {type, client_id, message, timestamp}
 *     with type "connection" | "message" | "disconnection" | "error"
 *     (unknown types are ignored)
 *   - client -> server: the chat text itself as a raw text frame
 *
 * Structure: `state` (plain data), `dom` (element lookups), `render` (pure DOM
 * output, always via textContent), `socket` (WebSocket lifecycle), `ui` (event
 * wiring). Everything hangs off the single global namespace `window.Chat`.
 *
 * Auto-reconnect is intentionally not implemented yet; the hook for it is
 * `socket.onClosed()` (it knows whether the connection was ever established
 * and whether the user closed it on purpose).
 */
(function () {
  "use strict";

  var MAX_USERNAME_CHARS = 20;
  var STORAGE_KEY = "chat.username";
  /** How close (px) to the bottom counts as "reading the newest messages". */
  var STICK_TO_BOTTOM_PX = 80;

  var STATUS_TEXT = {
    connecting: "Connecting\u2026",
    connected: "Connected",
    disconnected: "Disconnected"
  };

  // ---------------------------------------------------------------- state

  var state = {
    /** "disconnected" | "connecting" | "connected" */
    status: "disconnected",
    /** The username of the current / last connection. */
    username: "",
    /** The live WebSocket, or null. */
    ws: null,
    /** True once the current socket reached "open". */
    wasOpen: false,
    /** True when the close was requested by this page (e.g. reconnect). */
    closingOnPurpose: false,
    /** Whether the message list follows the newest message. */
    stickToBottom: true
  };

  // ------------------------------------------------------------------ dom

  var dom = {};

  function lookupDom() {
    var ids = [
      "status", "status-dot", "status-text",
      "username-section", "username-form", "username", "connect-btn", "username-error",
      "chat-section", "messages", "composer", "messageInput", "send-btn"
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
    return "";
  }

  function pad2(n) {
    return (n < 10 ? "0" : "") + n;
  }

  /** Parses a server timestamp; falls back to "now" when missing/invalid. */
  function parseTimestamp(ts) {
    var d = typeof ts === "string" && ts ? new Date(ts) : new Date(NaN);
    if (isNaN(d.getTime())) {
      d = new Date();
    }
    return d;
  }

  function socketUrl(username) {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + "/ws/" + encodeURIComponent(username);
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

  // --------------------------------------------------------------- render

  var render = {
    status: function () {
      var s = state.status;
      dom.status.className = "status " + s;
      dom.status.setAttribute("data-state", s);
      dom["status-dot"].className = "status-dot " + s;
      dom["status-text"].textContent = STATUS_TEXT[s] || s;

      var connected = s === "connected";
      var connecting = s === "connecting";

      // Connection controls.
      dom["connect-btn"].disabled = connecting;
      dom.username.disabled = connecting;
      dom["connect-btn"].textContent = connecting
        ? "Connecting\u2026"
        : (state.username && !connected ? "Reconnect" : "Connect");

      // Sections: the username form is shown whenever we are not connected;
      // the conversation stays visible once we have been connected so the
      // history (and the "Disconnected" notice) remains readable.
      dom["username-section"].hidden = connected;
      if (connected) {
        dom["chat-section"].hidden = false;
      }
      document.body.classList.toggle("has-chat", !dom["chat-section"].hidden);

      // Composer only works while connected.
      dom.messageInput.disabled = !connected;
      dom["send-btn"].disabled = !connected;
      dom.messageInput.placeholder = connected
        ? "Write a message\u2026"
        : "Disconnected";
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

    time: function (timestamp) {
      var d = parseTimestamp(timestamp);
      var el = document.createElement("time");
      el.className = "time";
      el.setAttribute("datetime", typeof timestamp === "string" && timestamp ? timestamp : d.toISOString());
      el.textContent = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
      el.title = d.toLocaleString();
      return el;
    },

    isNearBottom: function () {
      var m = dom.messages;
      return m.scrollHeight - m.scrollTop - m.clientHeight <= STICK_TO_BOTTOM_PX;
    },

    scrollToBottom: function () {
      dom.messages.scrollTop = dom.messages.scrollHeight;
      state.stickToBottom = true;
    },

    /** Appends a node, keeping the newest item visible when appropriate. */
    append: function (node, forceScroll) {
      var stick = forceScroll || state.stickToBottom || render.isNearBottom();
      dom.messages.appendChild(node);
      if (stick) {
        render.scrollToBottom();
      }
    },

    chatMessage: function (frame) {
      var sender = asText(frame.client_id);
      var own = state.username !== "" && sender === state.username;

      var item = document.createElement("article");
      item.className = own ? "message own" : "message";

      var meta = document.createElement("div");
      meta.className = "meta";
      var who = document.createElement("span");
      who.className = "sender";
      who.textContent = sender;
      meta.appendChild(who);
      meta.appendChild(render.time(frame.timestamp));

      var body = document.createElement("p");
      body.className = "text";
      body.textContent = asText(frame.message);

      item.appendChild(meta);
      item.appendChild(body);
      render.append(item, own);
    },

    /** kind: "join" | "leave" | "error" | "system" */
    notice: function (kind, text, timestamp) {
      var item = document.createElement("div");
      item.className = "notice " + kind;
      if (kind === "error") {
        item.setAttribute("role", "alert");
      }

      var body = document.createElement("span");
      body.className = "text";
      body.textContent = asText(text);
      item.appendChild(body);
      item.appendChild(render.time(timestamp));
      render.append(item, false);
    }
  };

  // ------------------------------------------------------ frame handling

  var handlers = {
    connection: function (f) {
      render.notice("join", f.message, f.timestamp);
    },
    message: function (f) {
      render.chatMessage(f);
    },
    disconnection: function (f) {
      render.notice("leave", f.message, f.timestamp);
    },
    error: function (f) {
      render.notice("error", f.message || "Error", f.timestamp);
    }
  };

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
    if (Object.prototype.hasOwnProperty.call(handlers, type)) {
      try {
        handlers[type](frame);
      } catch (e) {
        if (window.console) {
          window.console.error("chat: failed to render frame", e);
        }
      }
    }
    // Unknown types are ignored on purpose (forward compatibility).
  }

  // --------------------------------------------------------------- socket

  var socket = {
    open: function (username) {
      socket.close();

      state.username = username;
      state.wasOpen = false;
      state.closingOnPurpose = false;
      state.status = "connecting";
      render.status();

      var ws;
      try {
        ws = new WebSocket(socketUrl(username));
      } catch (e) {
        state.status = "disconnected";
        render.status();
        render.usernameError("Could not connect: " + (e && e.message ? e.message : "invalid address"));
        return;
      }
      state.ws = ws;

      // Every handler checks that it still belongs to the current socket, so
      // a late event from an old connection cannot clobber the new state.
      ws.addEventListener("open", function () {
        if (ws !== state.ws) { return; }
        state.wasOpen = true;
        state.status = "connected";
        render.status();
        render.scrollToBottom();
        dom.messageInput.focus();
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

    close: function () {
      var ws = state.ws;
      if (!ws) { return; }
      state.closingOnPurpose = true;
      state.ws = null;
      try {
        ws.close(1000, "client closing");
      } catch (e) {
        /* ignore */
      }
    },

    send: function (text) {
      var ws = state.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        return false;
      }
      ws.send(text);
      return true;
    },

    /**
     * Called once per connection when it ends. This is the place to add
     * auto-reconnect later (e.g. with backoff when state.wasOpen is true and
     * !state.closingOnPurpose).
     */
    onClosed: function (ev) {
      var wasOpen = state.wasOpen;
      state.status = "disconnected";
      state.wasOpen = false;
      render.status();

      if (wasOpen) {
        render.notice("system", "Disconnected", null);
      } else {
        var reason = ev && ev.reason ? ": " + ev.reason : ".";
        render.usernameError("Could not connect to the chat server" + reason);
      }
      ui.focusUsername();
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
      socket.open(name);
    },

    onComposerSubmit: function (ev) {
      ev.preventDefault();
      var text = dom.messageInput.value;
      if (text.trim() === "") {
        dom.messageInput.focus();
        return;
      }
      if (socket.send(text)) {
        dom.messageInput.value = "";
      }
      dom.messageInput.focus();
    },

    init: function () {
      lookupDom();

      var saved = storageGet(STORAGE_KEY);
      if (saved) {
        dom.username.value = saved;
      }

      dom["username-form"].addEventListener("submit", ui.onConnectSubmit);
      dom.composer.addEventListener("submit", ui.onComposerSubmit);
      // Enter submits in both fields. Handled explicitly (and the implicit
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
        }
      });
      dom.username.addEventListener("input", function () {
        if (!dom["username-error"].hidden) {
          render.usernameError("");
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
    socket: socket,
    ui: ui,
    handleFrame: handleFrame,
    validateUsername: validateUsername
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ui.init);
  } else {
    ui.init();
  }
})();
