// Built by scripts/client from clients/typescript/src (openapi-fetch bundled); do not edit.

// node_modules/openapi-fetch/dist/index.mjs
var PATH_PARAM_RE = /\{[^{}]+\}/g;
var supportsRequestInitExt = () => {
  return typeof process === "object" && Number.parseInt(process?.versions?.node?.substring(0, 2)) >= 18 && process.versions.undici;
};
function randomID() {
  return Math.random().toString(36).slice(2, 11);
}
function createClient(clientOptions) {
  let {
    baseUrl = "",
    Request: CustomRequest = globalThis.Request,
    fetch: baseFetch = globalThis.fetch,
    querySerializer: globalQuerySerializer,
    bodySerializer: globalBodySerializer,
    pathSerializer: globalPathSerializer,
    headers: baseHeaders,
    requestInitExt = void 0,
    ...baseOptions
  } = { ...clientOptions };
  requestInitExt = supportsRequestInitExt() ? requestInitExt : void 0;
  baseUrl = removeTrailingSlash(baseUrl);
  const globalMiddlewares = [];
  async function coreFetch(schemaPath, fetchOptions) {
    const {
      baseUrl: localBaseUrl,
      fetch = baseFetch,
      Request: Request2 = CustomRequest,
      headers,
      params = {},
      parseAs = "json",
      querySerializer: requestQuerySerializer,
      bodySerializer = globalBodySerializer ?? defaultBodySerializer,
      pathSerializer: requestPathSerializer,
      body,
      middleware: requestMiddlewares = [],
      ...init
    } = fetchOptions || {};
    let finalBaseUrl = baseUrl;
    if (localBaseUrl) {
      finalBaseUrl = removeTrailingSlash(localBaseUrl) ?? baseUrl;
    }
    let querySerializer = typeof globalQuerySerializer === "function" ? globalQuerySerializer : createQuerySerializer(globalQuerySerializer);
    if (requestQuerySerializer) {
      querySerializer = typeof requestQuerySerializer === "function" ? requestQuerySerializer : createQuerySerializer({
        ...typeof globalQuerySerializer === "object" ? globalQuerySerializer : {},
        ...requestQuerySerializer
      });
    }
    const pathSerializer = requestPathSerializer || globalPathSerializer || defaultPathSerializer;
    const serializedBody = body === void 0 ? void 0 : bodySerializer(
      body,
      // Note: we declare mergeHeaders() both here and below because it’s a bit of a chicken-or-egg situation:
      // bodySerializer() needs all headers so we aren’t dropping ones set by the user, however,
      // the result of this ALSO sets the lowest-priority content-type header. So we re-merge below,
      // setting the content-type at the very beginning to be overwritten.
      // Lastly, based on the way headers work, it’s not a simple “present-or-not” check becauase null intentionally un-sets headers.
      mergeHeaders(baseHeaders, headers, params.header)
    );
    const finalHeaders = mergeHeaders(
      // with no body, we should not to set Content-Type
      serializedBody === void 0 || // if serialized body is FormData; browser will correctly set Content-Type & boundary expression
      serializedBody instanceof FormData ? {} : {
        "Content-Type": "application/json"
      },
      baseHeaders,
      headers,
      params.header
    );
    const finalMiddlewares = [...globalMiddlewares, ...requestMiddlewares];
    const requestInit = {
      redirect: "follow",
      ...baseOptions,
      ...init,
      body: serializedBody,
      headers: finalHeaders
    };
    let id;
    let options;
    let request = new Request2(
      createFinalURL(schemaPath, { baseUrl: finalBaseUrl, params, querySerializer, pathSerializer }),
      requestInit
    );
    let response;
    for (const key in init) {
      if (!(key in request)) {
        request[key] = init[key];
      }
    }
    if (finalMiddlewares.length) {
      id = randomID();
      options = Object.freeze({
        baseUrl: finalBaseUrl,
        fetch,
        parseAs,
        querySerializer,
        bodySerializer,
        pathSerializer
      });
      for (const m of finalMiddlewares) {
        if (m && typeof m === "object" && typeof m.onRequest === "function") {
          const result = await m.onRequest({
            request,
            schemaPath,
            params,
            options,
            id
          });
          if (result) {
            if (result instanceof Request2) {
              request = result;
            } else if (result instanceof Response) {
              response = result;
              break;
            } else {
              throw new Error("onRequest: must return new Request() or Response() when modifying the request");
            }
          }
        }
      }
    }
    if (!response) {
      try {
        response = await fetch(request, requestInitExt);
      } catch (error2) {
        let errorAfterMiddleware = error2;
        if (finalMiddlewares.length) {
          for (let i = finalMiddlewares.length - 1; i >= 0; i--) {
            const m = finalMiddlewares[i];
            if (m && typeof m === "object" && typeof m.onError === "function") {
              const result = await m.onError({
                request,
                error: errorAfterMiddleware,
                schemaPath,
                params,
                options,
                id
              });
              if (result) {
                if (result instanceof Response) {
                  errorAfterMiddleware = void 0;
                  response = result;
                  break;
                }
                if (result instanceof Error) {
                  errorAfterMiddleware = result;
                  continue;
                }
                throw new Error("onError: must return new Response() or instance of Error");
              }
            }
          }
        }
        if (errorAfterMiddleware) {
          throw errorAfterMiddleware;
        }
      }
      if (finalMiddlewares.length) {
        for (let i = finalMiddlewares.length - 1; i >= 0; i--) {
          const m = finalMiddlewares[i];
          if (m && typeof m === "object" && typeof m.onResponse === "function") {
            const result = await m.onResponse({
              request,
              response,
              schemaPath,
              params,
              options,
              id
            });
            if (result) {
              if (!(result instanceof Response)) {
                throw new Error("onResponse: must return new Response() when modifying the response");
              }
              response = result;
            }
          }
        }
      }
    }
    const contentLength = response.headers.get("Content-Length");
    if (response.status === 204 || request.method === "HEAD" || contentLength === "0" && !response.headers.get("Transfer-Encoding")?.includes("chunked")) {
      return response.ok ? { data: void 0, response } : { error: void 0, response };
    }
    if (response.ok) {
      const getResponseData = async () => {
        if (parseAs === "stream") {
          return response.body;
        }
        if (parseAs === "json" && !contentLength) {
          const raw = await response.text();
          return raw ? JSON.parse(raw) : void 0;
        }
        return await response[parseAs]();
      };
      return { data: await getResponseData(), response };
    }
    let error = await response.text();
    try {
      error = JSON.parse(error);
    } catch {
    }
    return { error, response };
  }
  return {
    request(method, url, init) {
      return coreFetch(url, { ...init, method: method.toUpperCase() });
    },
    /** Call a GET endpoint */
    GET(url, init) {
      return coreFetch(url, { ...init, method: "GET" });
    },
    /** Call a PUT endpoint */
    PUT(url, init) {
      return coreFetch(url, { ...init, method: "PUT" });
    },
    /** Call a POST endpoint */
    POST(url, init) {
      return coreFetch(url, { ...init, method: "POST" });
    },
    /** Call a DELETE endpoint */
    DELETE(url, init) {
      return coreFetch(url, { ...init, method: "DELETE" });
    },
    /** Call a OPTIONS endpoint */
    OPTIONS(url, init) {
      return coreFetch(url, { ...init, method: "OPTIONS" });
    },
    /** Call a HEAD endpoint */
    HEAD(url, init) {
      return coreFetch(url, { ...init, method: "HEAD" });
    },
    /** Call a PATCH endpoint */
    PATCH(url, init) {
      return coreFetch(url, { ...init, method: "PATCH" });
    },
    /** Call a TRACE endpoint */
    TRACE(url, init) {
      return coreFetch(url, { ...init, method: "TRACE" });
    },
    /** Register middleware */
    use(...middleware) {
      for (const m of middleware) {
        if (!m) {
          continue;
        }
        if (typeof m !== "object" || !("onRequest" in m || "onResponse" in m || "onError" in m)) {
          throw new Error("Middleware must be an object with one of `onRequest()`, `onResponse() or `onError()`");
        }
        globalMiddlewares.push(m);
      }
    },
    /** Unregister middleware */
    eject(...middleware) {
      for (const m of middleware) {
        const i = globalMiddlewares.indexOf(m);
        if (i !== -1) {
          globalMiddlewares.splice(i, 1);
        }
      }
    }
  };
}
function serializePrimitiveParam(name, value, options) {
  if (value === void 0 || value === null) {
    return "";
  }
  if (typeof value === "object") {
    throw new Error(
      "Deeply-nested arrays/objects aren\u2019t supported. Provide your own `querySerializer()` to handle these."
    );
  }
  return `${name}=${options?.allowReserved === true ? value : encodeURIComponent(value)}`;
}
function serializeObjectParam(name, value, options) {
  if (!value || typeof value !== "object") {
    return "";
  }
  const values = [];
  const joiner = {
    simple: ",",
    label: ".",
    matrix: ";"
  }[options.style] || "&";
  if (options.style !== "deepObject" && options.explode === false) {
    for (const k in value) {
      values.push(k, options.allowReserved === true ? value[k] : encodeURIComponent(value[k]));
    }
    const final2 = values.join(",");
    switch (options.style) {
      case "form": {
        return `${name}=${final2}`;
      }
      case "label": {
        return `.${final2}`;
      }
      case "matrix": {
        return `;${name}=${final2}`;
      }
      default: {
        return final2;
      }
    }
  }
  for (const k in value) {
    const finalName = options.style === "deepObject" ? `${name}[${k}]` : k;
    values.push(serializePrimitiveParam(finalName, value[k], options));
  }
  const final = values.join(joiner);
  return options.style === "label" || options.style === "matrix" ? `${joiner}${final}` : final;
}
function serializeArrayParam(name, value, options) {
  if (!Array.isArray(value)) {
    return "";
  }
  if (options.explode === false) {
    const joiner2 = { form: ",", spaceDelimited: "%20", pipeDelimited: "|" }[options.style] || ",";
    const final = (options.allowReserved === true ? value : value.map((v) => encodeURIComponent(v))).join(joiner2);
    switch (options.style) {
      case "simple": {
        return final;
      }
      case "label": {
        return `.${final}`;
      }
      case "matrix": {
        return `;${name}=${final}`;
      }
      // case "spaceDelimited":
      // case "pipeDelimited":
      default: {
        return `${name}=${final}`;
      }
    }
  }
  const joiner = { simple: ",", label: ".", matrix: ";" }[options.style] || "&";
  const values = [];
  for (const v of value) {
    if (options.style === "simple" || options.style === "label") {
      values.push(options.allowReserved === true ? v : encodeURIComponent(v));
    } else {
      values.push(serializePrimitiveParam(name, v, options));
    }
  }
  return options.style === "label" || options.style === "matrix" ? `${joiner}${values.join(joiner)}` : values.join(joiner);
}
function createQuerySerializer(options) {
  return function querySerializer(queryParams) {
    const search = [];
    if (queryParams && typeof queryParams === "object") {
      for (const name in queryParams) {
        const value = queryParams[name];
        if (value === void 0 || value === null) {
          continue;
        }
        if (Array.isArray(value)) {
          if (value.length === 0) {
            continue;
          }
          search.push(
            serializeArrayParam(name, value, {
              style: "form",
              explode: true,
              ...options?.array,
              allowReserved: options?.allowReserved || false
            })
          );
          continue;
        }
        if (typeof value === "object") {
          search.push(
            serializeObjectParam(name, value, {
              style: "deepObject",
              explode: true,
              ...options?.object,
              allowReserved: options?.allowReserved || false
            })
          );
          continue;
        }
        search.push(serializePrimitiveParam(name, value, options));
      }
    }
    return search.join("&");
  };
}
function defaultPathSerializer(pathname, pathParams) {
  let nextURL = pathname;
  for (const match of pathname.match(PATH_PARAM_RE) ?? []) {
    let name = match.substring(1, match.length - 1);
    let explode = false;
    let style = "simple";
    if (name.endsWith("*")) {
      explode = true;
      name = name.substring(0, name.length - 1);
    }
    if (name.startsWith(".")) {
      style = "label";
      name = name.substring(1);
    } else if (name.startsWith(";")) {
      style = "matrix";
      name = name.substring(1);
    }
    if (!pathParams || pathParams[name] === void 0 || pathParams[name] === null) {
      continue;
    }
    const value = pathParams[name];
    if (Array.isArray(value)) {
      nextURL = nextURL.replace(match, serializeArrayParam(name, value, { style, explode }));
      continue;
    }
    if (typeof value === "object") {
      nextURL = nextURL.replace(match, serializeObjectParam(name, value, { style, explode }));
      continue;
    }
    if (style === "matrix") {
      nextURL = nextURL.replace(match, `;${serializePrimitiveParam(name, value)}`);
      continue;
    }
    nextURL = nextURL.replace(match, style === "label" ? `.${encodeURIComponent(value)}` : encodeURIComponent(value));
  }
  return nextURL;
}
function defaultBodySerializer(body, headers) {
  if (body instanceof FormData) {
    return body;
  }
  if (headers) {
    const contentType = headers.get instanceof Function ? headers.get("Content-Type") ?? headers.get("content-type") : headers["Content-Type"] ?? headers["content-type"];
    if (contentType === "application/x-www-form-urlencoded") {
      return new URLSearchParams(body).toString();
    }
  }
  return JSON.stringify(body);
}
function createFinalURL(pathname, options) {
  let finalURL = `${options.baseUrl}${pathname}`;
  if (options.params?.path) {
    finalURL = options.pathSerializer(finalURL, options.params.path);
  }
  let search = options.querySerializer(options.params.query ?? {});
  if (search.startsWith("?")) {
    search = search.substring(1);
  }
  if (search) {
    finalURL += `?${search}`;
  }
  return finalURL;
}
function mergeHeaders(...allHeaders) {
  const finalHeaders = new Headers();
  for (const h of allHeaders) {
    if (!h || typeof h !== "object") {
      continue;
    }
    const iterator = h instanceof Headers ? h.entries() : Object.entries(h);
    for (const [k, v] of iterator) {
      if (v === null) {
        finalHeaders.delete(k);
      } else if (Array.isArray(v)) {
        for (const v2 of v) {
          finalHeaders.append(k, v2);
        }
      } else if (v !== void 0) {
        finalHeaders.set(k, v);
      }
    }
  }
  return finalHeaders;
}
function removeTrailingSlash(url) {
  if (url.endsWith("/")) {
    return url.substring(0, url.length - 1);
  }
  return url;
}

// src/index.ts
function memoryTokens() {
  let kept;
  return { get: () => kept, set: (tokens) => {
    kept = tokens;
  } };
}
var ProblemError = class extends Error {
  status;
  /** The problem type's last segment, e.g. `precondition-failed`, `outcome-unknown`. */
  kind;
  problem;
  constructor(status, problem) {
    super(`${status} ${problem.title ?? "error"}: ${problem.detail ?? ""}`.trim());
    this.name = "ProblemError";
    this.status = status;
    this.kind = problemKind(problem);
    this.problem = problem;
  }
};
var SignedOutError = class extends Error {
  constructor(message = "the session has ended; sign in again") {
    super(message);
    this.name = "SignedOutError";
  }
};
function must(answer) {
  if (answer.error !== void 0 || !answer.response.ok) {
    const body = typeof answer.error === "object" && answer.error !== null ? answer.error : {};
    throw new ProblemError(answer.response.status, body);
  }
  return answer.data;
}
function etagOf(answer) {
  return answer.response.headers.get("ETag") ?? void 0;
}
function ifMatch(version) {
  return { "If-Match": typeof version === "number" ? `"${version}"` : version };
}
var SAFE = /* @__PURE__ */ new Set(["GET", "HEAD", "OPTIONS"]);
var CSRF_COOKIE = "__Host-bl_csrf";
var RENEW_AHEAD_MS = 3e4;
var LIVED_MS = 1e3;
var Bountyline = class {
  /** Every route of the v1 API, typed from the OpenAPI document. */
  api;
  baseUrl;
  session;
  tokens;
  retries;
  backoffMs;
  onSignedOut;
  onSession;
  fetch;
  csrf;
  cookieExpiresAt = 0;
  cookieRenewAt = 0;
  refreshing;
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl ?? "").replace(/\/$/, "");
    this.session = options.session ?? "token";
    this.tokens = options.tokens ?? memoryTokens();
    this.retries = options.retries ?? 4;
    this.backoffMs = options.backoffMs ?? 200;
    this.onSignedOut = options.onSignedOut;
    this.onSession = options.onSession;
    const base = options.fetch ?? globalThis.fetch;
    this.fetch = (input, init) => base(input, init);
    this.api = createClient({
      baseUrl: this.baseUrl,
      fetch: (request) => this.send(request)
    });
  }
  /** Whether a session is held (for a cookie session: whether its CSRF token is known). */
  get signedIn() {
    return this.session === "cookie" ? this.csrfToken() !== void 0 : !!this.tokens.get();
  }
  /** When the session's access token expires (ms since the epoch; 0 when not known). */
  get expiresAt() {
    return this.session === "cookie" ? this.cookieExpiresAt : this.tokens.get()?.expires_at ?? 0;
  }
  /** Signs in; a wrong email or password throws a {@link ProblemError} (401). */
  async login(email, password) {
    const body = { email, password };
    if (this.session === "cookie") body.session = "cookie";
    const response = await this.fetch(`${this.baseUrl}/v1/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    });
    await this.keepSession(response);
  }
  /** Renews the session now. Concurrent callers share one refresh. */
  refresh() {
    this.refreshing ??= this.renew().finally(() => {
      this.refreshing = void 0;
    });
    return this.refreshing;
  }
  /** Ends the session on the server (its refresh token and every one rotated from it). */
  async logout() {
    const tokens = this.tokens.get();
    try {
      if (this.session === "cookie") {
        await this.fetch(`${this.baseUrl}/v1/auth/logout`, this.cookiePost());
      } else if (tokens) {
        await this.fetch(`${this.baseUrl}/v1/auth/logout`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: tokens.refresh_token })
        });
      }
    } finally {
      this.forget();
    }
  }
  /**
   * Follows an SSE topic (`stats`, `bounties`, `workers`, `events`, …), reconnecting by itself
   * and resuming after the last id it handed out, so nothing is missed or repeated across a
   * dropped connection, a server restart or an expired token.
   */
  async *stream(topic, options = {}) {
    const { signal, onOpen, onDrop } = options;
    let lastEventId = options.lastEventId;
    let reconnectMs = options.reconnectMs ?? 1e3;
    let failures = 0;
    while (!signal?.aborted) {
      let response;
      try {
        const headers = new Headers({ Accept: "text/event-stream" });
        if (lastEventId) headers.set("Last-Event-ID", lastEventId);
        const request = await this.authorize(
          new Request(`${this.baseUrl}/v1/streams/${encodeURIComponent(topic)}`, {
            headers,
            signal,
            credentials: "same-origin"
          })
        );
        response = await this.fetch(request);
      } catch (err) {
        if (signal?.aborted) return;
        if (err instanceof SignedOutError) throw err;
        await sleep(backoff(reconnectMs, failures++), signal);
        continue;
      }
      if (response.status === 401 && this.canRenew()) {
        await response.body?.cancel();
        await this.refresh();
        continue;
      }
      if (!response.ok || !response.body) {
        const wait = retryAfterMs(response);
        if (wait === void 0) throw await problemOf(response);
        await response.body?.cancel();
        await sleep(wait, signal);
        continue;
      }
      failures = 0;
      const opened = Date.now();
      onOpen?.();
      try {
        for await (const field of sseMessages(response.body, signal)) {
          if (field.retry !== void 0) reconnectMs = field.retry;
          if (field.message) {
            if (field.message.id) lastEventId = field.message.id;
            yield field.message;
          }
        }
      } catch (err) {
        if (signal?.aborted) return;
        void err;
      }
      if (signal?.aborted) return;
      onDrop?.();
      if (Date.now() - opened < LIVED_MS) await sleep(backoff(reconnectMs, failures++), signal);
    }
  }
  // -------------------------------------------------------------------------------------------
  // The transport under `api`.
  /** Sends one call: authorised, with an Idempotency-Key if it is a command, retried while its
   * outcome is unknown, renewed and sent once more on a 401. */
  async send(request) {
    const command = !SAFE.has(request.method);
    const path = new URL(request.url, "http://origin.invalid").pathname;
    const auth = path.startsWith("/v1/auth/");
    if (command && !auth && !request.headers.has("Idempotency-Key")) {
      request.headers.set("Idempotency-Key", randomKey());
    }
    const repeatable = !command || request.headers.has("Idempotency-Key");
    let renewed = false;
    for (let attempt = 0; ; attempt++) {
      const tries = repeatable && attempt < this.retries;
      let response;
      try {
        response = await this.fetch(await this.authorize(request.clone()));
      } catch (err) {
        if (!tries || request.signal?.aborted || err instanceof SignedOutError) throw err;
        await sleep(backoff(this.backoffMs, attempt), request.signal);
        continue;
      }
      if (response.status === 401 && !auth && !renewed && this.canRenew()) {
        renewed = true;
        await response.body?.cancel();
        await this.refresh();
        attempt--;
        continue;
      }
      if (tries && await unknownOutcome(response)) {
        await response.body?.cancel();
        await sleep(retryAfterMs(response) ?? backoff(this.backoffMs, attempt), request.signal);
        continue;
      }
      return response;
    }
  }
  /** The session's credentials on a request: a bearer token (renewed first when it is about to
   * expire), or for a cookie session the CSRF token on commands. */
  async authorize(request) {
    if (this.session === "cookie") {
      if (this.cookieRenewAt && Date.now() >= this.cookieRenewAt) await this.refresh();
      const csrf = this.csrfToken();
      if (csrf && !SAFE.has(request.method)) request.headers.set("X-CSRF-Token", csrf);
      return request;
    }
    if (request.headers.has("Authorization")) return request;
    let tokens = this.tokens.get();
    if (tokens?.refresh_token && tokens.renew_at && Date.now() >= tokens.renew_at) {
      await this.refresh();
      tokens = this.tokens.get();
    }
    if (tokens) request.headers.set("Authorization", `Bearer ${tokens.access_token}`);
    return request;
  }
  canRenew() {
    return this.session === "cookie" ? this.csrfToken() !== void 0 : !!this.tokens.get()?.refresh_token;
  }
  async renew() {
    let response;
    if (this.session === "cookie") {
      response = await this.fetch(`${this.baseUrl}/v1/auth/refresh`, this.cookiePost());
    } else {
      const tokens = this.tokens.get();
      if (!tokens?.refresh_token) throw new SignedOutError();
      response = await this.fetch(`${this.baseUrl}/v1/auth/refresh`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: tokens.refresh_token })
      });
    }
    if (response.status === 401) {
      await response.body?.cancel();
      this.forget();
      this.onSignedOut?.();
      throw new SignedOutError();
    }
    await this.keepSession(response);
  }
  async keepSession(response) {
    if (!response.ok) throw await problemOf(response);
    const body = await response.json();
    const lifetime = body.expires_in * 1e3;
    const expires_at = Date.now() + lifetime;
    const renew_at = expires_at - Math.min(RENEW_AHEAD_MS, lifetime / 4);
    if (this.session === "cookie") {
      this.csrf = body.csrf_token;
      this.cookieExpiresAt = expires_at;
      this.cookieRenewAt = renew_at;
    } else if (body.access_token && body.refresh_token) {
      this.tokens.set({ access_token: body.access_token, refresh_token: body.refresh_token, expires_at, renew_at });
    }
    this.onSession?.(expires_at);
  }
  forget() {
    this.tokens.set(void 0);
    this.csrf = void 0;
    this.cookieExpiresAt = 0;
    this.cookieRenewAt = 0;
  }
  cookiePost() {
    const headers = { "Content-Type": "application/json" };
    const csrf = this.csrfToken();
    if (csrf) headers["X-CSRF-Token"] = csrf;
    return { method: "POST", headers, body: "{}", credentials: "same-origin" };
  }
  /** The CSRF token: from the last sign-in or refresh, or after a reload from its cookie (a
   * page may read it; it proves nothing without the httpOnly session cookie beside it). */
  csrfToken() {
    if (this.csrf) return this.csrf;
    const cookies = globalThis.document?.cookie ?? "";
    for (const pair of cookies.split(";")) {
      const [name, ...value] = pair.trim().split("=");
      if (name === CSRF_COOKIE && value.length) return decodeURIComponent(value.join("="));
    }
    return void 0;
  }
};
function createClient2(options = {}) {
  return new Bountyline(options);
}
function problemKind(problem) {
  return typeof problem.type === "string" ? problem.type.split("/").pop() ?? "" : "";
}
async function problemOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
  }
  return new ProblemError(response.status, body);
}
async function unknownOutcome(response) {
  if ([502, 503, 504].includes(response.status)) return true;
  if (response.status === 429) return retryAfterMs(response) !== void 0;
  if (response.status !== 409) return false;
  try {
    const problem = await response.clone().json();
    return problemKind(problem) === "request-in-progress";
  } catch {
    return false;
  }
}
function retryAfterMs(response) {
  const value = response.headers.get("Retry-After");
  if (value === null || !/^\d+$/.test(value.trim())) return void 0;
  return Math.min(Number(value) * 1e3, 3e4);
}
function backoff(firstMs, attempt) {
  const ms = firstMs * 2 ** Math.min(attempt, 6);
  return ms / 2 + Math.random() * (ms / 2);
}
function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
function randomKey() {
  return globalThis.crypto.randomUUID();
}
async function* sseMessages(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const abort = () => void reader.cancel().catch(() => void 0);
  signal?.addEventListener("abort", abort, { once: true });
  let buffer = "";
  let id = "";
  let event = "";
  let data = [];
  try {
    for (; ; ) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
        if (buffer[end] === "\r" && end === buffer.length - 1) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (data.length) {
            const text = data.join("\n");
            yield {
              message: {
                id,
                event: event || "message",
                data: text,
                json: () => JSON.parse(text)
              }
            };
          }
          event = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let value2 = colon < 0 ? "" : line.slice(colon + 1);
        if (value2.startsWith(" ")) value2 = value2.slice(1);
        if (name === "data") data.push(value2);
        else if (name === "event") event = value2;
        else if (name === "id" && !value2.includes("\0")) id = value2;
        else if (name === "retry" && /^\d+$/.test(value2)) yield { retry: Number(value2) };
      }
    }
  } finally {
    signal?.removeEventListener("abort", abort);
    await reader.cancel().catch(() => void 0);
  }
}
export {
  Bountyline,
  ProblemError,
  SignedOutError,
  createClient2 as createClient,
  etagOf,
  ifMatch,
  memoryTokens,
  must
};
