/** User and room names: validation, and the room in the page URL. */

import { DEFAULT_ROOM, MAX_USERNAME_CHARS, ROOM_RE } from "./config.js";

function charCount(s) {
  // Count code points, not UTF-16 units, so an emoji counts as one.
  return Array.from(s).length;
}

/** Returns an error string, or "" when the name is acceptable. */
export function validateUsername(name) {
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
export function normalizeRoom(raw) {
  const room = String(raw === undefined || raw === null ? "" : raw).trim().replace(/^#/, "").toLowerCase();
  return ROOM_RE.test(room) ? room : "";
}

/** The room named by the page URL's ?room=, and whether it was given and usable. */
export function roomFromUrl() {
  let raw = null;
  try {
    raw = new URLSearchParams(window.location.search).get("room");
  } catch (e) {
    raw = null;
  }
  if (raw === null || raw.trim() === "") {
    return { room: DEFAULT_ROOM, valid: true, given: false };
  }
  const room = normalizeRoom(raw);
  return room ? { room: room, valid: true, given: true } : { room: DEFAULT_ROOM, valid: false, given: true };
}

/** Puts `room` into the page URL (?room=), keeping any other parameters. */
export function setUrlRoom(room, push) {
  if (!window.history || typeof window.history.replaceState !== "function") {
    return;
  }
  try {
    const url = new URL(window.location.href);
    if (url.searchParams.get("room") === room) {
      return;
    }
    url.searchParams.set("room", room);
    const st = { room: room };
    if (push) {
      window.history.pushState(st, "", url.toString());
    } else {
      window.history.replaceState(st, "", url.toString());
    }
  } catch (e) {
    /* e.g. a file: URL; the room still works for this page */
  }
}
