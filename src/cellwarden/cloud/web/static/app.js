// The dashboard's shell: sign-in with an API token, the organisation chooser and hash routes
// (`#/` fleet, `#/pack/{device_id}`, `#/alarms`, `#/analytics[/{fleet_id}]`,
// `#/updates[/{campaign_id}]`).

import { alarmsView } from "./alarms.js";
import { analyticsView } from "./analytics.js";
import { ApiError, api, onUnauthorised, session } from "./api.js";
import { overviewView } from "./overview.js";
import { packView } from "./pack.js";
import { updatesView } from "./updates.js";
import { clear, h, hideTooltip } from "./util.js";

const state = { me: null, cleanup: null, signInMessage: "" };
const view = document.getElementById("view");
const nav = document.getElementById("nav");
const account = document.getElementById("account");
const orgSelect = document.getElementById("org-select");
const userName = document.getElementById("user-name");

function currentOrg() {
  const orgs = state.me?.organisations ?? [];
  return orgs.find((o) => o.id === session.org) ?? orgs[0] ?? null;
}

function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function signOut(message = "") {
  session.token = null;
  state.me = null;
  state.signInMessage = message;
  render();
}

function renderHeader() {
  const signedIn = Boolean(state.me);
  nav.hidden = !signedIn;
  account.hidden = !signedIn;
  if (!signedIn) return;
  const org = currentOrg();
  clear(orgSelect);
  for (const o of state.me.organisations) {
    orgSelect.append(h("option", { value: String(o.id), selected: o.id === org?.id }, `${o.name ?? o.id} (${o.role})`));
  }
  orgSelect.disabled = state.me.organisations.length < 2;
  userName.textContent = `${state.me.name}${org ? ` · ${org.role}` : ""}`;
  const hash = location.hash || "#/";
  const section = ["alarms", "analytics", "updates"].find((name) => hash.startsWith(`#/${name}`)) ?? "fleet";
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function signInView(root) {
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "data-testid": "token-input",
    "aria-describedby": "token-help",
  });
  const error = h("p", { class: "error", role: "alert", "data-testid": "signin-error" }, state.signInMessage);
  const button = h("button", { type: "submit", class: "primary", "data-testid": "sign-in" }, "Sign in");
  const form = h(
    "form",
    { class: "panel signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h(
      "p",
      { id: "token-help", class: "muted" },
      "Paste your API token (",
      h("code", {}, "cellwarden cloud users add"),
      " prints it, or an admin creates one). It is kept in this browser's local storage " +
        "until you sign out.",
    ),
    h("label", { for: "token" }, "API token"),
    input,
    button,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    button.disabled = true;
    error.textContent = "";
    try {
      const me = await api("/api/v1/me", { token });
      session.token = token;
      state.me = me;
      state.signInMessage = "";
      if (!me.organisations.some((o) => o.id === session.org)) session.org = me.organisations[0]?.id ?? null;
      render();
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.status === 401
          ? `This token was not accepted: ${err.message}.`
          : err instanceof ApiError
            ? err.describe()
            : String(err);
      button.disabled = false;
    }
  });
  root.append(form);
  input.focus();
  document.title = "Sign in — cellwarden";
  return null;
}

function render() {
  state.cleanup?.();
  state.cleanup = null;
  hideTooltip();
  clear(view);
  renderHeader();
  if (!session.token || !state.me) {
    state.cleanup = signInView(view);
    return;
  }
  const org = currentOrg();
  if (!org) {
    view.append(h("p", { class: "error", role: "alert" }, `${state.me.name} has no role in any organisation yet.`));
    return;
  }
  const context = { org, me: state.me, navigate };
  const hash = location.hash || "#/";
  const pack = /^#\/pack\/([^/]+)$/.exec(hash);
  const analytics = /^#\/analytics(?:\/([1-9]\d{0,15}))?$/.exec(hash);
  const updates = /^#\/updates(?:\/([1-9]\d{0,15}))?$/.exec(hash);
  if (pack) {
    state.cleanup = packView(view, context, decodeURIComponent(pack[1]));
  } else if (analytics) {
    document.title = "Fleet analytics — cellwarden";
    state.cleanup = analyticsView(view, context, analytics[1] ? Number(analytics[1]) : null);
  } else if (updates) {
    document.title = "Updates — cellwarden";
    state.cleanup = updatesView(view, context, updates[1] ? Number(updates[1]) : null);
  } else if (hash === "#/alarms") {
    document.title = "Alarms — cellwarden";
    state.cleanup = alarmsView(view, context);
  } else if (hash === "#/" || hash === "#") {
    document.title = "Fleet — cellwarden";
    state.cleanup = overviewView(view, context);
  } else {
    view.append(
      h("h1", { class: "page-title" }, "Page not found"),
      h("p", {}, "There is no page at ", h("code", {}, hash), ". ", h("a", { href: "#/" }, "Go to the fleet overview"), "."),
    );
  }
}

async function start() {
  window.addEventListener("hashchange", render);
  document.getElementById("sign-out").addEventListener("click", () => signOut("You signed out."));
  orgSelect.addEventListener("change", () => {
    session.org = Number(orgSelect.value);
    render();
  });
  if (session.token) {
    try {
      state.me = await api("/api/v1/me", { token: session.token });
      if (!state.me.organisations.some((o) => o.id === session.org)) {
        session.org = state.me.organisations[0]?.id ?? null;
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        session.token = null;
        state.signInMessage = `Your saved token was not accepted: ${error.message}.`;
      } else {
        state.signInMessage = error instanceof ApiError ? error.describe() : String(error);
      }
    }
  }
  onUnauthorised((error) => signOut(`Signed out: the API no longer accepts your token (${error.message}).`));
  render();
}

start();
