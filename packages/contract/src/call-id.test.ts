import { describe, expect, it } from 'vitest';
import { attemptCallId, batchCallId, callIdSchema, isCallId, newCallId, parseCallId } from './call-id';

describe('the call-id format', () => {
  it('round-trips retries and batch positions', () => {
    expect(parseCallId(attemptCallId('row-7', 2))).toEqual({ base: 'row-7', attempt: 2, batchIndex: undefined });
    expect(parseCallId(attemptCallId('row-7', 0))).toEqual({ base: 'row-7', attempt: 0, batchIndex: undefined });
    expect(parseCallId(batchCallId('req-1', 3))).toEqual({ base: 'req-1', attempt: 0, batchIndex: 3 });
    expect(parseCallId(`${attemptCallId('row', 1)}#4`)).toEqual({ base: 'row', attempt: 1, batchIndex: 4 });
    expect(batchCallId('req-1', 0)).toBe('req-1');
  });

  it('accepts 1 to 128 safe characters and nothing else', () => {
    for (const ok of ['a', 'r1-00042~3', 'x'.repeat(128), 'uuid:1.2_3#4']) expect(isCallId(ok), ok).toBe(true);
    for (const bad of ['', 'x'.repeat(129), 'has space', 'a/b', 'é', 'a\nb', 42]) expect(isCallId(bad), String(bad)).toBe(false);
    expect(callIdSchema.safeParse('a b').error?.issues[0]?.message).toMatch(/1 to 128 letters, digits/);
  });

  it('makes fresh ids that are valid and distinct', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newCallId()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(isCallId(id)).toBe(true);
  });
});
