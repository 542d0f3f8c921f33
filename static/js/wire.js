/** Sending on the current connection (opening and closing it is socket.js's job). */

import { state } from "./state.js";

/** Sends one command; false when there is no open connection. */
export function sendJson(command) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    return false;
  }
  ws.send(JSON.stringify(command));
  return true;
}
