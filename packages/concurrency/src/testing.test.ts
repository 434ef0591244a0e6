import { describe, expect, it } from 'vitest';
import { until } from './testing';

describe('until', () => {
  it('returns the first value that is not undefined, null or false (0 and "" count as values)', async () => {
    const answers = [undefined, null, false, 0];
    await expect(until('zero', () => answers.shift())).resolves.toBe(0);
    let calls = 0;
    await expect(until('the third call', () => Promise.resolve(++calls === 3 && 'done'))).resolves.toBe('done');
  });

  it('fails naming what it waited for, with the context', async () => {
    await expect(until('never', () => false, { timeoutMs: 20, context: () => 'server output' })).rejects.toThrow('timed out after 20 ms waiting for never:\nserver output');
  });

  it('ends at once with the error of a check that throws, and stops on abort', async () => {
    const gone = new Error('the process exited');
    await expect(until('x', () => { throw gone; })).rejects.toBe(gone);
    await expect(until('x', () => false, { signal: AbortSignal.abort('stop') })).rejects.toBe('stop');
  });
});
