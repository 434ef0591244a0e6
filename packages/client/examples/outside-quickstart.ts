// The README's "outside this repository" snippet, verbatim (links.test.ts checks): typechecked here against the
// sources, and by the client-package test against the packed package, next to outside-program.ts.
/* eslint-disable no-restricted-properties -- a program reads its own environment */
import { apiErrorCode, createApiClient, fetchMany, isApiError } from '@asyncscope/client';
import { EventSource } from 'eventsource'; // Node 20 and 22 have no global EventSource; subscriptions need one

const api = createApiClient({
  url: process.env.ASYNCSCOPE_URL ?? 'http://127.0.0.1:3000/trpc',
  token: process.env.ASYNCSCOPE_TOKEN ?? '',
  EventSource,
});

try {
  await api.users.create.mutate({ name: 'Ada', email: 'not-an-email' });
} catch (error) {
  if (isApiError(error) && error.data?.code === 'BAD_REQUEST') console.log(error.data.fieldErrors); // { email: [...] }
}

// The guide's fetch_multiple_users: 50 at a time, 2 s and 2 retries per user, Ctrl+C cancels every call.
const controller = new AbortController();
process.once('SIGINT', () => { controller.abort(); });
const outcomes = await fetchMany(
  Array.from({ length: 200 }, (_, i) => i + 1),
  { concurrency: 50, timeoutMs: 2000, retries: 2, signal: controller.signal, onProgress: (p) => { process.stdout.write(`\r${p.done}/${p.total}`); } },
  (id, call) => api.users.byId.query({ id }, call),
);
for (const o of outcomes) console.log(o.id, o.status === 'fulfilled' ? o.value.name : apiErrorCode(o.reason) ?? String(o.reason));
