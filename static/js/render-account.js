/**
 * What the page shows of an account (--auth accounts): who is logged in with
 * the Log out button, the name field that the session fills in (not
 * editable), and the login form's error line and busy state. Which section is
 * shown (login form, name form, conversation) is render-status.js's part.
 */

import { dom } from "./dom.js";
import { state } from "./state.js";

const NAME_HINT = "Pick a name other people will see, up to 32 characters.";

/** The header's "Logged in as" and the name form, from `state.auth` and `state.account`. */
export function renderAccount() {
  const account = state.auth === "accounts" ? state.account : null;
  dom.account.hidden = account === null;
  dom["account-name"].textContent = account || "";
  // In accounts mode the name is the session's: shown, not editable.
  dom.username.readOnly = account !== null;
  if (account !== null) {
    dom.username.value = account;
    dom["username-hint"].textContent = "You are logged in as " + account + ".";
  } else {
    dom["username-hint"].textContent = NAME_HINT;
  }
}

/**
 * Shows `text` under the login form, or clears it when `text` is empty;
 * `field` (an input's id), when given, is marked invalid.
 */
export function loginError(text, field) {
  dom["login-error"].textContent = text || "";
  dom["login-error"].hidden = !text;
  ["login-name", "login-password"].forEach((id) => {
    if (text && id === field) {
      dom[id].setAttribute("aria-invalid", "true");
    } else {
      dom[id].removeAttribute("aria-invalid");
    }
  });
}

/** While a login is on its way: the button says so and takes no second click. */
export function loginBusy(busy) {
  dom["login-btn"].disabled = busy;
  dom["login-btn"].textContent = busy ? "Logging in\u2026" : "Log in";
  dom["login-form"].setAttribute("aria-busy", busy ? "true" : "false");
}

/** While a logout is on its way. */
export function logoutBusy(busy) {
  dom["logout-btn"].disabled = busy;
  dom["logout-btn"].textContent = busy ? "Logging out\u2026" : "Log out";
}
