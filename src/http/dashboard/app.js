// The live dashboard: signs in, follows the SSE topics `stats`, `bounties`, `workers` (every
// worker's for auditors and admins, the viewer's own otherwise) and, for auditors and admins,
// `events` with the browser's own EventSource (at most four streams: the server caps each
// user's), and draws what they say.
//
// Delivery. After a dropped connection an EventSource reconnects by itself and sends
// Last-Event-ID, from which the server resumes exactly; messages are still deduplicated here by
// id (the global position) as a defence. A stream the server refused (any HTTP error: a 401
// once the token in its URL expired, a 429) is closed for good by the browser, so it is
// reopened here with a fresh token. EventSource cannot send Last-Event-ID on a new object, so
// the reopened URL carries `last_event_id` (for a server that reads it) and the events feed
// also fills what it missed from the audit API; the feed drops any position it already shows.
//
// Named events reach only listeners registered for their name (`onmessage` hears unnamed
// ones), so every event type the domain defines (domain/src/*/event.rs) is listed below.
'use strict';

const FEED_CAP = 200;
const BOUNTY_CAP = 12;
const TASK_STATUSES = ['queued', 'claimed', 'completed', 'dead_lettered', 'cancelled'];
const EVENT_TYPES = {
  Task: ['TaskCreated', 'TaskClaimed', 'TaskHeartbeatRecorded', 'TaskCompleted', 'TaskFailed',
    'TaskLeaseExpired', 'TaskCancelled'],
  Bounty: ['BountyPosted', 'BountyOpened', 'BountyUnfunded', 'BountyFundedAfterCancel',
    'ApplicationSubmitted', 'ApplicationWithdrawn', 'ApplicationAccepted', 'WorkSubmitted',
    'WorkApproved', 'WorkRejected', 'BountyCancelled', 'BountyDisputed', 'DisputeResolved',
    'BountyExpired', 'BountyPaid', 'BountyRefunded'],
  Wallet: ['DepositConfirmed', 'WalletCredited', 'WithdrawalRequested', 'WithdrawalCompleted',
    'WithdrawalFailed', 'FundsHeld', 'HoldRejected', 'HoldReleased', 'HoldRefunded',
    'PaymentReceived'],
  Payment: ['PaymentRequested', 'PaymentHeld', 'PaymentHoldFailed', 'ReleaseRequested',
    'RefundRequested', 'PaymentReleased', 'PaymentRefunded'],
  Inbox: ['NotificationsRead'],
};
const ALL_EVENT_TYPES = Object.values(EVENT_TYPES).flat();

const $ = (selector) => document.querySelector(selector);

/** A new element: `el('td', {class: 'num'}, '3')`. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children.map((c) => (c instanceof Node ? c : String(c ?? ''))));
  return node;
}

// ---------------------------------------------------------------------------------------------
// Tokens: kept in sessionStorage (this tab only), refreshed before they expire and on a 401.

class AuthError extends Error {}

const tokens = {
  get access() { return sessionStorage.getItem('bl.access'); },
  get refresh() { return sessionStorage.getItem('bl.refresh'); },
  save({ access_token, refresh_token, expires_in }) {
    sessionStorage.setItem('bl.access', access_token);
    if (refresh_token) sessionStorage.setItem('bl.refresh', refresh_token);
    const exp = claims(access_token).exp;
    const expiry = exp ? exp * 1000 : expires_in ? Date.now() + expires_in * 1000 : 0;
    sessionStorage.setItem('bl.expiry', String(expiry));
    scheduleRefresh();
  },
  clear() {
    for (const key of ['bl.access', 'bl.refresh', 'bl.expiry']) sessionStorage.removeItem(key);
    clearTimeout(refreshTimer);
  },
  /** Milliseconds since the epoch when the access token expires; 0 when unknown. */
  get expiry() { return Number(sessionStorage.getItem('bl.expiry')) || 0; },
};

/** The claims of a JWT, unverified: only to learn its expiry and roles. */
function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return {};
  }
}

/** `#token=<access token>[&refresh_token=<refresh token>]` signs in; the fragment is removed. */
function takeTokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const access = fragment.get('token') || fragment.get('access_token');
  if (!access) return;
  tokens.clear();
  tokens.save({ access_token: access, refresh_token: fragment.get('refresh_token') });
  history.replaceState(null, '', location.pathname + location.search);
}

let refreshTimer = 0;
let refreshing = null;

/** Refreshes once however many callers ask at the same time: refresh tokens rotate. */
function refresh() {
  refreshing ??= doRefresh().finally(() => { refreshing = null; });
  return refreshing;
}

async function doRefresh() {
  const refresh_token = tokens.refresh;
  if (!refresh_token) throw new AuthError('your session has ended; please sign in');
  const res = await fetch('/v1/auth/refresh', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ refresh_token }),
  });
  if (res.status >= 400 && res.status < 500) {
    throw new AuthError('your session has ended; please sign in');
  }
  if (!res.ok) throw new Error(`refresh failed (${res.status})`);
  tokens.save(await res.json());
}

/** Refreshes a minute (or a fifth of the lifetime, if shorter) before the token expires. */
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const expiry = tokens.expiry;
  if (!expiry || !tokens.refresh) return;
  const lifetime = expiry - (claims(tokens.access).iat || 0) * 1000;
  const margin = Math.min(60_000, Math.max(1000, lifetime / 5));
  refreshTimer = setTimeout(() => {
    refresh().catch((e) => {
      if (e instanceof AuthError) signOut(e.message);
      else refreshTimer = setTimeout(scheduleRefresh, 5000);
    });
  }, Math.max(0, expiry - Date.now() - margin));
}

/** A JSON request with the access token; refreshes and retries once on a 401. */
async function api(path, { method = 'GET', body, headers = {} } = {}) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(path, {
      method,
      headers: {
        Accept: 'application/json',
        Authorization: `Bearer ${tokens.access}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401 && attempt === 0) {
      await refresh();
      continue;
    }
    if (res.status === 401) throw new AuthError('your session has ended; please sign in');
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status}`);
    return res.status === 204 ? null : res.json();
  }
}

// ---------------------------------------------------------------------------------------------
// Streams.

class Stream {
  /**
   * `snapshot` topics (stats) repeat an id when only the clock moved, so they keep a message
   * whose id equals the last; event topics drop it.
   */
  constructor(topic, names, { onMessage, onOpen = () => {}, onReopen = () => {}, snapshot = false }) {
    Object.assign(this, { topic, names, onMessage, onOpen, onReopen, snapshot });
    this.lastId = null;
    this.es = null;
    this.failures = 0;
    this.timer = 0;
  }

  open() {
    this.close();
    const params = new URLSearchParams({ access_token: tokens.access });
    if (this.lastId !== null) params.set('last_event_id', String(this.lastId));
    const es = new EventSource(`/v1/streams/${this.topic}?${params}`);
    this.es = es;
    this.tokenExpiry = tokens.expiry;
    const receive = (e) => this.receive(e);
    for (const name of this.names) es.addEventListener(name, receive);
    es.onmessage = receive;
    es.onopen = () => {
      this.failures = 0;
      showConnection();
      this.onOpen();
    };
    es.onerror = () => {
      if (es !== this.es) return;
      if (es.readyState === EventSource.CLOSED) {
        this.reopen(this.backoff());
      } else if (this.tokenExpiry && this.tokenExpiry - Date.now() < 5000) {
        // The browser would retry with the expired token in the URL and be refused.
        this.reopen(0);
      }
      showConnection();
    };
  }

  receive(e) {
    if (e.lastEventId !== '') {
      const id = Number(e.lastEventId);
      const seen = this.lastId !== null && (this.snapshot ? id < this.lastId : id <= this.lastId);
      if (seen) return;
      this.lastId = id;
    }
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {
      return;
    }
    this.onMessage(e.type, data, this.lastId);
  }

  /** Closes this stream and opens a new one after `delay` ms with a token that works. */
  reopen(delay) {
    this.close();
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      try {
        if (tokens.refresh && tokens.expiry && tokens.expiry - Date.now() < 30_000) await refresh();
        await api('/v1/me'); // a 401 here refreshes; a network error retries later
      } catch (e) {
        if (e instanceof AuthError) return signOut(e.message);
        return this.reopen(this.backoff());
      }
      if (!streams.includes(this)) return; // signed out meanwhile
      this.onReopen(this.lastId);
      this.open();
    }, delay);
  }

  backoff() {
    return Math.min(30_000, 1000 * 2 ** Math.min(this.failures++, 5));
  }

  get live() { return this.es?.readyState === EventSource.OPEN; }

  close() {
    this.es?.close();
    this.es = null;
  }

  stop() {
    clearTimeout(this.timer);
    this.close();
  }
}

let streams = [];

function showConnection() {
  const node = $('#connection');
  let state = 'signed-out';
  if (streams.length) state = streams.every((s) => s.live) ? 'live' : 'disconnected';
  node.dataset.state = state;
  node.className = state === 'live' ? 'live' : 'disconnected';
  node.textContent = { live: 'live', disconnected: 'disconnected — reconnecting', 'signed-out': 'signed out' }[state];
}

// ---------------------------------------------------------------------------------------------
// Figures, chart and queues, from `stats`.

const moneyFormats = new Map();

function money({ amount, currency }) {
  if (!moneyFormats.has(currency)) {
    let format = null;
    try {
      format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
    } catch { /* an unknown currency code: shown raw */ }
    moneyFormats.set(currency, format);
  }
  const format = moneyFormats.get(currency);
  if (!format) return `${amount} ${currency}`;
  return format.format(amount / 10 ** format.resolvedOptions().maximumFractionDigits);
}

const moneyList = (list) => (list?.length ? list.map(money).join(' · ') : '0');
const count = (n) => Number(n ?? 0).toLocaleString();

function setStat(name, text, value = text) {
  for (const node of document.querySelectorAll(`[data-stat="${name}"]`)) {
    node.textContent = String(text);
    node.dataset.value = String(value);
  }
}

function showStats(s) {
  setStat('open_bounties', count(s.bounties?.open), s.bounties?.open ?? 0);
  const reward = s.bounties?.open_reward ?? [];
  setStat('open_reward', `${moneyList(reward)} in rewards`, JSON.stringify(reward));
  setStat('escrow_held', moneyList(s.escrow_held), JSON.stringify(s.escrow_held ?? []));
  for (const status of TASK_STATUSES) {
    const n = s.tasks?.by_status?.[status] ?? 0;
    setStat(`tasks_${status}`, count(n), n);
  }
  for (const name of ['completions_per_minute', 'events_per_minute', 'active_users_today']) {
    setStat(name, count(s[name]), s[name] ?? 0);
  }
  showQueues(s.tasks?.queues ?? []);
  drawChart(s.events_per_second ?? []);
  const at = s.at ? new Date(s.at).toLocaleTimeString() : '–';
  $('#asof').textContent = `as of ${at} · position ${s.position ?? '–'}`;
}

function showQueues(queues) {
  const rows = queues.map((q) => el('tr', { 'data-queue': q.queue },
    el('td', {}, q.queue),
    ...['queued', 'claimed', 'completed', 'dead_lettered', 'cancelled']
      .map((k) => el('td', { class: 'num', 'data-value': q[k] ?? 0 }, count(q[k])))));
  $('#queues').replaceChildren(...(rows.length ? rows
    : [el('tr', { class: 'empty' }, el('td', { colspan: 6 }, 'no queues yet'))]));
}

let series = [];

/** Bars of events per second over the last minute, oldest on the left. */
function drawChart(next = series) {
  series = next;
  const canvas = $('#eps');
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const n = 60;
  const values = [...Array(Math.max(0, n - series.length)).fill(0), ...series.slice(-n)];
  const max = Math.max(1, ...values);
  const top = 16;
  const base = height - 16;
  const step = width / n;
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#8a98a8';
  ctx.fillText(`${max}/s`, 0, 11);
  ctx.fillText('60 s ago', 0, height - 3);
  ctx.textAlign = 'right';
  ctx.fillText('now', width, height - 3);
  ctx.strokeStyle = '#263241';
  ctx.beginPath();
  ctx.moveTo(0, top + 0.5);
  ctx.lineTo(width, top + 0.5);
  ctx.moveTo(0, base + 0.5);
  ctx.lineTo(width, base + 0.5);
  ctx.stroke();
  ctx.fillStyle = '#4ade80';
  values.forEach((v, i) => {
    const h = Math.round((v / max) * (base - top));
    if (h > 0) ctx.fillRect(i * step + 1, base - h, Math.max(1, step - 2), h);
  });
}

window.addEventListener('resize', () => drawChart());

// ---------------------------------------------------------------------------------------------
// Newest bounties: the board's first page, then `bounties`. Ids are UUIDv7, so their order is
// the order of posting.

const bounties = new Map();

async function loadBounties() {
  const page = await api(`/v1/bounties?sort=-created&limit=${BOUNTY_CAP}`);
  for (const b of page.items) {
    showBounty({ bounty_id: b.id, version: b.version, status: b.status, title: b.title, reward: b.reward });
  }
}

function onBountyMessage(_type, d, position) {
  if (bounties.has(d.bounty_id) || d.title) return showBounty(d);
  // A bounty we do not know changed without saying its title: posted while the page loaded
  // the board. Fetch it if it is new enough to be listed.
  const ids = [...bounties.keys()].sort();
  if (ids.length >= BOUNTY_CAP && d.bounty_id < ids[0]) return;
  api(`/v1/bounties/${d.bounty_id}`, { headers: { 'X-Min-Position': String(position) } })
    .then((b) => showBounty({ bounty_id: b.id, version: b.version, status: b.status, title: b.title, reward: b.reward }))
    .catch(() => {});
}

function showBounty(d) {
  let b = bounties.get(d.bounty_id);
  if (b && d.version <= b.version) return;
  if (!b) {
    if (!d.title) return;
    b = { id: d.bounty_id, node: el('li', { 'data-bounty-id': d.bounty_id }) };
    bounties.set(b.id, b);
    const list = $('#bounties');
    const after = [...list.children].find((li) => li.dataset.bountyId < b.id) ?? null;
    list.insertBefore(b.node, after);
    while (list.children.length > BOUNTY_CAP) {
      bounties.delete(list.lastElementChild.dataset.bountyId);
      list.lastElementChild.remove();
    }
  }
  b.version = d.version;
  b.status = d.status ?? b.status;
  b.title = d.title ?? b.title;
  b.reward = d.reward ?? b.reward;
  b.node.dataset.status = b.status ?? '';
  b.node.replaceChildren(
    el('span', { class: 'title', title: b.title }, b.title),
    el('span', { class: 'reward' }, b.reward ? money(b.reward) : ''),
    el('span', { class: `status ${b.status ?? ''}` }, b.status ?? '…'),
  );
  $('#bounties-empty').hidden = bounties.size > 0;
}

// ---------------------------------------------------------------------------------------------
// The events feed (auditors and admins): newest on top, at most FEED_CAP rows, each position once.

const feedPositions = new Set();

function addToFeed(e) {
  const position = Number(e.position);
  if (!Number.isFinite(position) || feedPositions.has(position)) return;
  const body = $('#feed');
  const rows = body.rows;
  if (rows.length >= FEED_CAP && position < Number(rows[rows.length - 1].dataset.position)) return;
  const at = e.recorded_at ? new Date(e.recorded_at).toLocaleTimeString() : '';
  const row = el('tr', { 'data-position': position, class: 'new' },
    el('td', { class: 'num' }, position),
    el('td', {}, at),
    el('td', {}, e.event_type),
    // The tail of the id: UUIDv7s made close together share their first (time) digits.
    el('td', { class: `agg-${e.aggregate_type}`, title: e.aggregate_id },
      `${e.aggregate_type} …${String(e.aggregate_id).slice(-8)}`),
    el('td', { class: 'num' }, e.sequence));
  const before = [...rows].find((r) => Number(r.dataset.position) < position) ?? null;
  body.insertBefore(row, before);
  feedPositions.add(position);
  while (rows.length > FEED_CAP) {
    feedPositions.delete(Number(rows[rows.length - 1].dataset.position));
    rows[rows.length - 1].remove();
  }
}

// After a manual reopen: the position the feed had reached, until the gap after it is filled.
let gapAfter = null;

/** Fills the feed from the audit API after `gapAfter`, below `before` (the first live id). */
async function fillGap(before = Infinity) {
  let after = gapAfter;
  if (after === null) return;
  try {
    for (let pages = 0; pages < 20; pages++) {
      const page = await api(`/v1/audit/events?after=${after}&limit=200`);
      for (const e of page.items) {
        if (e.position >= before) break;
        addToFeed(e);
        after = e.position;
      }
      if (!page.next_cursor || after >= before - 1) break;
    }
    // Once live past the gap, nothing more can be missing.
    if (before !== Infinity && gapAfter !== null) gapAfter = null;
  } catch (e) {
    console.warn('filling the events feed failed; will retry', e);
  }
}

// ---------------------------------------------------------------------------------------------
// Workers: each worker's latest activity, most recent first.

const WORKER_CAP = 20;
const workers = new Map();

function onWorkerMessage(_type, d) {
  workers.set(d.worker, { ...d, seen: new Date() });
  const rows = [...workers.values()].sort((a, b) => b.seen - a.seen).slice(0, WORKER_CAP);
  $('#workers').replaceChildren(...rows.map((w) => el('tr', { 'data-worker': w.worker },
    el('td', { title: w.worker }, w.worker.slice(0, 8)),
    el('td', { title: w.task_id }, w.task_id.slice(0, 8)),
    el('td', {}, w.queue ?? ''),
    el('td', { class: `activity ${w.activity}` }, w.activity),
    el('td', { class: 'num' }, w.progress == null ? '' : `${w.progress}%`),
    el('td', {}, w.seen.toLocaleTimeString()))));
}

// ---------------------------------------------------------------------------------------------
// Sign in, sign out, start.

const statsStream = new Stream('stats', ['stats'], {
  snapshot: true,
  onMessage: (_type, data) => showStats(data),
});
const bountiesStream = new Stream('bounties', EVENT_TYPES.Bounty, {
  onMessage: onBountyMessage,
  // Reloading is idempotent (versions guard each row) and covers a refused-then-reopened stream.
  onOpen: () => loadBounties().catch((e) => console.warn('loading the board failed', e)),
});
const workersStream = new Stream('workers', EVENT_TYPES.Task, { onMessage: onWorkerMessage });
const eventsStream = new Stream('events', ALL_EVENT_TYPES, {
  onMessage: (_type, data, id) => {
    addToFeed(data);
    if (gapAfter !== null) fillGap(id);
  },
  onOpen: () => fillGap(),
  onReopen: (lastId) => {
    if (lastId !== null && gapAfter === null) gapAfter = lastId;
  },
});

function showLogin(message = '') {
  for (const s of streams) s.stop();
  streams = [];
  showConnection();
  $('#board').hidden = true;
  $('#logout').hidden = true;
  $('#who').textContent = '';
  $('#login-view').hidden = false;
  $('#login-error').textContent = message;
  $('#email').focus();
}

/** Forgets the tokens and everything the streams brought, so another user starts afresh. */
function signOut(message) {
  tokens.clear();
  showLogin(message);
  for (const s of [statsStream, bountiesStream, workersStream, eventsStream]) s.lastId = null;
  gapAfter = null;
  feedPositions.clear();
  bounties.clear();
  workers.clear();
  for (const id of ['#feed', '#bounties', '#queues', '#asof', '#workers']) $(id).replaceChildren();
  for (const node of document.querySelectorAll('[data-stat]')) {
    node.textContent = '–';
    delete node.dataset.value;
  }
  $('#bounties-empty').hidden = false;
  drawChart([]);
}

async function start() {
  takeTokenFromFragment();
  if (!tokens.access) return showLogin();
  let me;
  try {
    me = await api('/v1/me');
  } catch (e) {
    if (e instanceof AuthError) return signOut(e.message);
    $('#connection').textContent = 'disconnected — reconnecting';
    return setTimeout(start, 3000);
  }
  const oversees = me.roles.includes('auditor') || me.roles.includes('admin');
  // A role granted since the token was issued reaches the token at a refresh.
  const tokenRoles = claims(tokens.access).roles ?? [];
  if (oversees && !me.roles.every((r) => tokenRoles.includes(r)) && tokens.refresh) {
    await refresh().catch(() => {});
  }
  $('#who').textContent = `${me.display_name} · ${me.roles.join(', ')}`;
  $('#login-view').hidden = true;
  $('#board').hidden = false;
  $('#logout').hidden = false;
  $('#feed-card').hidden = !oversees;
  streams = oversees
    ? [statsStream, bountiesStream, workersStream, eventsStream]
    : [statsStream, bountiesStream, workersStream];
  for (const s of streams) s.open();
  showConnection();
  scheduleRefresh();
  drawChart();
}

$('#login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = '';
  try {
    const res = await fetch('/v1/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ email: $('#email').value.trim(), password: $('#password').value }),
    });
    if (!res.ok) {
      const problem = await res.json().catch(() => ({}));
      throw new Error(problem.detail || `sign-in failed (${res.status})`);
    }
    tokens.save(await res.json());
    $('#password').value = '';
    await start();
  } catch (e) {
    $('#login-error').textContent = e.message;
  }
});

$('#logout').addEventListener('click', async () => {
  const refresh_token = tokens.refresh;
  signOut('');
  if (refresh_token) {
    await fetch('/v1/auth/logout', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token }),
    }).catch(() => {});
  }
});

start();
