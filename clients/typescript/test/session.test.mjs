// Sessions as the client keeps them: sign-in, refresh with rotation (one refresh however many
// calls need it), renewal before expiry, and the end of a session whose refresh token was
// stolen and used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, memoryTokens, must, ProblemError, SignedOutError } from '../dist/bountyline.js';
import { ADMIN, URL_, counting, signedIn } from './support.mjs';

test('a wrong password is a 401 problem, and a right one signs in', async () => {
  const bl = createClient({ baseUrl: URL_ });
  await assert.rejects(bl.login(ADMIN.email, 'not the password'), (err) => {
    assert.ok(err instanceof ProblemError);
    assert.equal(err.status, 401);
    assert.equal(err.kind, 'unauthenticated');
    return true;
  });
  assert.equal(bl.signedIn, false);
  await bl.login(ADMIN.email, ADMIN.password);
  const me = must(await bl.api.GET('/v1/me'));
  assert.equal(me.email, ADMIN.email);
});

test('calls refused with a 401 renew the session once, together, and go through', async () => {
  const tokens = memoryTokens();
  const { fetch, calls } = counting();
  const bl = await signedIn({ tokens, fetch });
  const stale = tokens.get().access_token;
  await bl.refresh();
  // The access token from before the rotation no longer works; the refresh token does.
  tokens.set({ ...tokens.get(), access_token: stale });
  const before = calls('/v1/auth/refresh');
  const answers = await Promise.all(Array.from({ length: 5 }, () => bl.api.GET('/v1/me')));
  for (const answer of answers) assert.equal(answer.response.status, 200);
  assert.equal(calls('/v1/auth/refresh') - before, 1, 'one refresh for five refused calls');
  assert.notEqual(tokens.get().access_token, stale);
});

test('a token about to expire is renewed before the call, not after a refusal', async () => {
  const tokens = memoryTokens();
  const { fetch, calls } = counting();
  const bl = await signedIn({ tokens, fetch });
  // As if the token had reached the last quarter of its life (or its last 30 s).
  tokens.set({ ...tokens.get(), renew_at: Date.now() - 1 });
  const before = calls('/v1/auth/refresh');
  must(await bl.api.GET('/v1/me'));
  assert.equal(calls('/v1/auth/refresh') - before, 1);
  assert.ok(tokens.get().expires_at > Date.now() + 60_000);
});

test('a refresh token used twice ends the session: the client says so once', async () => {
  const tokens = memoryTokens();
  let endings = 0;
  const bl = await signedIn({ tokens, onSignedOut: () => { endings += 1; } });
  const stolen = tokens.get().refresh_token;
  await bl.refresh();
  // Someone else presents the old refresh token: the server revokes the whole family.
  const reuse = await fetch(`${URL_}/v1/auth/refresh`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ refresh_token: stolen }),
  });
  assert.equal(reuse.status, 401);
  await assert.rejects(bl.api.GET('/v1/me'), SignedOutError);
  assert.equal(endings, 1);
  assert.equal(bl.signedIn, false);
});

test('logout ends the session on the server', async () => {
  const tokens = memoryTokens();
  const bl = await signedIn({ tokens });
  const { access_token } = tokens.get();
  await bl.logout();
  assert.equal(bl.signedIn, false);
  const after = await fetch(`${URL_}/v1/me`, { headers: { Authorization: `Bearer ${access_token}` } });
  assert.equal(after.status, 401);
});
