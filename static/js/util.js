/** Small helpers with no page state: storage, frame fields, keys, ids. */

export function storageGet(key) {
  try {
    return window.localStorage.getItem(key);
  } catch (e) {
    return null;
  }
}

export function storageSet(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch (e) {
    /* storage may be unavailable (private mode, quotas); not fatal */
  }
}

/** A frame field as text ("" when absent). */
export function asText(value) {
  if (value === undefined || value === null) {
    return "";
  }
  return String(value);
}

/** A message id as the server sends it. */
export function isId(v) {
  return typeof v === "number" && isFinite(v);
}

export function isPlainEnter(ev) {
  return ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229;
}

let idCounter = 0;

/** A unique-enough client_msg_id (1 to 64 characters). */
export function newClientMsgId() {
  const c = window.crypto;
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

/** A stable colour per name for the avatar initial. */
export function hue(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) {
    h = (h * 31 + name.charCodeAt(i)) % 360;
  }
  return h;
}
