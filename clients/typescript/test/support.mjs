// What the client's tests share: the live server scripts/client started, a TCP proxy in front
// of it that can cut connections the way a failing network does, and small helpers.
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { createClient, must } from '../dist/bountyline.js';

export const URL_ = process.env.BOUNTYLINE_URL;
export const ADMIN = {
  email: process.env.BOUNTYLINE_ADMIN_EMAIL,
  password: process.env.BOUNTYLINE_ADMIN_PASSWORD,
};
if (!URL_ || !ADMIN.email || !ADMIN.password) {
  throw new Error('run these tests with scripts/client test: it starts the server they need');
}

/** A client signed in as the admin (every role), or as `who`. */
export async function signedIn(options = {}, who = ADMIN) {
  const bl = createClient({ baseUrl: URL_, ...options });
  await bl.login(who.email, who.password);
  return bl;
}

/** A new member with a password; answers {email, password, id}. */
export async function newMember() {
  const email = `m-${randomUUID()}@example.com`;
  const password = `pw-${randomUUID()}`;
  const bl = createClient({ baseUrl: URL_ });
  const user = must(await bl.api.POST('/v1/auth/register', {
    body: { email, password, display_name: 'Member' },
  }));
  return { email, password, id: user.id };
}

/** A fetch that counts the calls to each path. */
export function counting(base = globalThis.fetch) {
  const calls = new Map();
  const fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    calls.set(url.pathname, (calls.get(url.pathname) ?? 0) + 1);
    return base(input, init);
  };
  return { fetch, calls: (path) => calls.get(path) ?? 0 };
}

/**
 * A TCP proxy on loopback in front of the server. `cutAnswers(n)`: the next n answers are cut
 * as their first bytes arrive (the server has done the work; the client hears nothing).
 * `cutAll()`: every open connection is cut now (streams included).
 */
export async function proxy(target = URL_) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  let cuts = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (cuts > 0) {
        cuts -= 1;
        drop();
        return;
      }
      client.write(chunk);
    });
    client.on('close', drop);
    upstream.on('close', drop);
    client.on('error', drop);
    upstream.on('error', drop);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cutAnswers(n) { cuts = n; },
    cutAll() { for (const socket of sockets) socket.destroy(); sockets.clear(); },
    close() {
      this.cutAll();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Waits until `check()` is truthy, polling, for at most `ms`. */
export async function eventually(check, ms = 10_000, what = 'the condition') {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const unique = (label) => `${label} ${randomUUID()}`;
