// SSE streams as the client follows them: over fetch with the session's credentials, resumed
// with Last-Event-ID after a dropped connection and after the session was renewed (the
// server ends a stream when its token's session ends), with nothing missed or repeated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { must } from '../dist/bountyline.js';
import { eventually, proxy, signedIn, unique } from './support.mjs';

/** Follows `topic` in the background; answers the messages seen so far and a stop. */
function follow(bl, topic, options) {
  const controller = new AbortController();
  const seen = [];
  const done = (async () => {
    for await (const message of bl.stream(topic, { ...options, signal: controller.signal })) {
      seen.push(message);
    }
  })();
  return { seen, stop: () => { controller.abort(); return done; } };
}

const createdIds = (seen) => seen
  .filter((message) => message.event === 'TaskCreated')
  .map((message) => message.json().task_id);

async function createTasks(bl, n, label) {
  const created = [];
  for (let i = 0; i < n; i++) {
    created.push(must(await bl.api.POST('/v1/tasks', { body: { queue: 'client-stream', title: unique(label) } })));
  }
  return created;
}

test('a dropped stream resumes after the last id it handed out: nothing missed, nothing twice', async (t) => {
  const cut = await proxy();
  t.after(() => cut.close());
  const writer = await signedIn();
  const reader = await signedIn({ baseUrl: cut.url });
  const [first] = await createTasks(writer, 1, 'before');
  const stream = follow(reader, 'tasks', { lastEventId: String(first.position - 1), reconnectMs: 100 });
  t.after(() => stream.stop());
  const ids = [first.id];
  ids.push(...(await createTasks(writer, 2, 'connected')).map((c) => c.id));
  await eventually(() => ids.every((id) => createdIds(stream.seen).includes(id)), 10_000, 'the first three tasks');

  cut.cutAll();
  ids.push(...(await createTasks(writer, 3, 'while cut')).map((c) => c.id));
  await eventually(() => ids.every((id) => createdIds(stream.seen).includes(id)), 10_000, 'the tasks made while cut');

  const positions = stream.seen.map((message) => Number(message.id));
  assert.deepEqual(positions, [...positions].sort((a, b) => a - b), 'in order');
  assert.equal(new Set(positions).size, positions.length, 'no message twice');
  assert.deepEqual(createdIds(stream.seen).filter((id) => ids.includes(id)), ids);
});

test('a stream goes on across a renewal of its session', async (t) => {
  const writer = await signedIn();
  const reader = await signedIn();
  const [first] = await createTasks(writer, 1, 'before renewal');
  const stream = follow(reader, 'tasks', { lastEventId: String(first.position - 1), reconnectMs: 100 });
  t.after(() => stream.stop());
  await eventually(() => createdIds(stream.seen).includes(first.id), 10_000, 'the first task');
  // The rotation ends the stream's session: the server sees it within a second here
  // (scripts/client sets sse.session_recheck_secs to 1) and ends the stream; the client
  // reconnects with its renewed token from the last id it handed out.
  await reader.refresh();
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  const [after] = await createTasks(writer, 1, 'after renewal');
  await eventually(() => createdIds(stream.seen).includes(after.id), 10_000, 'the task made after the renewal');
  const positions = stream.seen.map((message) => Number(message.id));
  assert.equal(new Set(positions).size, positions.length, 'no message twice');
});

test('a stream the caller may not read is refused with its problem, not retried', async () => {
  const bl = await signedIn();
  await assert.rejects(async () => {
    for await (const message of bl.stream('no-such-topic')) void message;
  }, (err) => err.status === 404 || err.status === 400);
});
