import type { Fault, FaultTarget } from '@asyncscope/contract';
import { describe, expect, it } from 'vitest';
import { LabFaults, NO_FAULT, type FaultsApi } from './lab-faults';

/** The server's fault table, as lab.setFaults / lab.faults keep it (no fault = no entry). */
function fakeServer(): FaultsApi & { faults: Map<string, Fault>; unloads: string[] } {
  const faults = new Map<string, Fault>();
  const unloads: string[] = [];
  return {
    faults,
    unloads,
    set: (procedure: FaultTarget, fault: Fault) => {
      if (fault.latencyMs === 0 && fault.errorRate === 0) faults.delete(procedure);
      else faults.set(procedure, fault);
      return Promise.resolve(Object.fromEntries(faults));
    },
    list: () => Promise.resolve(Object.fromEntries(faults)),
    clearOnUnload: (procedure) => {
      unloads.push(procedure);
      faults.delete(procedure);
    },
  };
}

const slow: Fault = { latencyMs: 300, errorRate: 0 };

describe('LabFaults: the lab’s server-wide fault lasts as long as its run', () => {
  it('clears the fault it set when the run ends', async () => {
    const server = fakeServer();
    const faults = new LabFaults(server);
    await faults.apply('users.byId', slow);
    expect(server.faults.get('users.byId')).toEqual(slow);
    expect(await faults.release()).toBe(true);
    expect(server.faults.size).toBe(0);
    expect(faults.held).toBeNull();
  });

  it('keeps a pinned fault, and clears it once unpinned and released', async () => {
    const server = fakeServer();
    const faults = new LabFaults(server);
    faults.setPinned(true);
    await faults.apply('users.byId', slow);
    expect(await faults.release()).toBe(false);
    faults.releaseOnUnload();
    expect(server.faults.get('users.byId')).toEqual(slow);
    faults.setPinned(false);
    expect(await faults.release()).toBe(true);
    expect(server.faults.size).toBe(0);
  });

  it('leaves alone a fault someone else changed meanwhile', async () => {
    const server = fakeServer();
    const faults = new LabFaults(server);
    await faults.apply('users.byId', slow);
    await server.set('users.byId', { latencyMs: 50, errorRate: 0.1 }); // another tab, or curl
    expect(await faults.release()).toBe(false);
    expect(server.faults.get('users.byId')).toEqual({ latencyMs: 50, errorRate: 0.1 });
  });

  it('holds nothing for a run without a fault (and that run clears the procedure’s fault, as its form says)', async () => {
    const server = fakeServer();
    await server.set('users.byId', slow);
    const faults = new LabFaults(server);
    await faults.apply('users.byId', NO_FAULT);
    expect(server.faults.size).toBe(0);
    expect(faults.held).toBeNull();
    expect(await faults.release()).toBe(false);
  });

  it('clears at once when the page goes away, without waiting for an answer', async () => {
    const server = fakeServer();
    const faults = new LabFaults(server);
    await faults.apply('users.byId', slow);
    faults.releaseOnUnload();
    expect(server.unloads).toEqual(['users.byId']);
    expect(await faults.release()).toBe(false); // nothing held any more
  });

  it('clears on the way out a fault whose answer is still on its way (the server has set it)', async () => {
    const server = fakeServer();
    const set = server.set.bind(server);
    let answer: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => { answer = resolve; });
    server.set = async (procedure, fault) => {
      const result = await set(procedure, fault); // set on the server...
      await answered; // ...and the page closes before the answer arrives
      return result;
    };
    const faults = new LabFaults(server);
    const applied = faults.apply('users.byId', slow);
    await Promise.resolve();
    expect(server.faults.get('users.byId')).toEqual(slow);
    faults.releaseOnUnload();
    expect(server.unloads).toEqual(['users.byId']);
    expect(server.faults.size).toBe(0);
    answer();
    await applied;
  });

  it('a release still reading the server does not undo the next run’s fault', async () => {
    const server = fakeServer();
    let unblock: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { unblock = resolve; });
    server.list = async () => {
      const snapshot = Object.fromEntries(server.faults); // read before the next run sets its fault...
      await gate; // ...and answered after
      return snapshot;
    };
    const faults = new LabFaults(server);
    await faults.apply('users.byId', slow);
    const released = faults.release();
    const next = faults.apply('users.byId', { latencyMs: 8000, errorRate: 0 });
    unblock();
    expect(await released).toBe(true);
    await next;
    expect(server.faults.get('users.byId')).toEqual({ latencyMs: 8000, errorRate: 0 });
    expect(faults.held).toEqual({ procedure: 'users.byId', fault: { latencyMs: 8000, errorRate: 0 } });
  });

  it('tells subscribers when what it holds or its pin changes', async () => {
    const faults = new LabFaults(fakeServer());
    let calls = 0;
    const off = faults.subscribe(() => { calls++; });
    faults.setPinned(true);
    await faults.apply('users.byId', slow);
    off();
    faults.setPinned(false);
    expect(calls).toBe(2);
  });

  it('a launch’s signal reaches the set; one already aborted sets nothing and holds nothing', async () => {
    const server = fakeServer();
    const signals: (AbortSignal | undefined)[] = [];
    const faults = new LabFaults({ ...server, set: (procedure, fault, signal) => { signals.push(signal); return server.set(procedure, fault); } });
    const launch = new AbortController();
    await faults.apply('users.byId', slow, launch.signal);
    expect(signals).toEqual([launch.signal]);
    launch.abort(new Error('gave up'));
    await expect(faults.apply('users.list', slow, launch.signal)).rejects.toThrow('gave up');
    expect(signals).toHaveLength(1);
    expect(faults.held).toEqual({ procedure: 'users.byId', fault: slow });
  });
});
