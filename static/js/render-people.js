/**
 * Who is here: the user list (others are buttons that start a direct message,
 * handled by ui.js) and the "is typing" line.
 */

import { dom } from "./dom.js";
import { state } from "./state.js";
import { hue } from "./util.js";

/** "bob is typing…", "a and b are typing…", …, from `state.typists`. */
function typingText(names) {
  if (names.length === 1) {
    return names[0] + " is typing\u2026";
  }
  if (names.length === 2) {
    return names[0] + " and " + names[1] + " are typing\u2026";
  }
  if (names.length === 3) {
    return names[0] + ", " + names[1] + " and " + names[2] + " are typing\u2026";
  }
  return names.length > 3 ? "Several people are typing\u2026" : "";
}

export function renderTyping() {
  const names = Object.keys(state.typists).sort((a, b) => a.localeCompare(b));
  dom.typing.textContent = typingText(names);
  dom.typing.setAttribute("data-typists", names.join(","));
}

/** The user list, updated in place so keyboard focus survives changes. */
export function renderUsers() {
  const names = state.members.slice().sort((a, b) => a.localeCompare(b) || (a < b ? -1 : a > b ? 1 : 0));
  const existing = Object.create(null);
  Array.prototype.forEach.call(dom.users.children, (li) => {
    existing[li.getAttribute("data-user")] = li;
  });
  names.forEach((name, i) => {
    const li = existing[name] || userItem(name);
    delete existing[name];
    const btn = li.querySelector("button");
    if (btn) {
      btn.setAttribute("aria-pressed", state.dmTarget === name ? "true" : "false");
    }
    if (dom.users.children[i] !== li) {
      dom.users.insertBefore(li, dom.users.children[i] || null);
    }
  });
  Object.keys(existing).forEach((name) => {
    existing[name].remove();
  });
  dom["user-count"].textContent = String(names.length);
  dom["users-toggle-count"].textContent = String(names.length);
}

function avatar(name) {
  const el = document.createElement("span");
  el.className = "avatar";
  el.setAttribute("aria-hidden", "true");
  // The initial is drawn by CSS (attr()), so the item's text is just the name.
  el.setAttribute("data-initial", (Array.from(name)[0] || "?").toUpperCase());
  el.style.setProperty("--hue", String(hue(name)));
  return el;
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

/** One entry: oneself as plain text marked "(you)", anybody else as a button. */
function userItem(name) {
  const li = document.createElement("li");
  li.className = "user";
  li.setAttribute("data-user", name);
  if (name === state.username) {
    li.classList.add("self");
    li.appendChild(avatar(name));
    li.appendChild(span("user-name", name));
    li.appendChild(span("you", "(you)"));
  } else {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "user-btn";
    btn.title = "Send " + name + " a direct message";
    btn.setAttribute("aria-label", name + ": send a direct message");
    btn.appendChild(avatar(name));
    btn.appendChild(span("user-name", name));
    li.appendChild(btn);
    if (state.admin) {
      li.appendChild(modButton("kick", "Kick", "Remove " + name + " from the chat"));
      li.appendChild(modButton("ban", "Ban 1 h", "Ban " + name + " for an hour"));
    }
  }
  return li;
}

/** An admin's action on a user (ui.js handles it through data-mod; the server checks again). */
function modButton(action, text, label) {
  const btn = document.createElement("button");
  btn.type = "button";
  btn.className = "btn-link mod-btn";
  btn.setAttribute("data-mod", action);
  btn.setAttribute("aria-label", label);
  btn.textContent = text;
  return btn;
}
