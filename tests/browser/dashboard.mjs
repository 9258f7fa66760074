// Drives the live dashboard in Debian's headless Chromium for tests/dashboard.rs, which owns
// the servers and the assertions; this script only signs in and reports what the page shows.
//
// Protocol, one JSON object per line. On stdout: `{"step":"ready"}` once signed in with every
// stream live, then one answer per command (`{"ok": ...}` or `{"error": "..."}`). On stdin:
//   {"cmd":"snapshot"}                 → {"ok": {connection, stats, queues, bounties, feed, problems}}
//   {"cmd":"screenshot","path":"..."}  → {"ok": "<path>"}
//   {"cmd":"fill","selector":"...","value":"..."}, {"cmd":"click","selector":"..."} → {"ok": true}
//   {"cmd":"cookies"}                  → {"ok": [{name, httpOnly, secure, sameSite, path}]}
//   {"cmd":"foreign_post","path":"/v1/tasks","body":"..."}
//                                      → {"ok": {origin, status}}: a page of another origin on
//                                        the same site (a server on another loopback port) sends
//                                        a command with the browser's cookies, as an attacker's
//                                        page would; status is what the API answered (0: none)
//   {"cmd":"quit"}                     → closes the browser and exits; so does the end of stdin.
// Environment: DASHBOARD_URL (the server's base URL), and DASHBOARD_EMAIL with
// DASHBOARD_PASSWORD to sign in through the form, or DASHBOARD_TOKEN to open the page with
// `#token=<access token>`.
// Everything is bounded: each step has a timeout and the whole run ends after five minutes.
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const send = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const log = (...parts) => console.error('dashboard.mjs:', ...parts);

const {
  DASHBOARD_URL: base, DASHBOARD_EMAIL: email, DASHBOARD_PASSWORD: password, DASHBOARD_TOKEN: token,
} = process.env;
if (!base || !(token || (email && password))) {
  send({ error: 'set DASHBOARD_URL, and DASHBOARD_EMAIL with DASHBOARD_PASSWORD or DASHBOARD_TOKEN' });
  process.exit(2);
}

let browser = null;
async function finish(code) {
  clearTimeout(overall);
  await browser?.close().catch(() => {});
  process.exit(code);
}
const overall = setTimeout(() => {
  log('still running after five minutes; giving up');
  finish(3);
}, 300_000);

// What the page must never do: throw, or break its Content-Security-Policy. Failed requests
// while the server is down are expected and not counted.
const problems = [];

try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    timeout: 30_000,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  log(`chromium ${browser.version()}`);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // For the test's log: which requests failed (tokens cut out of the URLs).
  const shown = (url) => url.replace(/access_token=[^&]*/, 'access_token=…');
  // A refused API call can be part of the game (a 401 before a refresh); a missing page asset
  // or a server error never is.
  page.on('response', (r) => {
    if (r.status() < 400) return;
    const what = `${r.status()} ${r.request().method()} ${shown(r.url())}`;
    log(what);
    if (r.status() >= 500 || !new URL(r.url()).pathname.startsWith('/v1/')) problems.push(what);
  });
  page.on('console', (m) => {
    const text = m.text();
    if (m.type() === 'error' && !/net::ERR_|Failed to load resource/.test(text)) {
      problems.push(`console error: ${text}`);
    } else if (m.type() === 'error' || m.type() === 'warning') {
      log(`console ${m.type()}: ${text}`);
    }
  });

  if (token) {
    await page.goto(`${base}/dashboard#token=${encodeURIComponent(token)}`, { waitUntil: 'load', timeout: 15_000 });
  } else {
    await page.goto(`${base}/dashboard`, { waitUntil: 'load', timeout: 15_000 });
    await page.fill('#email', email, { timeout: 10_000 });
    await page.fill('#password', password);
    await page.click('#login button[type="submit"]');
  }
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 20_000 });
  send({ step: 'ready' });

  const snapshot = () => page.evaluate(() => {
    const all = (selector) => [...document.querySelectorAll(selector)];
    const connection = document.querySelector('#connection');
    return {
      connection: connection.dataset.state,
      connection_text: connection.textContent,
      stats: Object.fromEntries(all('[data-stat]').map((n) => [n.dataset.stat, n.dataset.value ?? null])),
      queues: all('#queues tr[data-queue]').map((r) => ({
        queue: r.dataset.queue,
        counts: [...r.querySelectorAll('td[data-value]')].map((td) => Number(td.dataset.value)),
      })),
      bounties: all('#bounties li').map((li) => ({
        id: li.dataset.bountyId,
        title: li.querySelector('.title')?.textContent ?? '',
        status: li.dataset.status,
      })),
      feed: all('#feed tr[data-position]').map((r) => Number(r.dataset.position)),
      workers: all('#workers tr[data-worker]').map((r) => ({
        worker: r.dataset.worker,
        doing: r.querySelector('.activity')?.textContent ?? '',
      })),
      feed_shown: !document.querySelector('#feed-card').hidden,
      fragment: location.hash,
      login_error: document.querySelector('#login-error').textContent,
      token_expires_in_ms: Number(sessionStorage.getItem('bl.expiry')) - Date.now(),
      // What a script on the page could steal: a token in storage or a readable auth cookie.
      script_sees_credentials: /bl_session|bl_refresh/.test(document.cookie)
        || /eyJ/.test(JSON.stringify({ ...sessionStorage })) || /eyJ/.test(JSON.stringify({ ...localStorage })),
    };
  });

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      send({ error: `not JSON: ${line}` });
      continue;
    }
    try {
      switch (command.cmd) {
        case 'snapshot':
          send({ ok: { ...(await snapshot()), problems } });
          break;
        case 'screenshot':
          await page.screenshot({ path: command.path, fullPage: true, animations: 'disabled', timeout: 15_000 });
          send({ ok: command.path });
          break;
        case 'fill':
          await page.fill(command.selector, command.value, { timeout: 5_000 });
          send({ ok: true });
          break;
        case 'click':
          await page.click(command.selector, { timeout: 5_000 });
          send({ ok: true });
          break;
        case 'cookies':
          send({ ok: (await page.context().cookies()).map(({ name, httpOnly, secure, sameSite, path }) => ({
            name, httpOnly, secure, sameSite, path,
          })) });
          break;
        case 'foreign_post': {
          // A page of another origin on the same site: a real server on another loopback port.
          const elsewhere = createServer((_req, res) => {
            res.writeHead(200, { 'Content-Type': 'text/html' });
            res.end('<!doctype html><title>elsewhere</title>');
          });
          await new Promise((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
          const origin = `http://127.0.0.1:${elsewhere.address().port}`;
          const foreign = await page.context().newPage();
          const target = `${base}${command.path}`;
          const answered = foreign.waitForResponse((r) => r.url() === target, { timeout: 5_000 })
            .then((r) => r.status()).catch(() => 0);
          try {
            await foreign.goto(`${origin}/`, { timeout: 5_000 });
            // A simple request (no preflight): the browser sends it with its cookies.
            await foreign.evaluate(([url, body]) => fetch(url, {
              method: 'POST', credentials: 'include', mode: 'no-cors',
              headers: { 'Content-Type': 'text/plain' }, body,
            }).catch(() => undefined), [target, command.body]);
            send({ ok: { origin, status: await answered } });
          } finally {
            await foreign.close();
            elsewhere.close();
          }
          break;
        }
        case 'quit':
          send({ ok: 'bye' });
          await finish(0);
          break;
        default:
          send({ error: `unknown command ${command.cmd}` });
      }
    } catch (e) {
      send({ error: `${command.cmd}: ${e.message}` });
    }
  }
  await finish(0); // stdin ended: the test is gone
} catch (e) {
  send({ error: e.message });
  log(e.stack);
  await finish(1);
}
