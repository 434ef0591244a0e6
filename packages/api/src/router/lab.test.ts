import { TRPCError } from '@trpc/server';
import { beforeEach, describe, expect, it } from 'vitest';
import { createInnerContext } from '../context';
import { createCaller } from '../root';
import { Runtime } from '../runtime';
import { TEST_RUNTIME_OPTIONS, useCallerFixture } from '../test-caller';

const fx = useCallerFixture();
beforeEach(async () => { await fx.t.sql`truncate lab_writes, idempotency_keys restart identity`; });

const writes = async () => (await fx.t.sql<{ n: number }[]>`select count(*)::int as n from lab_writes`)[0]?.n;

describe('lab.slowWrite with an idempotency key', () => {
  it('writes its two rows once, however often it is retried', async () => {
    const input = { label: 'retried', ms: 0, idempotencyKey: 'slow-write-01' };
    expect(await fx.caller.lab.slowWrite(input)).toEqual({ rows: 2 });
    expect(await fx.caller.lab.slowWrite(input)).toEqual({ rows: 2 });
    const [a, b] = await Promise.all([fx.caller.lab.slowWrite(input), fx.caller.lab.slowWrite(input)]);
    expect([a, b]).toEqual([{ rows: 2 }, { rows: 2 }]);
    expect(await writes()).toBe(2);
    await fx.caller.lab.slowWrite({ label: 'retried', ms: 0 }); // no key: a new write
    expect(await writes()).toBe(4);
  });

  it('refuses the key for a different request and writes nothing', async () => {
    await fx.caller.lab.slowWrite({ label: 'first', ms: 0, idempotencyKey: 'slow-write-02' });
    const error: unknown = await fx.caller.lab.slowWrite({ label: 'second', ms: 0, idempotencyKey: 'slow-write-02' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCError);
    expect((error as TRPCError).code).toBe('CONFLICT');
    expect(await writes()).toBe(2);
  });
});

describe('the lab switched off (Runtime option lab: false, LAB=off on the server)', () => {
  it('refuses every lab procedure with FORBIDDEN and sets no fault', async () => {
    const runtime = new Runtime(fx.t, { ...TEST_RUNTIME_OPTIONS, lab: false });
    try {
      const caller = createCaller(createInnerContext({ runtime, authorized: true }));
      const calls: [string, () => Promise<unknown>][] = [
        ['sleep', () => caller.lab.sleep({ ms: 0 })],
        ['slowWrite', () => caller.lab.slowWrite({ label: 'off', ms: 0 })],
        ['cpu', () => caller.lab.cpu({ rounds: 1 })],
        ['setFaults', () => caller.lab.setFaults({ procedure: 'users.list', fault: { latencyMs: 0, errorRate: 1 } })],
        ['faults', () => caller.lab.faults()],
        ['clearFaults', () => caller.lab.clearFaults()],
      ];
      for (const [name, call] of calls) {
        const error: unknown = await call().catch((e: unknown) => e);
        expect(error, name).toBeInstanceOf(TRPCError);
        expect((error as TRPCError).code, name).toBe('FORBIDDEN');
        expect((error as TRPCError).message, name).toMatch(/lab .*switched off/);
      }
      expect(runtime.faults.all()).toEqual({});
      expect(await writes()).toBe(0);
      // The rest of the API still answers.
      expect(await caller.users.list({ limit: 1 })).toMatchObject({ items: [] });
    } finally {
      await runtime.stop();
    }
  });

  it('without the token, a lab call is still UNAUTHORIZED (the token is checked first)', async () => {
    const runtime = new Runtime(fx.t, { ...TEST_RUNTIME_OPTIONS, lab: false });
    try {
      const caller = createCaller(createInnerContext({ runtime, authorized: false }));
      const error: unknown = await caller.lab.faults().catch((e: unknown) => e);
      expect((error as TRPCError).code).toBe('UNAUTHORIZED');
    } finally {
      await runtime.stop();
    }
  });
});
