// The admin API, as the console's only source of data. The token (RELAY_ADMIN_TOKEN) is kept in
// this tab's sessionStorage and sent as a bearer header on every call: no cookie, so no request
// from another site can ride on a session.

const TOKEN_KEY = "relay-admin-token";

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Calls the admin API: the parsed JSON of a 2xx answer; throws AuthError on 401, ApiError otherwise. */
export async function api(path, { method = "GET", body, tokenOverride } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = tokenOverride ?? token();
  if (bearer) headers.Authorization = "Bearer " + bearer;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store", credentials: "omit" });
  } catch (error) {
    throw new ApiError(0, "cannot reach the relay: " + error.message);
  }
  let json = null;
  try { json = await response.json(); } catch { json = null; }
  if (response.status === 401) throw new AuthError((json && json.error) || "the relay refused the token");
  if (!response.ok) throw new ApiError(response.status, (json && json.error) || `the relay answered ${response.status}`);
  return json;
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    search.append(key, String(value));
  }
  const text = search.toString();
  return text ? "?" + text : "";
}
