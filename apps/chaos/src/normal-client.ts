/**
 * The well-behaved client whose fate the abuse scenarios measure: one users.byId after another (2 s
 * client timeout each, short pause), until stopped or its time is up.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { query, type CallResult, type Target } from './http';

export interface NormalClient {
  results: CallResult[];
  stop(): Promise<void>;
}

export function normalClient(t: Target, options: { maxMs: number; timeoutMs?: number; pauseMs?: number; users: number }): NormalClient {
  const results: CallResult[] = [];
  const controller = new AbortController();
  const until = Date.now() + options.maxMs;
  const loop = (async () => {
    for (let i = 0; i < 100_000 && !controller.signal.aborted && Date.now() < until; i++) {
      const r = await query(t, 'users.byId', { id: 1 + (i % options.users) }, { signal: controller.signal, timeoutMs: options.timeoutMs ?? 2000 });
      if (r.code !== 'ABORTED') results.push(r);
      await sleep(options.pauseMs ?? 50, undefined, { signal: controller.signal }).catch(() => undefined);
    }
  })();
  return {
    results,
    stop: async () => {
      controller.abort();
      await loop;
    },
  };
}
