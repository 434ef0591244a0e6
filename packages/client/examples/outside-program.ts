// A program outside this repository, using the packed client (README "Using the client outside this repo").
// The client-package test installs the tarball in a temporary folder, typechecks this file there (strict),
// and runs it against a live server: ASYNCSCOPE_URL (…/trpc) and ASYNCSCOPE_TOKEN. It prints one JSON line.
/* eslint-disable no-restricted-properties -- a program reads its own environment */
import { apiErrorCode, closeApiClient, createApiClient, fetchMany, isApiError, type RouterOutputs } from '@asyncscope/client';
import { EventSource } from 'eventsource'; // Node 20 and 22 have no global EventSource: subscriptions need one

const url = process.env.ASYNCSCOPE_URL ?? 'http://127.0.0.1:3000/trpc';
const token = process.env.ASYNCSCOPE_TOKEN ?? '';
const api = createApiClient({ url, token, EventSource });

type User = RouterOutputs['users']['byId'];
const check = (ok: boolean, what: string): void => {
  if (!ok) throw new Error(`check failed: ${what}`);
};
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Polls activity.stats until `done` holds: the server's own count of statements running on the database. */
async function until(what: string, done: (stats: RouterOutputs['activity']['stats']) => boolean, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (done(await api.activity.stats.query())) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting until ${what}`);
    await sleep(25);
  }
}

try {
  // CRUD, typed end to end.
  const suffix = Date.now().toString(36);
  const created: User = await api.users.create.mutate({ name: 'Ada', email: `ada-${suffix}@example.com` });
  const read = await api.users.byId.query({ id: created.id });
  check(read.email === created.email, 'byId reads what create wrote');
  // The types are the server's: these would compile only if they were `any`.
  // @ts-expect-error -- id is a number
  await api.users.byId.query({ id: 'one' }).catch(() => undefined);
  /* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access -- it does not exist: the point */
  // @ts-expect-error -- no such procedure
  await api.users.nope.query().catch(() => undefined);
  /* eslint-enable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access */
  const updated = await api.users.update.mutate({ id: created.id, name: 'Ada Lovelace' });
  check(updated.name === 'Ada Lovelace', 'update changes the name');
  const more = await fetchMany([1, 2, 3, 4], { concurrency: 2, timeoutMs: 5000, retries: 1 }, (n, call) =>
    api.users.create.mutate({ name: `User ${n}`, email: `user${n}-${suffix}@example.com` }, call),
  );
  check(more.every((o) => o.status === 'fulfilled'), 'fetchMany creates four users');
  const page = await api.users.list.query({ limit: 100 });
  check(page.total >= 5, 'list counts them all');

  // A typed error: BAD_REQUEST with the field that was wrong.
  const invalid: unknown = await api.users.create.mutate({ name: 'Bad', email: 'not-an-email' }).catch((e: unknown) => e);
  check(isApiError(invalid) && invalid.data?.code === 'BAD_REQUEST', 'a bad email is a BAD_REQUEST');
  const fieldErrors = isApiError(invalid) ? invalid.data?.fieldErrors : null;
  check(fieldErrors !== null && fieldErrors !== undefined && 'email' in fieldErrors, 'fieldErrors names email');

  // An aborted lab.sleep: the call stops, and so does its statement on the database.
  const controller = new AbortController();
  const sleeping = api.lab.sleep.query({ ms: 20_000 }, { signal: controller.signal, context: { callId: `outside-sleep-${suffix}` } });
  await until('the sleep runs', (s) => s.statements.running > 0);
  controller.abort();
  const aborted: unknown = await sleeping.catch((e: unknown) => e);
  check(isApiError(aborted), 'the aborted call rejects');
  const abortedSleepGoneMs = await until('the sleep statement is gone', (s) => s.statements.running === 0);

  // calls.cancel: stop a call by its id (from anywhere, e.g. another process).
  const cancelId = `outside-cancel-${suffix}`;
  const toCancel = api.lab.sleep.query({ ms: 20_000 }, { signal: new AbortController().signal, context: { callId: cancelId } });
  await until('the second sleep runs', (s) => s.statements.running > 0);
  const { results } = await api.calls.cancel.mutate({ callIds: [cancelId] });
  check(results[0]?.status === 'cancelled', 'calls.cancel finds it in flight');
  const cancelledCode = apiErrorCode(await toCancel.catch((e: unknown) => e));
  await until('the cancelled statement is gone', (s) => s.statements.running === 0);

  // A stream read to the end: every user, page by page.
  const streamed = await new Promise<number>((resolve, reject) => {
    let rows = 0;
    const sub = api.users.stream.subscribe({ pageSize: 2 }, {
      onData: ({ data }) => { rows += data.items.length; },
      onError: (error) => { sub.unsubscribe(); reject(error); },
      onComplete: () => { resolve(rows); },
    });
  });
  check(streamed === page.total, `the stream sends every user (${streamed} of ${page.total})`);

  // A stream stopped midway: unsubscribing ends the server's generator and its query.
  const firstPage = await new Promise<number>((resolve, reject) => {
    const sub = api.users.stream.subscribe({ pageSize: 1 }, {
      onData: ({ data }) => { sub.unsubscribe(); resolve(data.sent); },
      onError: (error) => { sub.unsubscribe(); reject(error); },
    });
  });
  check(firstPage === 1, 'stopped after the first page');
  await until('the stream has stopped on the server', (s) => s.statements.running === 0 && s.inFlight <= 1);

  const stats = await api.activity.stats.query();
  const removed = await api.users.delete.mutate({ id: created.id });
  const afterDelete = apiErrorCode(await api.users.byId.query({ id: removed.id }).catch((e: unknown) => e));
  check(afterDelete === 'NOT_FOUND', 'a deleted user is NOT_FOUND');

  console.log(JSON.stringify({ ok: true, created: created.id, total: page.total, fieldErrors, abortedSleepGoneMs, cancelledCode, streamed, firstPage, poolMax: stats.poolMax, afterDelete }));
} finally {
  await closeApiClient(api);
}
