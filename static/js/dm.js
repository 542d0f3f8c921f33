/** Direct-message mode: the recipient chosen in the user list, shown in the composer. */

import { dom } from "./dom.js";
import { renderUsers } from "./render-people.js";
import { renderComposerHint } from "./render-status.js";
import { state } from "./state.js";

/** Sets the recipient; "" leaves direct-message mode. Oneself cannot be chosen. */
export function setDmTarget(name) {
  if (name && name === state.username) {
    return false;
  }
  state.dmTarget = name || "";
  dom["dm-target"].textContent = state.dmTarget;
  dom["dm-bar"].hidden = !state.dmTarget;
  dom.composer.classList.toggle("dm-mode", !!state.dmTarget);
  renderUsers();
  renderComposerHint();
  return true;
}
