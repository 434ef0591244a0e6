import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BrokerUnavailableError, NO_RESPONDERS, connectBroker, type Broker, type BrokerOptions, type FollowedRecord, type MissedReason } from './broker.ts';
import { startNatsServer, type TestNatsServer } from './test-nats-server.ts';

let nats: TestNatsServer;
let counter = 0;
const open: Broker[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close(AbortSignal.timeout(3_000))));
});

afterAll(async () => {
  await nats.dispose();
});

/** A broker on its own stream and prefix (streams may not share subjects), closed after the test. */
function names(): Pick<BrokerOptions, 'stream' | 'subjectPrefix'> {
  counter++;
  return { stream: `TEST_${counter}`, subjectPrefix: `t${counter}` };
}

function broker(shared: Pick<BrokerOptions, 'stream' | 'subjectPrefix'>, overrides: Partial<BrokerOptions> = {}): Broker {
  const b = connectBroker({
    url: nats.url,
    instanceId: `test:${counter}:${open.length}`,
    maxEvents: 100_000,
    maxAgeMs: 3_600_000,
    maxBuffered: 10_000,
    ...shared,
    ...overrides,
  });
  open.push(b);
  return b;
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000, detail?: () => unknown): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail ? `: ${JSON.stringify(detail())}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Follows from `after` into arrays until stopped. */
function collect(b: Broker, after: number) {
  const records: FollowedRecord[] = [];
  const missed: { afterSeq: number; n: number; reason: MissedReason }[] = [];
  const streams: string[] = [];
  const resets: string[] = [];
  const batches: number[] = [];
  const stop = new AbortController();
  const done = b.follow(after, stop.signal, {
    onRecords: (batch) => {
      batches.push(batch.length);
      records.push(...batch);
    },
    onMissed: (afterSeq, n, reason) => missed.push({ afterSeq, n, reason }),
    onReset: (bootId) => resets.push(bootId),
    onStream: (bootId) => streams.push(bootId),
  });
  return {
    records,
    missed,
    resets,
    streams,
    batches,
    /** The last position reached: a record or a gap. */
    position: () => {
      const m = missed.at(-1);
      return Math.max(records.at(-1)?.seq ?? 0, m ? m.afterSeq + (m.reason === 'retention' ? m.n : 1) : 0);
    },
    stop: async () => {
      stop.abort();
      await done;
    },
  };
}

describe('publish and follow', () => {
  it('delivers in order with contiguous stream seqs, batched, and resumes from a seq', async () => {
    const s = names();
    const b = broker(s);
    await until('connected', () => b.status().connected);
    expect(b.bootId()).toMatch(/^js-[0-9a-z]+$/);
    for (let i = 0; i < 2_000; i++) b.publish({ i });
    const all = collect(b, 0);
    await until('2000 records', () => all.records.length === 2_000);
    expect(all.records.map((r) => r.seq)).toEqual(Array.from({ length: 2_000 }, (_, i) => i + 1));
    expect(all.records.map((r) => (r.record as { i: number }).i)).toEqual(Array.from({ length: 2_000 }, (_, i) => i));
    expect(all.missed).toEqual([]);
    expect(all.batches.length).toBeLessThan(2_000); // batched, not one call per record
    await all.stop();

    // Another instance resumes after seq 1500: exactly 1501.., live ones included.
    const other = broker(s);
    const resumed = collect(other, 1_500);
    for (let i = 2_000; i < 2_100; i++) b.publish({ i });
    await until('600 records', () => resumed.records.length === 600);
    expect(resumed.records.map((r) => r.seq)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1_501));
    expect(resumed.missed).toEqual([]);
    await resumed.stop();
    expect(b.status()).toMatchObject({ connected: true, published: 2_100, dropped: 0, buffered: 0 });
    const state = await b.streamState(AbortSignal.timeout(2_000));
    expect(state).toEqual({ bootId: b.bootId(), firstSeq: 1, lastSeq: 2_100 });
  });

  it('reports exactly what retention by count removed', async () => {
    const b = broker(names(), { maxEvents: 100 });
    await until('connected', () => b.status().connected);
    for (let i = 0; i < 300; i++) b.publish({ i });
    await until('published', () => b.status().published === 300);
    const c = collect(b, 50);
    await until('100 records', () => c.records.length === 100);
    // The stream holds 201..300: 51..200 (150 records) are gone.
    expect(c.missed).toEqual([{ afterSeq: 50, n: 150, reason: 'retention' }]);
    expect(c.records[0]?.seq).toBe(201);
    await c.stop();
  });

  it('a full buffer drops with a count, then one gap marker says how many', async () => {
    const b = broker(names(), { maxBuffered: 1_000 });
    await until('connected', () => b.status().connected);
    const t0 = performance.now();
    for (let i = 0; i < 5_000; i++) b.publish({ i }); // synchronous: the pump has not run yet
    const ms = performance.now() - t0;
    expect(b.status()).toMatchObject({ buffered: 1_000, dropped: 4_000 });
    const c = collect(b, 0);
    await until('records and the marker', () => c.position() === 1_001);
    expect(c.records.map((r) => (r.record as { i: number }).i)).toEqual(Array.from({ length: 1_000 }, (_, i) => i));
    // The marker is published first (the pump sends the pending gap before the buffer).
    expect(c.missed).toEqual([{ afterSeq: 0, n: 4_000, reason: 'gap-marker' }]);
    expect(b.status()).toMatchObject({ published: 1_000, dropped: 4_000, buffered: 0 });
    expect(ms).toBeLessThan(200);
    await c.stop();
  });
});

describe('broker down and back', () => {
  it('never throws or blocks, stays bounded, then publishes a gap marker and followers resume without duplicates', async () => {
    const s = names();
    const b = broker(s, { maxBuffered: 500 });
    const statuses: boolean[] = [];
    const watcher = broker(s);
    await until('connected', () => b.status().connected && watcher.status().connected);
    const c = collect(watcher, 0);
    let i = 0;
    let maxBuffered = 0;
    let maxCallMs = 0;
    let totalCallMs = 0;
    const tick = (): void => {
      for (let k = 0; k < 50; k++) {
        const t = performance.now();
        b.publish({ i: i++ });
        const ms = performance.now() - t;
        maxCallMs = Math.max(maxCallMs, ms);
        totalCallMs += ms;
      }
      maxBuffered = Math.max(maxBuffered, b.status().buffered);
      statuses.push(b.status().connected);
    };
    const timer = setInterval(tick, 5);
    try {
      await until('some records followed', () => c.records.length > 500);
      await nats.stop(); // mid-publish
      await until('seen down', () => !b.status().connected);
      await until('drops counted', () => b.status().dropped > 1_000);
      expect(watcher.status().connected).toBe(false);
      await nats.start();
      await until('back', () => b.status().connected, 15_000);
      const droppedAtReturn = b.status().dropped;
      await until('the gap marker', () => c.missed.length > 0, 15_000);
      const marker = c.missed[0];
      expect(marker?.n).toBeGreaterThanOrEqual(droppedAtReturn > 0 ? 1 : 0);
      const seenAtMarker = c.records.length;
      await until('records after the marker', () => c.records.length > seenAtMarker + 500, 15_000);
    } finally {
      clearInterval(timer);
    }
    await until('all published', () => b.status().buffered === 0 && b.status().inFlight === 0);
    const total = i;
    const { published, dropped } = b.status();
    expect(published + dropped).toBe(total);
    const markers = (): number => c.missed.reduce((sum, m) => sum + m.n, 0);
    // Every publish() is either followed or counted in a marker (the last marker may come after the records).
    await until('follower at the end', () => c.records.length + markers() === total, 10_000, () => ({
      followed: c.records.length,
      published,
      dropped,
      total,
      missed: c.missed,
      last: c.records.at(-1)?.seq,
      holes: c.records.flatMap((r, k) => (k > 0 && r.seq !== (c.records[k - 1]?.seq ?? 0) + 1 ? [[c.records[k - 1]?.seq, r.seq]] : [])),
    }));
    // No duplicate, in order, and every seq is a record or a gap marker.
    const seqs = c.records.map((r) => r.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    const ids = c.records.map((r) => (r.record as { i: number }).i);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(published);
    expect(markers()).toBe(dropped);
    expect(c.position()).toBe(seqs.length + c.missed.length);
    expect(c.resets).toEqual([]);
    // Bounded: the buffer, plus the failed publishes awaiting a retry (at most maxInFlight, 256).
    expect(maxBuffered).toBeLessThanOrEqual(500 + 256);
    // Never blocks: microseconds per call (the max includes whatever paused this process on a loaded machine).
    expect(totalCallMs / total).toBeLessThan(0.1);
    expect(maxCallMs).toBeLessThan(250);
    expect(statuses).toContain(false);
    await c.stop();
  }, 60_000);

  it('a broker down at start: returns at once, says so, drops, and connects when the broker comes', async () => {
    await nats.stop();
    const changes: { connected: boolean; reason: string }[] = [];
    const t0 = performance.now();
    const b = broker(names(), { onStatus: (c) => changes.push(c), url: nats.url.replace('nats://', 'nats://user:secret@') });
    expect(performance.now() - t0).toBeLessThan(50);
    for (let i = 0; i < 10; i++) b.publish({ i });
    expect(b.status()).toMatchObject({ connected: false, dropped: 10, buffered: 0 });
    await until('down reported', () => changes.length > 0);
    expect(changes[0]?.connected).toBe(false);
    const c = collect(b, 0);
    await nats.start();
    await until('connected', () => b.status().connected, 15_000);
    b.publish({ i: 10 });
    await until('marker and record', () => c.position() === 2, 10_000);
    expect(c.missed).toEqual([{ afterSeq: 0, n: 10, reason: 'gap-marker' }]);
    expect(c.records.map((r) => r.record)).toEqual([{ i: 10 }]);
    expect(changes.filter((x) => !x.connected)).toHaveLength(1); // once per outage, not once per attempt
    expect(changes.at(-1)?.connected).toBe(true);
    expect(JSON.stringify(changes)).not.toContain('secret');
    await c.stop();
  }, 30_000);

  it('a stream recreated under a follower is a reset, then it follows the new one from seq 1', async () => {
    const s = names();
    const b = broker(s);
    await until('connected', () => b.status().connected);
    for (let i = 0; i < 10; i++) b.publish({ i });
    const c = collect(b, 0);
    await until('10', () => c.records.length === 10);
    const firstBoot = b.bootId();
    // Wipe the broker's data: same address, new storage, so the stream is created again.
    await nats.wipe();
    await until('back', () => b.status().connected, 15_000);
    await until('reset', () => c.resets.length === 1, 15_000);
    expect(c.resets[0]).not.toBe(firstBoot);
    expect(c.streams[0]).toBe(firstBoot);
    expect(c.streams.at(-1)).toBe(c.resets[0]);
    expect(b.bootId()).toBe(c.resets[0]);
    for (let i = 10; i < 15; i++) b.publish({ i });
    await until('5 more', () => c.records.length === 15, 10_000);
    expect(c.records.slice(10).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(c.missed).toEqual([]);
    await c.stop();
  }, 60_000);
});

describe('a stream deleted while connected', () => {
  let monitored: TestNatsServer;
  beforeAll(async () => {
    monitored = await startNatsServer({ monitor: true });
  });
  afterAll(async () => {
    await monitored.dispose();
  });

  /** Messages clients sent to the server so far (every publish attempt is one, stored or not). */
  async function inMsgs(): Promise<number> {
    const varz = (await (await fetch(`${monitored.monitorUrl ?? ''}/varz`, { signal: AbortSignal.timeout(2_000) })).json()) as { in_msgs: number };
    return varz.in_msgs;
  }

  async function deleteAndResume(opts: { silentSubscriber: boolean }): Promise<{ attemptsInFirstSecond: number }> {
    const s = names();
    const b = broker(s, { url: monitored.url });
    await until('connected', () => b.status().connected);
    for (let i = 0; i < 5; i++) b.publish({ i });
    const c = collect(b, 0);
    await until('5', () => c.records.length === 5);
    const firstBoot = b.bootId();
    const nc = await connect({ servers: monitored.url });
    // A plain subscriber on the subject keeps the 503 from coming: the publish times out instead.
    const sub = opts.silentSubscriber ? nc.subscribe(`${s.subjectPrefix}.hops.>`) : undefined;
    await nc.flush();
    let i = 5;
    const timer = setInterval(() => {
      b.publish({ i: i++ });
    }, 50);
    try {
      const jsm = await jetstreamManager(nc);
      const before = await inMsgs();
      await jsm.streams.delete(s.stream);
      const deletedAt = Date.now();
      await new Promise((r) => setTimeout(r, 1_000));
      const attemptsInFirstSecond = (await inMsgs()) - before;
      await until('reset', () => c.resets.length === 1, 15_000, () => b.status());
      expect(b.status().connected).toBe(true);
      expect(b.bootId()).not.toBe(firstBoot);
      expect(c.resets[0]).toBe(b.bootId());
      const atReset = c.records.length;
      await until('records in the new stream', () => c.records.length > atReset + 5, 10_000);
      const info = await jsm.streams.info(s.stream);
      expect(info.state.messages).toBeGreaterThan(5);
      // Created again only after the deletion was over: one added while the server still removes the old files
      // loses its own with them (it acks, and delivers nothing).
      expect(Date.parse(info.created)).toBeGreaterThan(deletedAt);
      return { attemptsInFirstSecond };
    } finally {
      clearInterval(timer);
      sub?.unsubscribe();
      await nc.close();
      await c.stop();
    }
  }

  it('a publish answered "no stream" creates it again, publishing resumes, and failures do not spin', async () => {
    const { attemptsInFirstSecond } = await deleteAndResume({ silentSubscriber: false });
    // ~20 records in that second, each tried at most 3 times, plus the link's own requests (a spinning marker: thousands).
    expect(attemptsInFirstSecond).toBeLessThan(300);
  }, 30_000);

  it('a publish that times out (a plain subscriber on the subject) looks at the stream and creates it again', async () => {
    await deleteAndResume({ silentSubscriber: true });
  }, 40_000);
});

describe('presence', () => {
  it('shows an instance up, gone after silence, gone at once on withdraw', async () => {
    const s = names();
    const a = broker(s, { instanceId: 'host-a:1' });
    const c = broker(s, { instanceId: 'host-c:3' });
    const observer = broker(s, { instanceId: 'host-b:2', presenceGoneMs: 600 });
    await until('connected', () => a.status().connected && observer.status().connected && c.status().connected);
    a.announce({ inFlight: 3 });
    c.announce({ inFlight: 1 });
    await until('both up', () => observer.instances().filter((x) => x.state === 'up').length === 2);
    expect(observer.instances().find((x) => x.instance === 'host-a:1')).toMatchObject({ state: 'up', stats: { inFlight: 3 } });
    // c falls silent: gone after presenceGoneMs.
    const announcing = setInterval(() => {
      a.announce({ inFlight: 4 });
    }, 200);
    try {
      await until('c gone', () => observer.instances().find((x) => x.instance === 'host-c:3')?.state === 'gone', 3_000);
      expect(observer.instances().find((x) => x.instance === 'host-a:1')).toMatchObject({ state: 'up', stats: { inFlight: 4 } });
      const t0 = Date.now();
      clearInterval(announcing);
      await a.withdraw();
      await until('a gone', () => observer.instances().find((x) => x.instance === 'host-a:1')?.state === 'gone', 2_000);
      expect(Date.now() - t0).toBeLessThan(500); // at once, not after the silence period
    } finally {
      clearInterval(announcing);
    }
  });
});

describe('instance ids that differ only in punctuation', () => {
  it('get their own presence key and their own subject', async () => {
    const s = names();
    const colon = broker(s, { instanceId: 'a:1' });
    const underscore = broker(s, { instanceId: 'a_1' });
    const observer = broker(s, { instanceId: 'observer:1' });
    await colon.serve('who', () => Promise.resolve('a:1'));
    await underscore.serve('who', () => Promise.resolve('a_1'));
    await until('connected', () => colon.status().connected && underscore.status().connected && observer.status().connected);
    colon.announce({ n: 1 });
    underscore.announce({ n: 2 });
    await until('both up', () => observer.instances().filter((x) => x.state === 'up').length === 2, 5_000, () => observer.instances());
    expect(observer.instances().map((x) => [x.instance, x.stats]).sort()).toEqual([
      ['a:1', { n: 1 }],
      ['a_1', { n: 2 }],
    ]);
    for (let k = 0; k < 5; k++) {
      await expect(observer.request('a:1', 'who', null, AbortSignal.timeout(3_000))).resolves.toBe('a:1');
      await expect(observer.request('a_1', 'who', null, AbortSignal.timeout(3_000))).resolves.toBe('a_1');
    }
  });
});

describe('request/reply', () => {
  it('answers from a live instance, NO_RESPONDERS for a gone one, a typed error when the broker is down', async () => {
    const s = names();
    const owner = broker(s, { instanceId: 'owner:1' });
    const asker = broker(s, { instanceId: 'asker:2' });
    await owner.serve('cancel', async (payload) => {
      await new Promise((r) => setTimeout(r, 5));
      return { echo: payload };
    });
    await owner.serve('fails', () => Promise.reject(new Error('nope')));
    await until('connected', () => owner.status().connected && asker.status().connected);
    await expect(asker.request('owner:1', 'cancel', { callIds: ['x'] }, AbortSignal.timeout(3_000))).resolves.toEqual({ echo: { callIds: ['x'] } });
    await expect(asker.request('owner:1', 'fails', {}, AbortSignal.timeout(3_000))).rejects.toThrow('nope');
    await expect(asker.request('nobody:9', 'cancel', {}, AbortSignal.timeout(3_000))).resolves.toBe(NO_RESPONDERS);
    await owner.close();
    await expect(asker.request('owner:1', 'cancel', {}, AbortSignal.timeout(3_000))).resolves.toBe(NO_RESPONDERS);
    await nats.stop();
    await until('down', () => !asker.status().connected);
    await expect(asker.request('owner:1', 'cancel', {}, AbortSignal.timeout(3_000))).rejects.toBeInstanceOf(BrokerUnavailableError);
    await nats.start();
    await until('back', () => asker.status().connected, 15_000);
  }, 30_000);

  it('serving a suffix again replaces the handler (one subscription per suffix)', async () => {
    const s = names();
    const owner = broker(s, { instanceId: 'owner:again' });
    const asker = broker(s, { instanceId: 'asker:again' });
    await until('connected', () => owner.status().connected && asker.status().connected);
    await owner.serve('v', () => Promise.resolve('old'));
    await owner.serve('v', async () => {
      await new Promise((r) => setTimeout(r, 50)); // slower: a leftover old subscription would answer first
      return 'new';
    });
    // serve() resolved: the server has the new SUB (after the old one's UNSUB), so there is a responder at once.
    for (let k = 0; k < 3; k++) await expect(asker.request('owner:again', 'v', null, AbortSignal.timeout(3_000))).resolves.toBe('new');
  });

  it('a subject served on a ready broker has a responder as soon as serve() resolves (no NO_RESPONDERS window)', async () => {
    const s = names();
    const owner = broker(s, { instanceId: 'owner:fresh' });
    const asker = broker(s, { instanceId: 'asker:fresh' });
    await until('connected', () => owner.status().connected && asker.status().connected);
    // Each serve is a new SUB; without the flush, the asker's request (another connection) often beat it.
    const answers: unknown[] = [];
    for (let k = 0; k < 40; k++) {
      await owner.serve(`s${k}`, () => Promise.resolve(k));
      answers.push(await asker.request('owner:fresh', `s${k}`, null, AbortSignal.timeout(3_000)));
    }
    expect(answers).toEqual(Array.from({ length: 40 }, (_, k) => k));
    // Asked with a signal already aborted: it rejects with its reason and serves nothing.
    const gaveUp = new AbortController();
    gaveUp.abort(new Error('not waiting'));
    await expect(owner.serve('late', () => Promise.resolve('late'), gaveUp.signal)).rejects.toThrow('not waiting');
    await expect(asker.request('owner:fresh', 'late', null, AbortSignal.timeout(3_000))).resolves.toBe(NO_RESPONDERS);
  });

  it('a served subject set up before the broker came back is served after it', async () => {
    const s = names();
    const owner = broker(s, { instanceId: 'owner:late' });
    await owner.serve('ping', () => Promise.resolve('pong'));
    const asker = broker(s, { instanceId: 'asker:late' });
    await until('connected', () => owner.status().connected && asker.status().connected);
    await expect(asker.request('owner:late', 'ping', null, AbortSignal.timeout(3_000))).resolves.toBe('pong');
  });
});

describe('withdraw', () => {
  it('a presence put still in flight does not bring the key back', async () => {
    const s = names();
    const observer = broker(s, { instanceId: 'observer:w', presenceGoneMs: 3_000 });
    await until('observer connected', () => observer.status().connected);
    for (let round = 0; round < 5; round++) {
      const a = broker(s, { instanceId: `withdrawer:${round}` });
      await until('connected', () => a.status().connected);
      a.announce({ round: 0 });
      await until('up', () => observer.instances().some((x) => x.instance === `withdrawer:${round}` && x.state === 'up'));
      a.announce({ round: 1 }); // in flight when withdraw starts
      await a.withdraw();
      await until('gone', () => observer.instances().find((x) => x.instance === `withdrawer:${round}`)?.state === 'gone', 2_000);
      const t0 = Date.now();
      while (Date.now() - t0 < 300) {
        expect(observer.instances().find((x) => x.instance === `withdrawer:${round}`)?.state).toBe('gone');
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }, 30_000);
});

describe('close', () => {
  it('releases everything: a process that used every feature exits by itself', async () => {
    const script = fileURLToPath(new URL('./test-close-script.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, nats.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(-1);
      }, 15_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(out).toContain('closed');
    expect(code, out).toBe(0);
  }, 20_000);
});

describe('figures', () => {
  it('measures publish throughput and publish→follow latency on loopback', async () => {
    const s = names();
    const b = broker(s, { maxBuffered: 50_000 });
    const follower = broker(s);
    await until('connected', () => b.status().connected && follower.status().connected);
    // Throughput: 30,000 records pushed as fast as the buffer takes them, until all are acked.
    const n = 30_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) b.publish({ type: 'started', seq: 0, at: Date.now(), callId: `c${i}`, path: 'users.byId', instance: 'bench:1' });
    await until('acked', () => b.status().published === n, 30_000);
    const rate = n / ((performance.now() - t0) / 1000);
    expect(b.status().dropped).toBe(0);

    // Latency: 2,000 records at ~1,000/s, each stamped when published, timed when the follower gets it.
    const latencies: number[] = [];
    const stop = new AbortController();
    const following = follower.follow(n, stop.signal, {
      onRecords: (batch) => {
        const now = performance.now() + performance.timeOrigin;
        for (const r of batch) latencies.push(now - (r.record as { t: number }).t);
      },
      onMissed: () => undefined,
      onReset: () => undefined,
    });
    for (let i = 0; i < 2_000; i++) {
      b.publish({ t: performance.now() + performance.timeOrigin });
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 10));
    }
    await until('all followed', () => latencies.length === 2_000, 15_000);
    stop.abort();
    await following;
    latencies.sort((x, y) => x - y);
    const p = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
    console.log(
      `FIGURES publish throughput: ${Math.round(rate)} events/s (${n} records, acked); publish→follow latency p50 ${p(0.5).toFixed(2)} ms, p99 ${p(0.99).toFixed(2)} ms (${latencies.length} records at ~1000/s)`,
    );
    expect(rate).toBeGreaterThan(1_000);
  }, 60_000);
});

describe('a broker without JetStream (connects, never ready)', () => {
  let plain: TestNatsServer;
  beforeAll(async () => {
    plain = await startNatsServer({ jetstream: false });
  });
  afterAll(async () => {
    await plain.dispose();
  });

  it('says why once, counts the drops, and closes within its bound', async () => {
    const changes: { connected: boolean; reason: string }[] = [];
    const b = connectBroker({ url: plain.url, instanceId: 'nojs:1', ...names(), maxEvents: 100, maxAgeMs: 60_000, maxBuffered: 100, onStatus: (c) => changes.push(c) });
    await until('told', () => changes.length > 0, 5_000);
    expect(changes[0]?.connected).toBe(false);
    expect(changes[0]?.reason).toMatch(/jetstream|no responders|503/i);
    await new Promise((r) => setTimeout(r, 1_500)); // several more attempts: still told once
    expect(changes).toHaveLength(1);
    for (let i = 0; i < 10; i++) b.publish({ i });
    expect(b.status()).toMatchObject({ connected: false, dropped: 10, buffered: 0 });
    const t0 = performance.now();
    await b.close(AbortSignal.timeout(1_000));
    expect(performance.now() - t0).toBeLessThan(1_500);
  }, 15_000);

  it('a process using it exits by itself after close', async () => {
    const script = fileURLToPath(new URL('./test-close-script.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, plain.url, 'nojs'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(-1);
      }, 15_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(out).toContain('closed');
    expect(code, out).toBe(0);
  }, 20_000);

  it('tls:// requires TLS: never falls back to clear text', async () => {
    const changes: { connected: boolean; reason: string }[] = [];
    // A server with JetStream but without TLS: clear text would connect and become ready.
    const b = broker(names(), { url: nats.url.replace('nats://', 'tls://user:secret@'), onStatus: (c) => changes.push(c) });
    await until('told', () => changes.length > 0, 5_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(b.status().connected).toBe(false);
    expect(changes.every((c) => !c.connected)).toBe(true);
    expect(changes[0]?.reason).toMatch(/tls/i);
    expect(JSON.stringify(changes)).not.toContain('secret');
  });

  it('refuses a URL scheme it does not know', () => {
    expect(() => connectBroker({ url: 'ws://127.0.0.1:1', instanceId: 'x', ...names(), maxEvents: 1, maxAgeMs: 1, maxBuffered: 1 })).toThrow(/nats:\/\/ or tls:\/\//);
  });
});
