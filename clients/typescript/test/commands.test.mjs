// Commands as the client sends them: at most once when the answer is lost, and only if
// nothing changed since the page looked (If-Match from a read's ETag).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { etagOf, ifMatch, must, ProblemError } from '../dist/bountyline.js';
import { proxy, signedIn, unique } from './support.mjs';

async function tasksTitled(bl, title, position) {
  const page = must(await bl.api.GET('/v1/tasks', {
    params: { query: { queue: 'client-tests', limit: 100 }, header: { 'X-Min-Position': position } },
  }));
  return page.items.filter((task) => task.title === title);
}

test('a command whose answer is lost is sent again under its key and acts once', async (t) => {
  const cut = await proxy();
  t.after(() => cut.close());
  const bl = await signedIn({ baseUrl: cut.url, backoffMs: 50 });
  const title = unique('lost answer');
  cut.cutAnswers(2);
  const created = must(await bl.api.POST('/v1/tasks', { body: { queue: 'client-tests', title } }));
  const tasks = await tasksTitled(bl, title, created.position);
  assert.deepEqual(tasks.map((task) => task.id), [created.id], 'created exactly once');
});

test('without retries the lost answer is the caller\'s to handle: the cut is real', async (t) => {
  const cut = await proxy();
  t.after(() => cut.close());
  const bl = await signedIn({ baseUrl: cut.url, retries: 0 });
  const title = unique('no retry');
  cut.cutAnswers(1);
  await assert.rejects(bl.api.POST('/v1/tasks', { body: { queue: 'client-tests', title } }), TypeError);
  // The server did the work all the same: the task is there, once.
  const head = must(await bl.api.POST('/v1/tasks', { body: { queue: 'client-tests', title: unique('after') } }));
  assert.equal((await tasksTitled(bl, title, head.position)).length, 1);
});

test('every command carries an Idempotency-Key of its own; one the caller gives is kept', async () => {
  const seen = [];
  const bl = await signedIn({
    fetch: (input, init) => {
      if (input instanceof Request && input.method === 'POST') seen.push(input.headers.get('Idempotency-Key'));
      return globalThis.fetch(input, init);
    },
  });
  const first = must(await bl.api.POST('/v1/tasks', { body: { queue: 'client-tests', title: unique('a') } }));
  must(await bl.api.POST('/v1/tasks', { body: { queue: 'client-tests', title: unique('b') } }));
  const key = `mine-${first.id}`;
  const body = { queue: 'client-tests', title: unique('c') };
  const one = must(await bl.api.POST('/v1/tasks', { body, params: { header: { 'Idempotency-Key': key } } }));
  const again = must(await bl.api.POST('/v1/tasks', { body, params: { header: { 'Idempotency-Key': key } } }));
  assert.equal(seen.length, 4);
  assert.ok(seen[0] && seen[1] && seen[0] !== seen[1], `fresh keys: ${seen}`);
  assert.deepEqual(seen.slice(2), [key, key]);
  assert.equal(again.id, one.id, 'the same key answers the first result');
});

test('If-Match from a read\'s ETag: a stale page is refused with the current version', async () => {
  const bl = await signedIn();
  const created = must(await bl.api.POST('/v1/tasks', { body: { queue: 'client-tests', title: unique('guarded') } }));
  const read = await bl.api.GET('/v1/tasks/{id}', {
    params: { path: { id: created.id }, header: { 'X-Min-Position': created.position } },
  });
  const etag = etagOf(read);
  assert.equal(etag, `"${created.version}"`);

  const stale = await bl.api.POST('/v1/tasks/{id}/cancel', {
    params: { path: { id: created.id }, header: ifMatch(created.version + 5) },
  });
  assert.throws(() => must(stale), (err) => {
    assert.ok(err instanceof ProblemError);
    assert.equal(err.status, 412);
    assert.equal(err.kind, 'precondition-failed');
    assert.equal(err.problem.current_version, created.version);
    return true;
  });
  const unchanged = must(await bl.api.GET('/v1/tasks/{id}', { params: { path: { id: created.id } } }));
  assert.equal(unchanged.status, 'queued', 'nothing was done');

  const cancelled = must(await bl.api.POST('/v1/tasks/{id}/cancel', {
    params: { path: { id: created.id }, header: ifMatch(etag) },
  }));
  assert.equal(cancelled.version, created.version + 1);
});
