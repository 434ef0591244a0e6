import { describe, expect, it } from 'vitest';
import { recordingTrpc } from '../lib/recording-trpc';
import { serverFaultsOptions } from './api';

describe('the server faults query', () => {
  it('hands React Query’s signal to the call: a read cancelled (its view gone) is aborted, not left running', async () => {
    const { ops, queryClient, trpc } = recordingTrpc();
    const read = queryClient.query(serverFaultsOptions(trpc));
    read.catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 0));
    const op = ops.at(-1);
    expect(op?.path).toBe('lab.faults');
    expect(op?.signal?.aborted).toBe(false);
    await queryClient.cancelQueries();
    expect(op?.signal?.aborted).toBe(true);
    await expect(read).rejects.toThrow();
    queryClient.clear();
  });
});
