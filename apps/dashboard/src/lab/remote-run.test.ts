import type { CallContext } from '@asyncscope/client';
import type { CancelOutcome } from '@asyncscope/contract';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CallsStore, type RunConfig } from './calls-store';
import { fakeFetch } from './fake-fetch';
import { LabHost, RemoteLab, type LabHostOptions } from './remote-run';
import type { FetchUser } from './runner';
import type { LabTransport } from './transport';

const base: RunConfig = { count: 6, concurrency: 2, timeoutMs: 2000, retries: 0, minDelayMs: 5, maxDelayMs: 10, latencyMs: 0, errorRate: 0, mode: 'settled', transport: 'websocket' };

const ports: MessagePort[] = [];
afterEach(() => {
  for (const port of ports.splice(0)) port.close();
});

/** The page's end and the lab's, over a real MessageChannel (structured clone, a task per message, like a worker's). */
function lab(fetchUser: FetchUser, extra: Partial<LabHostOptions> = {}) {
  const calls = new CallsStore(() => undefined);
  const log: string[] = [];
  const hosts: LabHost[] = [];
  const connects: number[] = [];
  const remote = new RemoteLab(calls, (failures) => {
    connects.push(failures);
    const channel = new MessageChannel();
    ports.push(channel.port1, channel.port2);
    hosts.push(
      new LabHost(channel.port2, {
        fetchFor: (transport: LabTransport) => {
          log.push(`fetch ${transport}`);
          return fetchUser;
        },
        closeOthers: (keep) => { log.push(`close-others ${keep ?? 'all'}`); },
        setToken: (token) => { log.push(`token ${token}`); },
        ...extra,
      }),
    );
    return channel.port1;
  });
  return { calls, remote, log, hosts, connects };
}

const states = (s: CallsStore) => Array.from({ length: s.run?.config.count ?? 0 }, (_, i) => s.row(i)?.state);
const until = (check: () => boolean): Promise<void> => vi.waitFor(() => { expect(check()).toBe(true); }, { timeout: 2000, interval: 5 });

describe('the lab off the main thread (RemoteLab ⇄ LabHost over a MessageChannel)', () => {
  it('runs in the lab and lands every change in the page’s store: rows render at once, the run ends, done settles', async () => {
    const seen: CallContext[] = [];
    const { calls, remote, log } = lab(fakeFetch((id) => (id.endsWith('-3') ? { fail: 'NOT_FOUND' } : {}), seen));
    remote.setToken('t1');
    const run = remote.start(base, [11, 22, 33], 'rr1');
    // Begun in the page before the lab has it: the rows are there to render.
    expect(states(calls)).toEqual(Array(6).fill('queued'));
    await run.done;
    expect(states(calls)).toEqual(['succeeded', 'succeeded', 'failed', 'succeeded', 'succeeded', 'succeeded']);
    expect(calls.row(2)?.error?.code).toBe('NOT_FOUND');
    expect(calls.run?.endedAt).toBeDefined();
    expect(calls.row(0)?.attempts[0]?.endedAt).toBeDefined();
    expect(seen.map((c) => c.callId).sort()).toEqual(['rr1-1', 'rr1-2', 'rr1-3', 'rr1-4', 'rr1-5', 'rr1-6']);
    // The token came first; the run's transport's client is the one kept.
    expect(log).toEqual(['token t1', 'close-others websocket', 'fetch websocket']);
  });

  it('a cancel from the page reaches the call’s signal in the lab; cancel all stops the rest, queued ones never start', async () => {
    const signals = new Map<string, AbortSignal>();
    const { calls, remote } = lab((id, opts) => {
      signals.set(opts.context.callId ?? '', opts.signal);
      return fakeFetch(() => ({ ms: 10_000 }))(id, opts);
    });
    const run = remote.start({ ...base, count: 5, concurrency: 2 }, [1], 'rr2');
    await until(() => states(calls).filter((s) => s === 'running').length === 2);
    run.cancel(0);
    await until(() => calls.row(0)?.state === 'cancelled');
    expect(signals.get('rr2-1')?.aborted).toBe(true);
    expect(calls.row(0)?.cancelledBy).toBe('you');
    await until(() => states(calls).filter((s) => s === 'running').length === 2); // the freed slot went on
    run.cancelAll();
    await run.done;
    expect(states(calls)).toEqual(Array(5).fill('cancelled'));
    expect(signals.size).toBe(3); // rows 4 and 5 were never sent
    expect([...signals.values()].every((s) => s.aborted)).toBe(true);
    expect(calls.row(4)?.cancelledBy).toBe('cancel-all');
  });

  it('fail-fast: the cause is named in the page too, and its siblings are cancelled by it', async () => {
    const { calls, remote } = lab(fakeFetch((id) => (id.endsWith('-2') ? { ms: 5, fail: 'INTERNAL_SERVER_ERROR' } : { ms: 5_000 })));
    const run = remote.start({ ...base, count: 4, concurrency: 4, mode: 'fail-fast' }, [1], 'rr3');
    await run.done;
    expect(calls.run?.cause?.index).toBe(1);
    expect(calls.row(1)?.isCause).toBe(true);
    expect(calls.row(0)?.cancelledBy).toBe('sibling');
  });

  it('the server’s answers to the lab’s cancels reach the page’s rows', async () => {
    const { calls, remote, hosts } = lab(fakeFetch(() => ({ ms: 10_000 })));
    const run = remote.start({ ...base, count: 2 }, [1], 'rr4');
    await until(() => states(calls).every((s) => s === 'running'));
    const outcomes: CancelOutcome[] = [{ callId: 'rr4-2', status: 'instance-gone' }];
    hosts[0]?.cancelOutcomes(outcomes);
    await until(() => calls.row(1)?.cancelOutcome === 'instance-gone');
    run.cancelAll();
    await run.done;
  });

  it('changes for a run the page has replaced are dropped', async () => {
    const { calls, remote } = lab(fakeFetch(() => ({ ms: 30 })));
    const first = remote.start({ ...base, count: 2 }, [1], 'old');
    calls.beginRun('other', { ...base, count: 2 }, [1]); // the page moved on (as a test of the page's store alone would)
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(states(calls)).toEqual(['queued', 'queued']);
    expect(calls.run?.endedAt).toBeUndefined();
    void first.done;
  });

  it('a broken lab fails the calls still going with its reason, ends the run, and the next run connects anew', async () => {
    const { calls, remote, connects, log } = lab(fakeFetch(() => ({ ms: 10_000 })));
    remote.setToken('t1');
    const run = remote.start({ ...base, count: 3, concurrency: 1 }, [1], 'rr5');
    await until(() => calls.row(0)?.state === 'running');
    remote.broken('The lab’s worker stopped (test)');
    await run.done;
    expect(states(calls)).toEqual(['failed', 'failed', 'failed']);
    expect(calls.row(0)?.error?.message).toBe('The lab’s worker stopped (test)');
    expect(calls.run?.endedAt).toBeDefined();
    const next = remote.start({ ...base, count: 1 }, [1], 'rr6');
    expect(connects).toEqual([0, 1]);
    await until(() => calls.row(0)?.state === 'running');
    expect(log.filter((l) => l.startsWith('token'))).toEqual(['token t1', 'token t1']); // the new lab got the token
    next.cancelAll();
    await next.done;
  });

  it('a new token goes to the lab and closes its clients (their sockets were authenticated with the old one)', async () => {
    const { remote, log } = lab(fakeFetch(() => ({})));
    remote.setToken('t1');
    remote.setToken('t1');
    remote.setToken('t2');
    await until(() => log.length === 3);
    expect(log).toEqual(['token t1', 'token t2', 'close-others all']);
  });
});
