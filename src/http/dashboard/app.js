// The live dashboard: signs in, follows the SSE topics `stats`, `bounties`, `workers` (every
// worker's for auditors and admins, the viewer's own otherwise) and, for auditors and admins,
// `events` (at most four streams: the server caps each user's), and draws what they say.
//
// Talking to the API. Every call and stream goes through the typed client in
// clients/typescript (served beside this file as bountyline.js): it renews the session, sends
// commands at most once, and reads each stream over fetch, resuming after a dropped connection
// with Last-Event-ID from the last message it handed out, so nothing is missed or repeated
// (messages are still deduplicated here by id, the global position, as a defence).
//
// Sessions. Signing in through the form opens a cookie session: the server keeps the tokens in
// httpOnly cookies no script can read, and commands carry the CSRF token. A page opened with
// `#token=<access token>[&refresh_token=<refresh token>]` holds those bearer tokens in
// sessionStorage (this tab only) instead.
import { createClient, must, ProblemError, SignedOutError } from './bountyline.js';

const FEED_CAP = 200;
const BOUNTY_CAP = 12;
const TASK_STATUSES = ['queued', 'claimed', 'completed', 'dead_lettered', 'cancelled'];

const $ = (selector) => document.querySelector(selector);

/** A new element: `el('td', {class: 'num'}, '3')`. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children.map((c) => (c instanceof Node ? c : String(c ?? ''))));
  return node;
}

// ---------------------------------------------------------------------------------------------
// The session: which kind this tab holds, and the client for it.

const ENDED = 'your session has ended; please sign in';

/** Bearer tokens handed over in the fragment, kept for this tab only. */
const tabTokens = {
  get() {
    const kept = sessionStorage.getItem('bl.tokens');
    return kept ? JSON.parse(kept) : undefined;
  },
  set(tokens) {
    if (tokens) sessionStorage.setItem('bl.tokens', JSON.stringify(tokens));
    else sessionStorage.removeItem('bl.tokens');
  },
};

let bl = null;

function connect(kind) {
  sessionStorage.setItem('bl.session', kind);
  bl = createClient({
    session: kind,
    tokens: kind === 'token' ? tabTokens : undefined,
    onSignedOut: () => signOut(ENDED),
    // When the access token expires, for the browser test's "a token renewed just now".
    onSession: (expiresAt) => sessionStorage.setItem('bl.expiry', String(expiresAt)),
  });
  return bl;
}

/** The claims of a JWT, unverified: only to learn its expiry. */
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
  history.replaceState(null, '', location.pathname + location.search);
  const expires_at = (claims(access).exp ?? 0) * 1000;
  const lifetime = expires_at - (claims(access).iat ?? 0) * 1000;
  tabTokens.set({
    access_token: access,
    refresh_token: fragment.get('refresh_token') ?? '',
    expires_at,
    renew_at: expires_at ? expires_at - Math.min(30_000, lifetime / 4) : 0,
  });
  sessionStorage.setItem('bl.expiry', String(expires_at));
  connect('token');
}

/** The session this tab holds after a reload, if any. */
function resume() {
  const kind = sessionStorage.getItem('bl.session');
  if (kind === 'token' && tabTokens.get()) return connect('token');
  // A cookie session's CSRF cookie is readable; the session cookie itself is not.
  if (document.cookie.split(';').some((c) => c.trim().startsWith('__Host-bl_csrf='))) {
    return connect('cookie');
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Streams.

class Stream {
  /**
   * `snapshot` topics (stats) repeat an id when only the clock moved, so they keep a message
   * whose id equals the last; event topics drop it.
   */
  constructor(topic, { onMessage, onOpen = () => {}, snapshot = false }) {
    Object.assign(this, { topic, onMessage, onOpen, snapshot });
    this.lastId = null;
    this.live = false;
    this.controller = null;
  }

  open() {
    this.stop();
    const controller = new AbortController();
    this.controller = controller;
    const messages = bl.stream(this.topic, {
      lastEventId: this.lastId === null ? undefined : String(this.lastId),
      signal: controller.signal,
      onOpen: () => {
        this.live = true;
        showConnection();
        this.onOpen();
      },
      onDrop: () => {
        this.live = false;
        showConnection();
      },
    });
    (async () => {
      try {
        for await (const message of messages) this.receive(message);
      } catch (e) {
        // A session that ended signs the page out (onSignedOut); a refusal stays shown.
        if (!(e instanceof SignedOutError)) console.warn(`the ${this.topic} stream was refused`, e);
      }
      if (this.controller === controller) {
        this.live = false;
        showConnection();
      }
    })();
  }

  receive(message) {
    if (message.id !== '') {
      const id = Number(message.id);
      const seen = this.lastId !== null && (this.snapshot ? id < this.lastId : id <= this.lastId);
      if (seen) return;
      this.lastId = id;
    }
    let data;
    try {
      data = message.json();
    } catch {
      return;
    }
    this.onMessage(message.event, data, this.lastId);
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
    this.live = false;
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
  const page = must(await bl.api.GET('/v1/bounties', {
    params: { query: { sort: '-created', limit: BOUNTY_CAP } },
  }));
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
  bl.api.GET('/v1/bounties/{id}', {
    params: { path: { id: d.bounty_id }, header: { 'X-Min-Position': position } },
  })
    .then(must)
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

const statsStream = new Stream('stats', {
  snapshot: true,
  onMessage: (_type, data) => showStats(data),
});
const bountiesStream = new Stream('bounties', {
  onMessage: onBountyMessage,
  // Reloading is idempotent (versions guard each row) and covers what a refused stream missed.
  onOpen: () => loadBounties().catch((e) => console.warn('loading the board failed', e)),
});
const workersStream = new Stream('workers', { onMessage: onWorkerMessage });
const eventsStream = new Stream('events', { onMessage: (_type, data) => addToFeed(data) });

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

/** Forgets the session and everything the streams brought, so another user starts afresh. */
function signOut(message) {
  bl = null;
  for (const key of ['bl.session', 'bl.tokens', 'bl.expiry']) sessionStorage.removeItem(key);
  showLogin(message);
  for (const s of [statsStream, bountiesStream, workersStream, eventsStream]) s.lastId = null;
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
  if (!bl && !resume()) return showLogin();
  const client = bl;
  let me;
  try {
    me = must(await client.api.GET('/v1/me'));
  } catch (e) {
    if (e instanceof SignedOutError || (e instanceof ProblemError && e.status === 401)) {
      return signOut(ENDED);
    }
    $('#connection').textContent = 'disconnected — reconnecting';
    return setTimeout(start, 3000);
  }
  if (bl !== client) return; // signed out meanwhile
  const oversees = me.roles.includes('auditor') || me.roles.includes('admin');
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
  drawChart();
}

$('#login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = '';
  const client = connect('cookie');
  try {
    await client.login($('#email').value.trim(), $('#password').value);
    $('#password').value = '';
    await start();
  } catch (e) {
    bl = null;
    sessionStorage.removeItem('bl.session');
    $('#login-error').textContent = e instanceof ProblemError
      ? (e.problem.detail || `sign-in failed (${e.status})`)
      : `sign-in failed: ${e.message}`;
  }
});

$('#logout').addEventListener('click', async () => {
  const client = bl;
  signOut('');
  await client?.logout().catch(() => {});
});

start();
