/**
 * Built-in accounts (--auth accounts) on the page: asks GET /session at start;
 * logged in, it joins as the session's user; not logged in, it shows the login
 * form. Logging in posts the form with fetch (errors show inline), then asks
 * /session again and joins; Log out ends the session on the server, closes the
 * socket without reconnecting and shows the form again. When a socket closes
 * and the session is gone (refused at the upgrade, or ended in another tab)
 * the form comes back instead of reconnect attempts that could only be
 * refused. In the open and token modes (and with a server older than
 * /session) nothing here does anything.
 */

import { dom } from "./dom.js";
import { notice } from "./render-items.js";
import { loginBusy, loginError, logoutBusy } from "./render-account.js";
import { announce, renderStatus } from "./render-status.js";
import { fetchSession, logIn, logOut } from "./session.js";
import { checkSessionOnClose, socket } from "./socket.js";
import { state } from "./state.js";
import { ui } from "./ui.js";

let loggingIn = false;
let loggingOut = false;

export const login = {
  /** Asks the server which mode it is in; called once, after ui.init(). */
  async start() {
    wire();
    const session = await fetchSession();
    switch (session.kind) {
      case "signed-in":
        enterAccountsMode();
        loggedIn(session.user, session.admin);
        break;
      case "signed-out":
        enterAccountsMode();
        login.showForm("", false);
        break;
      case "busy":
        enterAccountsMode();
        login.showForm(busyText(session.retryAfter), false);
        break;
      default:
        // open, token, or no answer: the page works as it always has.
        break;
    }
  },

  /**
   * Back to the login form: no socket, no reconnect, nothing of the last
   * conversation left on the screen. `message` says why (may be "");
   * `keepName`: the name field keeps the last account's name (the session
   * ended by itself), so only the password is asked again.
   */
  showForm(message, keepName) {
    socket.close();
    socket.cancelReconnect();
    const previous = state.account;
    state.account = null;
    state.admin = false;
    state.sessionLive = false;
    state.status = "disconnected";
    state.username = "";
    ui.resetRoomView();
    dom["login-password"].value = "";
    dom["login-name"].value = keepName && previous !== null ? previous : "";
    loginBusy(false);
    loginError(message);
    renderStatus();
    const field = dom["login-name"].value === "" ? "login-name" : "login-password";
    dom[field].focus();
  }
};

/** The login form and the Log out button (they exist only in accounts mode). */
function wire() {
  dom["login-form"].addEventListener("submit", onLoginSubmit);
  dom["logout-btn"].addEventListener("click", onLogOut);
  ["login-name", "login-password"].forEach((id) => {
    dom[id].addEventListener("input", () => {
      if (!dom["login-error"].hidden) {
        loginError("");
      }
    });
  });
}

function enterAccountsMode() {
  state.auth = "accounts";
  checkSessionOnClose(sessionStillThere);
}

/** The session's user joins the room: the name field shows it, read-only. */
function loggedIn(user, admin) {
  state.account = user;
  state.admin = admin;
  loginError("");
  announce("Logged in as " + user);
  ui.connect(user);
}

async function onLoginSubmit(ev) {
  ev.preventDefault();
  if (loggingIn) {
    return;
  }
  const name = dom["login-name"].value.trim();
  const password = dom["login-password"].value;
  if (name === "") {
    loginError("Please enter your name.", "login-name");
    dom["login-name"].focus();
    return;
  }
  if (password === "") {
    loginError("Please enter your password.", "login-password");
    dom["login-password"].focus();
    return;
  }
  loggingIn = true;
  loginError("");
  loginBusy(true);
  const answer = await logIn(name, password);
  if (answer.ok) {
    dom["login-password"].value = "";
    const session = await fetchSession();
    loggingIn = false;
    loginBusy(false);
    if (session.kind === "signed-in") {
      loggedIn(session.user, session.admin);
    } else {
      loginError("Logged in, but this browser did not keep the session. Are cookies blocked for this site?");
      dom["login-name"].focus();
    }
    return;
  }
  loggingIn = false;
  loginBusy(false);
  loginError(loginFailure(answer));
  if (answer.status === 401) {
    dom["login-password"].focus();
    dom["login-password"].select();
  } else {
    dom["login-btn"].focus();
  }
}

/** The line under the form for a refused login. */
function loginFailure(answer) {
  switch (answer.status) {
    case 0:
      return "Could not reach the server. Check your connection and try again.";
    case 401:
      return "Wrong name or password";
    case 403:
      return "The server refused this login (it came from another site).";
    case 429:
      return answer.retryAfter
        ? "Too many attempts, try again in " + answer.retryAfter + " s"
        : "Too many attempts, try again later";
    case 503:
      return busyText(answer.retryAfter);
    default:
      return "Could not log in (the server answered " + answer.status + "). Try again.";
  }
}

function busyText(retryAfter) {
  return retryAfter ? "Server busy, try again in " + retryAfter + " s" : "Server busy, try again";
}

async function onLogOut() {
  if (loggingOut) {
    return;
  }
  loggingOut = true;
  logoutBusy(true);
  // Closed first, deliberately: the server ending the session must not look
  // like a lost connection to reconnect.
  socket.close();
  socket.cancelReconnect();
  state.sessionLive = false;
  const answer = await logOut();
  loggingOut = false;
  logoutBusy(false);
  if (answer.ok) {
    login.showForm("", false);
    announce("Logged out");
    return;
  }
  // The session may still be open on the server: say so, and leave the way
  // back (the name form's Reconnect) and another Log out to the person.
  state.status = "disconnected";
  renderStatus();
  notice("error", answer.status === 0
    ? "Could not log out: the server did not answer. Try again."
    : "Could not log out (the server answered " + answer.status + "). Try again.", null);
  dom["logout-btn"].focus();
}

/**
 * After a close (see socket.js): true to reconnect or report as usual; false
 * when the session is gone, after showing the login form.
 */
async function sessionStillThere() {
  if (state.account === null || loggingOut) {
    return false;
  }
  const account = state.account;
  const session = await fetchSession();
  if (state.account !== account) {
    return false; // logged out (or in) meanwhile: that already decided
  }
  if (session.kind === "signed-out") {
    login.showForm("Your session has ended. Please log in again.", true);
    return false;
  }
  if (session.kind === "signed-in" && session.user !== account) {
    // Logged in as someone else in another tab: the cookie is theirs now.
    loggedIn(session.user, session.admin);
    return false;
  }
  // Still logged in, or no answer (server down): the usual reconnecting.
  return true;
}
