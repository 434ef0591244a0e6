/**
 * Issue 7 §7: property-based fuzzing of every procedure on the real server, over real HTTP. Hostile input —
 * wrong types, huge numbers, NUL, unpaired surrogates, extra keys, deep nesting, long strings — never gets a
 * 5xx: always a JSON tRPC error with the expected code (BAD_REQUEST), and the database is left unchanged.
 * Bounded: numRuns is modest and fast-check stops at a time limit, so it ends well under 20 s.
 */
import { appRouter } from '@asyncscope/api';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
  await t.database.sql`insert into users (name, email) values ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com')`;
});
afterAll(async () => { await t.close(); });

type Kind = 'int' | 'text' | 'userId' | 'activityId' | 'enum' | 'fault' | 'bool' | 'callIds';
interface Target {
  type: 'query' | 'mutation' | 'subscription';
  /** A valid input, one field of which the fuzzer spoils; undefined: the procedure takes no input. */
  valid?: Record<string, unknown>;
  fields?: Record<string, Kind>;
}

/** Every procedure of the router, with what its input looks like. */
const TARGETS: Record<string, Target> = {
  'users.byId': { type: 'query', valid: { id: 1 }, fields: { id: 'int' } },
  'users.list': { type: 'query', valid: { limit: 5, offset: 0 }, fields: { limit: 'int', offset: 'int' } },
  'users.create': { type: 'mutation', valid: { name: 'Fuzz', email: 'fuzz@example.com', idempotencyKey: 'fuzz-key-0001' }, fields: { name: 'text', email: 'text', idempotencyKey: 'text' } },
  'users.update': { type: 'mutation', valid: { id: 1, name: 'Fuzz', email: 'fuzz@example.com' }, fields: { id: 'int', name: 'text', email: 'text', idempotencyKey: 'text' } },
  'users.delete': { type: 'mutation', valid: { id: 2 }, fields: { id: 'int', idempotencyKey: 'text' } },
  'users.stream': { type: 'subscription', valid: { pageSize: 10 }, fields: { pageSize: 'int', lastEventId: 'userId', callId: 'text' } },
  'lab.sleep': { type: 'query', valid: { ms: 0 }, fields: { ms: 'int' } },
  'lab.slowWrite': { type: 'mutation', valid: { label: 'fuzz', ms: 0 }, fields: { label: 'text', ms: 'int', idempotencyKey: 'text' } },
  'lab.cpu': { type: 'query', valid: { rounds: 1 }, fields: { rounds: 'int' } },
  'lab.setFaults': { type: 'mutation', valid: { procedure: 'users.byId', fault: { latencyMs: 0, errorRate: 0 } }, fields: { procedure: 'enum', fault: 'fault' } },
  'lab.faults': { type: 'query' },
  'lab.clearFaults': { type: 'mutation' },
  'activity.stats': { type: 'query' },
  'activity.events': { type: 'subscription', valid: { replay: false }, fields: { lastEventId: 'activityId', replay: 'bool' } },
  'auth.ticket': { type: 'mutation' },
  'calls.cancel': { type: 'mutation', valid: { callIds: ['fuzz-call-1'] }, fields: { callIds: 'callIds' } },
};

// Values no field of that kind accepts.
const notAnObject = fc.oneof(fc.constant(null), fc.boolean(), fc.double(), fc.string({ maxLength: 20 }), fc.array(fc.integer(), { maxLength: 3 }));
const badInt = fc.oneof(
  fc.constantFrom(1e308, -1e308, 2 ** 31, 2 ** 53 + 2, -1, 0.5, -2.5, 1e-9, Number.MAX_VALUE),
  fc.stringMatching(/^\d{1,30}$/),
  notAnObject.filter((v) => typeof v !== 'number'),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
);
const around = (mark: string) => fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 })).map(([a, b]) => `${a}${mark}${b}`);
const badText = fc.oneof(
  around('\u0000'),
  around('\uD800'),
  around('\uDFFF'),
  fc.string({ minLength: 300, maxLength: 400 }).map((s) => s.padEnd(300, 'x')),
  fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.string({ maxLength: 3 }), { maxLength: 2 }), fc.constant({})),
);
const BAD: Record<Kind, fc.Arbitrary<unknown>> = {
  int: badInt,
  text: badText,
  // Resume ids: beyond a user id (users.stream), beyond what a sequence number holds (activity.events).
  userId: fc.oneof(badText, fc.constantFrom('2147483648', '99999999999', '12345678901234567890123', '-1', '1e3', '')),
  activityId: fc.oneof(badText, fc.constantFrom('12345678901234567890123', 'boot:12345678901234567890123', 'a b:1', ':1', '-1', '1e3', '')),
  enum: fc.oneof(fc.string({ maxLength: 30 }).filter((s) => !(s in TARGETS)), around('\u0000'), fc.integer(), fc.constant(null)),
  fault: fc.oneof(notAnObject, badInt.map((latencyMs) => ({ latencyMs })), fc.constant({ latencyMs: 0, errorRate: 2 }), fc.constant({ errorRate: 0, admin: true })),
  bool: fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.constant(null), fc.constant({})),
  // Not a list of 1 to 1000 call ids: not a list, empty, too long, or holding one id that is not one.
  callIds: fc.oneof(
    notAnObject.filter((v) => !Array.isArray(v)),
    fc.constant([]),
    fc.constant(Array.from({ length: 1001 }, (_, i) => `c${i}`)),
    fc.tuple(fc.array(fc.constantFrom('ok-1', 'ok-2'), { maxLength: 3 }), fc.oneof(badText, fc.constantFrom('', 'a b', 'x'.repeat(129), 'a/b', 'é'))).map(([ok, bad]) => [...ok, bad]),
  ),
};
/** `{ a: { a: … } }` or `[[…]]`, `depth` levels: never a valid input (unknown key / not an object). */
const deep = fc.tuple(fc.integer({ min: 50, max: 300 }), fc.boolean()).map(([depth, array]) => {
  let value: unknown = 'x\u0000';
  for (let i = 0; i < depth; i++) value = array ? [value] : { a: value };
  return value;
});

/** An input for `path` that its schema must refuse. */
function hostileInput(target: Target): fc.Arbitrary<unknown> {
  const { valid, fields } = target;
  if (!valid || !fields) return fc.oneof(fc.anything({ maxDepth: 3 }), deep); // ignored by input-less procedures
  const names = Object.keys(fields);
  return fc.oneof(
    // one field spoiled (the likeliest case)
    { weight: 4, arbitrary: fc.constantFrom(...names).chain((name) => BAD[fields[name] ?? 'text'].map((bad) => ({ ...valid, [name]: bad }))) },
    // an extra key (every input is a strict object); not undefined, which JSON would drop with its key
    fc.tuple(fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !names.includes(k) && k !== '__proto__'), fc.anything({ maxDepth: 2 }).filter((v) => v !== undefined)).map(([key, value]) => ({ ...valid, [key]: value })),
    // not an object at all, or nested deep
    notAnObject,
    deep,
  );
}

interface Outcome { status: number; code: string | undefined; json: boolean }

/** Calls the procedure as the tRPC client would; for a subscription, reads its first event. */
async function call(path: string, target: Target, input: unknown): Promise<Outcome> {
  const headers: Record<string, string> = { authorization: `Bearer ${TEST_TOKEN}` };
  // JSON.stringify(undefined) is undefined at run time, whatever its type says.
  const json = (JSON.stringify(input) as string | undefined) ?? 'null';
  const encoded = encodeURIComponent(json);
  if (target.type === 'mutation') {
    const res = await fetch(`${t.url}/trpc/${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: json, signal: AbortSignal.timeout(10_000) });
    return outcome(res.status, await res.text());
  }
  if (target.type === 'query') {
    const res = await fetch(`${t.url}/trpc/${path}?input=${encoded}`, { headers, signal: AbortSignal.timeout(10_000) });
    return outcome(res.status, await res.text());
  }
  // Event stream: an input error arrives as a `serialized-error` event; the first event settles it.
  const controller = new AbortController();
  const timer = setTimeout(() => { controller.abort(); }, 5000);
  try {
    const res = await fetch(`${t.url}/trpc/${path}?input=${encoded}`, { headers: { ...headers, accept: 'text/event-stream' }, signal: controller.signal });
    if (res.status !== 200 || !res.body) return outcome(res.status, await res.text());
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      const event = /event: ?serialized-error\ndata: ?(.*)\n/.exec(text);
      if (event) return outcome(200, event[1] ?? '');
      if (/(^|\n)(id: ?.*\n)?data: ?/.test(text.replace(/event: ?connected\ndata: ?.*\n/, ''))) return { status: 200, code: 'DATA', json: true };
    }
    return { status: 200, code: 'ENDED', json: true };
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

function outcome(status: number, text: string): Outcome {
  try {
    const body = JSON.parse(text) as { error?: { data?: { code?: string } }; data?: { code?: string }; result?: unknown };
    return { status, code: body.error?.data?.code ?? body.data?.code ?? (body.result !== undefined ? 'OK' : undefined), json: true };
  } catch {
    return { status, code: undefined, json: false };
  }
}

/** Rows and a checksum of every table a procedure can write. */
async function databaseState(): Promise<unknown> {
  return t.database.sql`
    select 'users' as t, count(*)::int as n, md5(coalesce(string_agg(u::text, ',' order by id), '')) as sum from users u
    union all select 'lab_writes', count(*)::int, md5(coalesce(string_agg(w::text, ',' order by w::text), '')) from lab_writes w
    union all select 'idempotency_keys', count(*)::int, md5(coalesce(string_agg(k::text, ',' order by k::text), '')) from idempotency_keys k`;
}

describe('fuzzing every procedure with hostile input', () => {
  it('covers every procedure of the router', () => {
    expect(Object.keys(appRouter._def.procedures).sort()).toEqual(Object.keys(TARGETS).sort());
  });

  it('never a 5xx; always a JSON tRPC error (BAD_REQUEST); the database and faults unchanged', async () => {
    const before = await databaseState();
    const faultsBefore = JSON.stringify(t.server.runtime.faults.all());
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(TARGETS)).chain((path) => hostileInput(TARGETS[path] as Target).map((input) => [path, input] as const)),
        async ([path, input]) => {
          const target = TARGETS[path] as Target;
          const result = await call(path, target, input);
          seen.set(path, (seen.get(path) ?? 0) + 1);
          expect(result.status, `${path} ${JSON.stringify(input)}`).toBeLessThan(500);
          expect(result.json, `${path}: a JSON answer`).toBe(true);
          // Procedures without input ignore what they are sent; the others must refuse it.
          if (target.valid) expect(result.code, `${path} ${JSON.stringify(input)}`).toBe('BAD_REQUEST');
          else expect(result.code).toBe('OK');
        },
      ),
      { numRuns: 1000, interruptAfterTimeLimit: 15_000, markInterruptAsFailure: false },
    );
    expect(await databaseState()).toEqual(before);
    expect(JSON.stringify(t.server.runtime.faults.all())).toBe(faultsBefore);
    expect(seen.size).toBeGreaterThan(10); // most procedures were hit
  }, 30_000);
});
