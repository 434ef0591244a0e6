import { describe, expect, it } from 'vitest';
import { ClusterFeed, type OwnedEvent } from './cluster-feed';
import type { ActivityEvent } from './log';

/** A hop as the broker delivers it: `seq` is the stream's. */
const hop = (seq: number, instance = 'a', callId = `c${seq}`): ActivityEvent => ({ seq, at: seq, callId, path: 'users.byId', instance, type: 'started' });
const owned = (seq: number, instance = 'a', callId = `c${seq}`, owner = 'alice'): OwnedEvent => ({ ...hop(seq, instance, callId), owner });
const seqs = (events: readonly ActivityEvent[]) => events.map((e) => e.seq);

describe('ClusterFeed', () => {
  it('reads ingested events in stream order and ignores redelivered ones', () => {
    const feed = new ClusterFeed('js-abc', { capacity: 10 });
    expect(feed.lastSeq).toBe(0);
    expect(feed.read(0)).toEqual({ events: [], missed: 0 });
    feed.ingest([hop(1), hop(2, 'b'), hop(3)]);
    feed.ingest([hop(2), hop(3), hop(4, 'b')]); // an ordered consumer's redelivery after a reconnect
    expect(feed.lastSeq).toBe(4);
    expect(seqs(feed.read(0).events)).toEqual([1, 2, 3, 4]);
    expect(feed.read(0).events.map((e) => e.instance)).toEqual(['a', 'b', 'a', 'b']);
    expect(seqs(feed.read(2).events)).toEqual([3, 4]);
    expect(feed.read(4)).toEqual({ events: [], missed: 0 });
    expect(seqs(feed.read(0, 2).events)).toEqual([1, 2]);
  });

  it('counts what fell out of the ring, what was never delivered, and gap markers as their n', () => {
    const feed = new ClusterFeed('js-abc', { capacity: 5 });
    for (let seq = 1; seq <= 12; seq++) feed.ingest([hop(seq)]);
    expect(feed.read(0)).toMatchObject({ missed: 7 });
    expect(seqs(feed.read(0).events)).toEqual([8, 9, 10, 11, 12]);

    // 13: a marker for 40 events an instance could not publish; 14 and 15 never delivered; then 16.
    feed.addMissed(12, 40);
    feed.ingest([hop(16)]);
    expect(feed.lastSeq).toBe(16);
    const batch = feed.read(12);
    expect(seqs(batch.events)).toEqual([16]);
    expect(batch.missed).toBe(40 + 2);
    expect(feed.read(11)).toMatchObject({ missed: 42 });
    expect(seqs(feed.read(11).events)).toEqual([12, 16]);
    // The ring holds 5 sequences (12..16): the 11 before it count one each.
    expect(feed.read(0).missed).toBe(11 + 42);
  });

  it('a jump past the whole ring leaves nothing stale behind', () => {
    const feed = new ClusterFeed('js-abc', { capacity: 4 });
    feed.ingest([hop(1), hop(2), hop(3), hop(4)]);
    feed.ingest([hop(103)]); // 99 sequences later: slot 103 % 4 = 3 was seq 3's
    const batch = feed.read(99);
    expect(seqs(batch.events)).toEqual([103]);
    expect(batch.missed).toBe(3); // 100, 101, 102 never delivered
    expect(seqs(feed.read(0).events)).toEqual([103]);
    expect(feed.read(0).missed).toBe(102);
  });

  it('resumes from an id a client got from another instance: no gap, no duplicate', () => {
    // Two instances' feeds see the same stream; a client reads some on A, then resumes on B.
    const a = new ClusterFeed('js-abc');
    const b = new ClusterFeed('js-abc');
    const stream = Array.from({ length: 50 }, (_, i) => hop(i + 1, i % 2 ? 'a' : 'b'));
    a.ingest(stream.slice(0, 30));
    b.ingest(stream);
    const first = a.read(0);
    const second = b.read(first.events.at(-1)?.seq ?? 0);
    expect([...seqs(first.events), ...seqs(second.events)]).toEqual(seqs(stream));
    expect(second.missed).toBe(0);
  });

  it('knows the owner of recent calls, and forgets the oldest beyond its bound', () => {
    const feed = new ClusterFeed('js-abc', { capacity: 10, ownersKept: 3 });
    feed.ingest([owned(1, 'a', 'x'), owned(2, 'b', 'y'), owned(3, 'a', 'z')]);
    expect(feed.instanceOf('alice', 'y')).toBe('b');
    feed.ingest([owned(4, 'a', 'x')]); // x is refreshed: y is now the oldest
    feed.ingest([owned(5, 'c', 'w')]);
    expect(feed.instanceOf('alice', 'y')).toBeUndefined();
    expect([feed.instanceOf('alice', 'x'), feed.instanceOf('alice', 'z'), feed.instanceOf('alice', 'w')]).toEqual(['a', 'a', 'c']);
    expect(feed.instanceOf('alice', 'never')).toBeUndefined();
  });

  it('keys owners by (caller, call id): another caller reusing an id redirects nothing; readers never see the owner', () => {
    const feed = new ClusterFeed('js-abc', { capacity: 10 });
    feed.ingest([owned(1, 'a', 'same', 'alice'), owned(2, 'b', 'same', 'bob')]);
    expect(feed.instanceOf('alice', 'same')).toBe('a');
    expect(feed.instanceOf('bob', 'same')).toBe('b');
    expect(feed.instanceOf('carol', 'same')).toBeUndefined();
    for (const event of feed.read(0).events) expect(event).not.toHaveProperty('owner');
  });

  it('whenBound: a pending feed waits for its stream (reset); an abort ends the wait', async () => {
    expect(new ClusterFeed('js-abc').bound).toBe(true);
    const feed = new ClusterFeed('js-pending', { pending: true });
    expect(feed.bound).toBe(false);
    const aborted = new AbortController();
    const giveUp = feed.whenBound(aborted.signal);
    aborted.abort();
    await giveUp;
    expect(feed.bound).toBe(false);
    let bound = false;
    const waiting = feed.whenBound(new AbortController().signal).then(() => { bound = true; });
    await new Promise((r) => setTimeout(r, 10));
    expect(bound).toBe(false);
    feed.reset('js-real');
    await waiting;
    expect(bound).toBe(true);
  });

  it('stays bounded: a long stream keeps capacity events and ownersKept owners', () => {
    const feed = new ClusterFeed('js-abc', { capacity: 100, ownersKept: 1000 });
    for (let seq = 1; seq <= 200_000; seq++) feed.ingest([owned(seq)]);
    expect(feed.read(0, 1_000_000).events).toHaveLength(100);
    expect(feed.instanceOf('alice', 'c199001')).toBe('a');
    expect(feed.instanceOf('alice', 'c199000')).toBeUndefined();
  });

  it('reset: a new stream is a new id space; its followers start over', async () => {
    const feed = new ClusterFeed('js-old', { capacity: 10 });
    feed.ingest([hop(1), hop(2), hop(3)]);
    const controller = new AbortController();
    const seen: { boot: string; seqs: number[] }[] = [];
    const reader = (async () => {
      for await (const batch of feed.follow(3, controller.signal)) {
        seen.push({ boot: feed.bootId, seqs: seqs(batch.events) });
        controller.abort();
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 10));
    feed.reset('js-new');
    expect(feed.lastSeq).toBe(0);
    expect(feed.read(0)).toEqual({ events: [], missed: 0 });
    feed.ingest([hop(1), hop(2)]);
    await reader;
    expect(seen).toEqual([{ boot: 'js-new', seqs: [1, 2] }]);
  });

  it('follows: wakes on ingest and on a gap marker, and ends when its signal aborts', async () => {
    const feed = new ClusterFeed('js-abc', { capacity: 100 });
    const controller = new AbortController();
    const batches: { seqs: number[]; missed: number; lastSeq: number }[] = [];
    const reader = (async () => {
      for await (const batch of feed.follow(0, controller.signal)) batches.push({ seqs: seqs(batch.events), missed: batch.missed, lastSeq: batch.lastSeq });
    })();
    await new Promise((resolve) => setTimeout(resolve, 10));
    feed.ingest([hop(1), hop(2)]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    feed.addMissed(2, 7);
    await new Promise((resolve) => setTimeout(resolve, 10));
    feed.ingest([hop(4)]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    await reader; // ends: a follower that outlived its signal would hang the test (and its timeout fails it)
    expect(batches).toEqual([
      { seqs: [1, 2], missed: 0, lastSeq: 2 },
      { seqs: [], missed: 7, lastSeq: 3 },
      { seqs: [4], missed: 0, lastSeq: 4 },
    ]);
  });

  it('a follower that waits holds nothing once its signal aborts', async () => {
    const feed = new ClusterFeed('js-abc');
    const controller = new AbortController();
    const wait = feed.waitForNewer(0, controller.signal);
    controller.abort();
    await wait;
    feed.ingest([hop(1)]); // no waiter left to wake
    await feed.waitForNewer(0, new AbortController().signal); // resolves at once: seq 1 is newer
  });
});
