/**
 * The bountyline client.
 *
 * What is generated: `paths` and `components` (src/schema.ts) come from the server's OpenAPI
 * document by openapi-typescript, and every call goes through openapi-fetch, typed by path and
 * method: `bl.api.POST('/v1/tasks', { body })` takes only the body the document describes and
 * answers its documented types. `scripts/client generate` makes them again; `scripts/client
 * check` fails when they are out of date with the document.
 *
 * What is written by hand (this file), because a generator cannot know it:
 * - sessions: bearer tokens refreshed before they expire and once on a 401, single-flight
 *   (refresh tokens rotate: two refreshes at once would end the session), or an httpOnly cookie
 *   session whose commands carry the CSRF token;
 * - at most once: every command gets an `Idempotency-Key` and is sent again under the same key
 *   when its outcome is unknown (a lost connection, a 503, a 502/504 from a proxy, a request
 *   still in progress), so a retry never acts twice;
 * - `If-Match` from a read's `ETag` ({@link etagOf}, {@link ifMatch});
 * - SSE streams read over fetch (headers, not a token in the URL) that reconnect by
 *   themselves and resume with `Last-Event-ID` ({@link Bountyline.stream}).
 */
import createFetchClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema.js';

export type { components, paths };
export type Schemas = components['schemas'];
export type Problem = Schemas['Problem'];

/** A bearer session: what the store keeps between calls (and, if it wants, between pages). */
export interface Tokens {
  access_token: string;
  /** Empty when the session cannot be renewed (a token handed over without one). */
  refresh_token: string;
  /** Milliseconds since the epoch when the access token expires (0: unknown). */
  expires_at: number;
  /** Milliseconds since the epoch from when it is renewed before a call (0: only on a 401). */
  renew_at: number;
}

/** Where a token session is kept. The default keeps it in memory only. */
export interface TokenStore {
  get(): Tokens | undefined;
  set(tokens: Tokens | undefined): void;
}

export function memoryTokens(): TokenStore {
  let kept: Tokens | undefined;
  return { get: () => kept, set: (tokens) => { kept = tokens; } };
}

export interface Options {
  /** The API's origin, e.g. `http://127.0.0.1:8080`; empty (the default) for the page's own. */
  baseUrl?: string;
  /**
   * `token` (the default): bearer tokens held by the {@link TokenStore}. `cookie`: the server
   * keeps the session in httpOnly cookies that no script can read (browsers, same origin).
   */
  session?: 'token' | 'cookie';
  tokens?: TokenStore;
  /** How many times a call whose outcome is unknown is sent again (default 4). */
  retries?: number;
  /** The first wait before a retry, doubled each time (default 200 ms); Retry-After wins. */
  backoffMs?: number;
  /** Called once when the session has ended for good (a refresh refused). */
  onSignedOut?: () => void;
  /** Called after each sign-in and renewal with when the new access token expires. */
  onSession?: (expiresAt: number) => void;
  /** The fetch to use (default: the global one). */
  fetch?: typeof globalThis.fetch;
}

/** A refusal or fault, as the server's problem document describes it. */
export class ProblemError extends Error {
  readonly status: number;
  /** The problem type's last segment, e.g. `precondition-failed`, `outcome-unknown`. */
  readonly kind: string;
  readonly problem: Partial<Problem> & Record<string, unknown>;

  constructor(status: number, problem: Partial<Problem> & Record<string, unknown>) {
    super(`${status} ${problem.title ?? 'error'}: ${problem.detail ?? ''}`.trim());
    this.name = 'ProblemError';
    this.status = status;
    this.kind = problemKind(problem);
    this.problem = problem;
  }
}

/** The session ended and could not be renewed: sign in again. */
export class SignedOutError extends Error {
  constructor(message = 'the session has ended; sign in again') {
    super(message);
    this.name = 'SignedOutError';
  }
}

/** What an openapi-fetch call answers. */
interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The answer's data, or a {@link ProblemError} with the server's problem document. */
export function must<T>(answer: Answer<T>): T {
  if (answer.error !== undefined || !answer.response.ok) {
    const body = typeof answer.error === 'object' && answer.error !== null ? answer.error : {};
    throw new ProblemError(answer.response.status, body as Record<string, unknown>);
  }
  return answer.data as T;
}

/** The strong ETag of a read (`"3"`), to send back as `If-Match`. */
export function etagOf(answer: { response: Response }): string | undefined {
  return answer.response.headers.get('ETag') ?? undefined;
}

/** `If-Match` for a version, from a read's ETag or a command's `version`. */
export function ifMatch(version: string | number): { 'If-Match': string } {
  return { 'If-Match': typeof version === 'number' ? `"${version}"` : version };
}

/** One message of an SSE stream. */
export interface StreamMessage {
  /** The message's id: the event's global position; the stream resumes after it. */
  id: string;
  /** The event's name (`message` when the server named none). */
  event: string;
  data: string;
  json<T = unknown>(): T;
}

export interface StreamOptions {
  /** Resume after this id (a position), as a reconnect does with the last id it saw. */
  lastEventId?: string;
  /** Ends the stream; the generator then returns. */
  signal?: AbortSignal;
  /** Called each time the stream is connected (first and after each reconnect). */
  onOpen?: () => void;
  /** Called each time the connection is lost (before the reconnect). */
  onDrop?: () => void;
  /** The wait before reconnecting when the server named none (default 1000 ms). */
  reconnectMs?: number;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
const CSRF_COOKIE = '__Host-bl_csrf';
/** A session is renewed this long before it expires (or after 3/4 of a shorter lifetime). */
const RENEW_AHEAD_MS = 30_000;
/** A stream the server ended after this long is reopened at once (its session was renewed or
 * its token expired); one ended sooner waits, so a refusing server is not hammered. */
const LIVED_MS = 1_000;

export class Bountyline {
  /** Every route of the v1 API, typed from the OpenAPI document. */
  readonly api: Client<paths>;
  private readonly baseUrl: string;
  private readonly session: 'token' | 'cookie';
  private readonly tokens: TokenStore;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly onSignedOut?: () => void;
  private readonly onSession?: (expiresAt: number) => void;
  private readonly fetch: typeof globalThis.fetch;
  private csrf?: string;
  private cookieExpiresAt = 0;
  private cookieRenewAt = 0;
  private refreshing?: Promise<void>;

  constructor(options: Options = {}) {
    this.baseUrl = (options.baseUrl ?? '').replace(/\/$/, '');
    this.session = options.session ?? 'token';
    this.tokens = options.tokens ?? memoryTokens();
    this.retries = options.retries ?? 4;
    this.backoffMs = options.backoffMs ?? 200;
    this.onSignedOut = options.onSignedOut;
    this.onSession = options.onSession;
    const base = options.fetch ?? globalThis.fetch;
    this.fetch = (input, init) => base(input, init);
    this.api = createFetchClient<paths>({
      baseUrl: this.baseUrl,
      fetch: (request: Request) => this.send(request),
    });
  }

  /** Whether a session is held (for a cookie session: whether its CSRF token is known). */
  get signedIn(): boolean {
    return this.session === 'cookie' ? this.csrfToken() !== undefined : !!this.tokens.get();
  }

  /** When the session's access token expires (ms since the epoch; 0 when not known). */
  get expiresAt(): number {
    return this.session === 'cookie' ? this.cookieExpiresAt : (this.tokens.get()?.expires_at ?? 0);
  }

  /** Signs in; a wrong email or password throws a {@link ProblemError} (401). */
  async login(email: string, password: string): Promise<void> {
    const body: Record<string, string> = { email, password };
    if (this.session === 'cookie') body.session = 'cookie';
    const response = await this.fetch(`${this.baseUrl}/v1/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
    await this.keepSession(response);
  }

  /** Renews the session now. Concurrent callers share one refresh. */
  refresh(): Promise<void> {
    this.refreshing ??= this.renew().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** Ends the session on the server (its refresh token and every one rotated from it). */
  async logout(): Promise<void> {
    const tokens = this.tokens.get();
    try {
      if (this.session === 'cookie') {
        await this.fetch(`${this.baseUrl}/v1/auth/logout`, this.cookiePost());
      } else if (tokens) {
        await this.fetch(`${this.baseUrl}/v1/auth/logout`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ refresh_token: tokens.refresh_token }),
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
  async *stream(topic: string, options: StreamOptions = {}): AsyncGenerator<StreamMessage> {
    const { signal, onOpen, onDrop } = options;
    let lastEventId = options.lastEventId;
    let reconnectMs = options.reconnectMs ?? 1000;
    let failures = 0;
    while (!signal?.aborted) {
      let response: Response;
      try {
        const headers = new Headers({ Accept: 'text/event-stream' });
        if (lastEventId) headers.set('Last-Event-ID', lastEventId);
        const request = await this.authorize(
          new Request(`${this.baseUrl}/v1/streams/${encodeURIComponent(topic)}`, {
            headers,
            signal,
            credentials: 'same-origin',
          }),
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
        if (wait === undefined) throw await problemOf(response);
        await response.body?.cancel();
        await sleep(wait, signal);
        continue;
      }
      failures = 0;
      const opened = Date.now();
      onOpen?.();
      try {
        for await (const field of sseMessages(response.body, signal)) {
          if (field.retry !== undefined) reconnectMs = field.retry;
          if (field.message) {
            if (field.message.id) lastEventId = field.message.id;
            yield field.message;
          }
        }
      } catch (err) {
        if (signal?.aborted) return;
        // A dropped connection: reconnect below, from the last id handed out.
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
  private async send(request: Request): Promise<Response> {
    const command = !SAFE.has(request.method);
    const path = new URL(request.url, 'http://origin.invalid').pathname;
    const auth = path.startsWith('/v1/auth/');
    if (command && !auth && !request.headers.has('Idempotency-Key')) {
      request.headers.set('Idempotency-Key', randomKey());
    }
    // Only a safe call or a keyed command may be sent twice.
    const repeatable = !command || request.headers.has('Idempotency-Key');
    let renewed = false;
    for (let attempt = 0; ; attempt++) {
      const tries = repeatable && attempt < this.retries;
      let response: Response;
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
      if (tries && (await unknownOutcome(response))) {
        await response.body?.cancel();
        await sleep(retryAfterMs(response) ?? backoff(this.backoffMs, attempt), request.signal);
        continue;
      }
      return response;
    }
  }

  /** The session's credentials on a request: a bearer token (renewed first when it is about to
   * expire), or for a cookie session the CSRF token on commands. */
  private async authorize(request: Request): Promise<Request> {
    if (this.session === 'cookie') {
      if (this.cookieRenewAt && Date.now() >= this.cookieRenewAt) await this.refresh();
      const csrf = this.csrfToken();
      if (csrf && !SAFE.has(request.method)) request.headers.set('X-CSRF-Token', csrf);
      return request;
    }
    if (request.headers.has('Authorization')) return request;
    let tokens = this.tokens.get();
    if (tokens?.refresh_token && tokens.renew_at && Date.now() >= tokens.renew_at) {
      await this.refresh();
      tokens = this.tokens.get();
    }
    if (tokens) request.headers.set('Authorization', `Bearer ${tokens.access_token}`);
    return request;
  }

  private canRenew(): boolean {
    return this.session === 'cookie' ? this.csrfToken() !== undefined : !!this.tokens.get()?.refresh_token;
  }

  private async renew(): Promise<void> {
    let response: Response;
    if (this.session === 'cookie') {
      response = await this.fetch(`${this.baseUrl}/v1/auth/refresh`, this.cookiePost());
    } else {
      const tokens = this.tokens.get();
      if (!tokens?.refresh_token) throw new SignedOutError();
      response = await this.fetch(`${this.baseUrl}/v1/auth/refresh`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: tokens.refresh_token }),
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

  private async keepSession(response: Response): Promise<void> {
    if (!response.ok) throw await problemOf(response);
    const body = (await response.json()) as {
      access_token?: string;
      refresh_token?: string;
      expires_in: number;
      csrf_token?: string;
    };
    const lifetime = body.expires_in * 1000;
    const expires_at = Date.now() + lifetime;
    const renew_at = expires_at - Math.min(RENEW_AHEAD_MS, lifetime / 4);
    if (this.session === 'cookie') {
      this.csrf = body.csrf_token;
      this.cookieExpiresAt = expires_at;
      this.cookieRenewAt = renew_at;
    } else if (body.access_token && body.refresh_token) {
      this.tokens.set({ access_token: body.access_token, refresh_token: body.refresh_token, expires_at, renew_at });
    }
    this.onSession?.(expires_at);
  }

  private forget(): void {
    this.tokens.set(undefined);
    this.csrf = undefined;
    this.cookieExpiresAt = 0;
    this.cookieRenewAt = 0;
  }

  private cookiePost(): RequestInit {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    const csrf = this.csrfToken();
    if (csrf) headers['X-CSRF-Token'] = csrf;
    return { method: 'POST', headers, body: '{}', credentials: 'same-origin' };
  }

  /** The CSRF token: from the last sign-in or refresh, or after a reload from its cookie (a
   * page may read it; it proves nothing without the httpOnly session cookie beside it). */
  private csrfToken(): string | undefined {
    if (this.csrf) return this.csrf;
    const cookies = (globalThis as { document?: { cookie?: string } }).document?.cookie ?? '';
    for (const pair of cookies.split(';')) {
      const [name, ...value] = pair.trim().split('=');
      if (name === CSRF_COOKIE && value.length) return decodeURIComponent(value.join('='));
    }
    return undefined;
  }
}

/** A client for the v1 API; see {@link Options}. */
export function createClient(options: Options = {}): Bountyline {
  return new Bountyline(options);
}

// ---------------------------------------------------------------------------------------------
// Helpers.

function problemKind(problem: { type?: unknown }): string {
  return typeof problem.type === 'string' ? (problem.type.split('/').pop() ?? '') : '';
}

async function problemOf(response: Response): Promise<ProblemError> {
  let body: Record<string, unknown> = {};
  try {
    body = (await response.json()) as Record<string, unknown>;
  } catch {
    // Not a problem document (a proxy's page): the status says it all.
  }
  return new ProblemError(response.status, body);
}

/** Whether the server (or a proxy before it) could not say what became of the call. */
async function unknownOutcome(response: Response): Promise<boolean> {
  if ([502, 503, 504].includes(response.status)) return true;
  if (response.status === 429) return retryAfterMs(response) !== undefined;
  if (response.status !== 409) return false;
  try {
    const problem = (await response.clone().json()) as { type?: unknown };
    return problemKind(problem) === 'request-in-progress';
  } catch {
    return false;
  }
}

function retryAfterMs(response: Response): number | undefined {
  const value = response.headers.get('Retry-After');
  if (value === null || !/^\d+$/.test(value.trim())) return undefined;
  return Math.min(Number(value) * 1000, 30_000);
}

function backoff(firstMs: number, attempt: number): number {
  const ms = firstMs * 2 ** Math.min(attempt, 6);
  return ms / 2 + Math.random() * (ms / 2);
}

function sleep(ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

function randomKey(): string {
  return globalThis.crypto.randomUUID();
}

/** The fields of one dispatched SSE message, or a `retry:` the server asked for. */
interface Parsed {
  message?: StreamMessage;
  retry?: number;
}

/** Reads `text/event-stream` as the HTML standard parses it: lines end with CR, LF or CRLF; a
 * blank line dispatches; `:` starts a comment; `data` lines are joined with LF. */
async function* sseMessages(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<Parsed> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const abort = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener('abort', abort, { once: true });
  let buffer = '';
  let id = '';
  let event = '';
  let data: string[] = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A lone CR at the end of the buffer may be the first half of a CRLF.
        if (buffer[end] === '\r' && end === buffer.length - 1) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith('\r\n', end) ? 2 : 1));
        if (line === '') {
          if (data.length) {
            const text = data.join('\n');
            yield {
              message: {
                id,
                event: event || 'message',
                data: text,
                json: <T>() => JSON.parse(text) as T,
              },
            };
          }
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (name === 'data') data.push(value);
        else if (name === 'event') event = value;
        else if (name === 'id' && !value.includes('\0')) id = value;
        else if (name === 'retry' && /^\d+$/.test(value)) yield { retry: Number(value) };
      }
    }
  } finally {
    signal?.removeEventListener('abort', abort);
    await reader.cancel().catch(() => undefined);
  }
}
