import { TRPCError } from '@trpc/server';
import { beforeEach, describe, expect, it } from 'vitest';
import { useCallerFixture } from '../test-caller';

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
