// The README's frontend example is examples/quickstart.mjs, word for word, and it runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ADMIN, URL_ } from './support.mjs';

const example = new URL('../examples/quickstart.mjs', import.meta.url);

test('the README shows the quickstart example as it is', async () => {
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
  const code = await readFile(example, 'utf8');
  assert.ok(readme.includes(code.trim()), 'README.md must quote clients/typescript/examples/quickstart.mjs');
});

test('the quickstart example runs against the server', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [example.pathname], {
    env: { ...process.env, BOUNTYLINE_URL: URL_, EMAIL: ADMIN.email, PASSWORD: ADMIN.password },
    timeout: 30_000,
  });
  const events = [...stdout.matchAll(/^\d+ (\w+) /gm)].map((match) => match[1]);
  assert.deepEqual(events, ['TaskCreated', 'TaskCancelled'], stdout);
});
