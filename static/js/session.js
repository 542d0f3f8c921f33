/**
 * The server's session endpoints (--auth accounts), as plain answers: no DOM,
 * no page state. The session itself is an HttpOnly cookie the page never sees;
 * the browser sends it with these requests and with the WebSocket upgrade.
 *
 *   GET  /session  200 {"auth":"accounts","user":"alice","admin":false}
 *                  401 {"auth":"accounts","error":"not logged in"}
 *                  200 {"auth":"open"} or {"auth":"token"} in the other modes;
 *                  404 from a server older than /session, which is open mode
 *   POST /login    name=...&password=... (a form body): 303 to / with the
 *                  cookie; 401 wrong name or password; 429 and 503 with
 *                  Retry-After; 403 from another site
 *   POST /logout   303 to /, the cookie cleared and the session ended
 */

/**
 * What GET /session says, as { kind, ... }:
 *   { kind: "open" } / { kind: "token" }: not the accounts mode (unknown future
 *     modes come back as their own name and are treated like open);
 *   { kind: "signed-in", user, admin }: logged in (accounts mode);
 *   { kind: "signed-out" }: accounts mode, not logged in;
 *   { kind: "busy", retryAfter }: accounts mode, the server cannot answer now;
 *   { kind: "unreachable" }: no usable answer (network down, server error).
 */
export async function fetchSession() {
  let response;
  try {
    response = await fetch("session", {
      cache: "no-store",
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    });
  } catch (e) {
    return { kind: "unreachable" };
  }
  if (response.status === 404) {
    return { kind: "open" };
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!body || typeof body.auth !== "string") {
    // Not this server's JSON: an older server (or a proxy's page) answering 200
    // is open mode; an error without the mode says nothing.
    return { kind: response.ok ? "open" : "unreachable" };
  }
  if (body.auth !== "accounts") {
    return { kind: body.auth };
  }
  if (response.ok && typeof body.user === "string" && body.user !== "") {
    return { kind: "signed-in", user: body.user, admin: body.admin === true };
  }
  if (response.status === 401) {
    return { kind: "signed-out" };
  }
  return { kind: "busy", retryAfter: retryAfterSeconds(response) };
}

/**
 * Posts the login form's fields as the form itself would (a urlencoded body).
 * fetch follows the 303 to the page, so success is a 2xx at the end of it.
 * Returns { ok, status, retryAfter } (status 0: the server did not answer).
 */
export async function logIn(name, password) {
  const body = new URLSearchParams();
  body.set("name", name);
  body.set("password", password);
  return post("login", body.toString());
}

/** Ends the session on the server (which also clears the cookie). Same answer as logIn. */
export async function logOut() {
  return post("logout", "");
}

async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      body: body,
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      credentials: "same-origin",
      cache: "no-store",
      redirect: "follow"
    });
  } catch (e) {
    return { ok: false, status: 0, retryAfter: null };
  }
  return { ok: response.ok, status: response.status, retryAfter: retryAfterSeconds(response) };
}

/** Retry-After in whole seconds (either form the header may take), or null. */
function retryAfterSeconds(response) {
  const value = (response.headers.get("Retry-After") || "").trim();
  if (/^\d+$/.test(value)) {
    return Number(value);
  }
  const at = Date.parse(value);
  if (!Number.isNaN(at)) {
    return Math.max(1, Math.ceil((at - Date.now()) / 1000));
  }
  return null;
}
