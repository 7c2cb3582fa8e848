// The cloud API: the bearer token kept in localStorage, JSON requests and their error text.

const TOKEN_KEY = "cellwarden.token";
const ORG_KEY = "cellwarden.org";

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
  get org() {
    const stored = Number(localStorage.getItem(ORG_KEY));
    return Number.isInteger(stored) && stored > 0 ? stored : null;
  },
  set org(value) {
    if (value) localStorage.setItem(ORG_KEY, String(value));
    else localStorage.removeItem(ORG_KEY);
  },
};

/** A refused or failed request; ``message`` is the API's own explanation. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }

  /** ``Refused (403): this needs the operator role …`` */
  describe() {
    if (this.status === 0) return this.message;
    const what = this.status >= 500 ? "Server error" : "Refused";
    return `${what} (${this.status}): ${this.message}`;
  }
}

const listeners = new Set();

/** ``fn(error)`` runs whenever the API answers 401 (a token it does not know). */
export function onUnauthorised(fn) {
  listeners.add(fn);
}

/** A request to the API; the parsed JSON answer, or the Response itself with ``raw``. */
export async function api(path, { method = "GET", body, token, raw = false, signal } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token ?? session.token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `the server cannot be reached (${error.message})`);
  }
  if (!response.ok) {
    const error = new ApiError(response.status, await errorText(response));
    if (response.status === 401 && token === undefined) listeners.forEach((fn) => fn(error));
    throw error;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

/** The ``detail`` of a FastAPI error (a sentence, or validation errors), else the body. */
async function errorText(response) {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // the body is gone: the status line has to do
  }
  try {
    const detail = JSON.parse(text).detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item) => `${(item.loc ?? []).slice(1).join(".") || "request"}: ${item.msg}`)
        .join("; ");
    }
  } catch {
    // not JSON: fall through
  }
  return text.trim().slice(0, 300) || response.statusText || "no reason given";
}

/** Query string of the defined values of ``params``. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Fetch a file with the token and hand it to the browser as a download. */
export async function download(path, fallbackName) {
  const response = await api(path, { raw: true });
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallbackName;
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
  return { name, size: blob.size };
}
