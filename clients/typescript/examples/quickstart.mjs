import { createClient, etagOf, ifMatch, must } from '@bountyline/client';

const bl = createClient({ baseUrl: process.env.BOUNTYLINE_URL ?? 'http://127.0.0.1:8080' });
await bl.login(process.env.EMAIL ?? 'ann@example.com', process.env.PASSWORD ?? 'correct horse battery');
const task = must(await bl.api.POST('/v1/tasks', { body: { queue: 'emails', title: 'welcome mail' } }));
const read = await bl.api.GET('/v1/tasks/{id}', { params: { path: { id: task.id }, header: { 'X-Min-Position': task.position } } });
must(await bl.api.POST('/v1/tasks/{id}/cancel', { params: { path: { id: task.id }, header: ifMatch(etagOf(read)) } }));
for await (const message of bl.stream('tasks', { lastEventId: String(task.position - 1) })) {
  console.log(message.id, message.event, message.json());
  if (message.event === 'TaskCancelled') break;
}
