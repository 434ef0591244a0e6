/**
 * EVENTS_URL set: this instance joins the cluster through the broker. Its hops are published to the stream
 * (best effort, never on a call's path), activity.events reads a ClusterFeed filled from that stream (so an
 * event id means the same on every instance), cancels for calls another instance owns travel as requests to
 * it, and every second it says how it is doing (presence) for the other instances' server panels.
 *
 * Nothing here blocks the start or /readyz: a broker that is down means hops are counted as dropped and the
 * feed waits; both resume on their own when it comes back.
 */
import { ClusterFeed, REMOTE_CANCEL_MS, type ActivityEvent, type EventsStatus, type InstanceStats, type OwnedEvent, type Runtime, type RuntimeOptions } from '@asyncscope/api';
import { NO_RESPONDERS, connectBroker, type Broker } from '@asyncscope/cluster';
import type { CancelOutcome, CancelStatus } from '@asyncscope/contract';
import type { Logger } from 'pino';

export interface EventsConfig {
  /** nats://[user:pass@]host:port — never logged as given (it may carry credentials). */
  url: string;
  stream: string;
  maxEvents: number;
  maxAgeS: number;
}

/** Subjects are `asyncscope.hops.<instance>`, `asyncscope.cancel.<instance>`; presence is `asyncscope_instances`. */
const SUBJECT_PREFIX = 'asyncscope';
/** Hops waiting to be published before more are dropped (counted): about 3 MB at most. */
const MAX_BUFFERED = 10_000;
/** Stream sequences the feed holds, as many as the one-process ActivityLog. */
const FEED_CAPACITY = 10_000;
const ANNOUNCE_MS = 1_000;
/** Most call ids one cancel request may carry to another instance. */
const MAX_REMOTE_IDS = 1_000;
const STATUSES: readonly CancelStatus[] = ['cancelled', 'already-settled', 'unknown', 'instance-gone'];
/** Merging the answers of every instance asked about an id with no known owner: one that holds it wins. */
const RANK: Partial<Record<CancelStatus, number>> = { cancelled: 2, 'already-settled': 1, unknown: 0 };

export interface EventsLink {
  readonly broker: Broker;
  readonly feed: ClusterFeed;
  /** What the Runtime takes from the link. */
  readonly runtimeOptions: Pick<RuntimeOptions, 'feed' | 'onHop' | 'remoteCancel' | 'clusterInstances' | 'eventsStatus'>;
  /** Once the runtime exists: answer other instances' cancels and start announcing this one. */
  attach(runtime: Runtime): void;
  /** Stops announcing and following, says goodbye (gone at once elsewhere), flushes what is buffered (bounded). */
  close(): Promise<void>;
}

/** Where the broker is, for the log: host and port only. */
export function describeBroker(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(invalid URL)';
  }
}

export function startEventsLink(config: EventsConfig, instanceId: string, log: Logger): EventsLink {
  const broker = connectBroker({
    url: config.url,
    instanceId,
    stream: config.stream,
    subjectPrefix: SUBJECT_PREFIX,
    maxEvents: config.maxEvents,
    maxAgeMs: config.maxAgeS * 1000,
    maxBuffered: MAX_BUFFERED,
    onStatus: (change) => {
      if (change.connected) log.info({ broker: describeBroker(config.url), reason: change.reason }, 'events broker connected: hops are published and followed');
      // Our own close ends the connection too: that is not an outage to warn about.
      else if (closing) log.debug({ broker: describeBroker(config.url), reason: change.reason }, 'events broker connection closed (shutting down)');
      else log.warn({ broker: describeBroker(config.url), reason: change.reason }, 'events broker unreachable: calls go on, hops are counted as dropped until it is back');
    },
  });
  log.info({ broker: describeBroker(config.url), stream: config.stream, instance: instanceId }, 'events: through the broker');
  // Its real id space is known once the broker answers (onStream resets it then, before any event).
  const feed = new ClusterFeed('js-pending', { capacity: FEED_CAPACITY, pending: true });
  const stop = new AbortController();
  const following = follow(broker, feed, stop.signal);
  let announcer: NodeJS.Timeout | undefined;
  let closing: Promise<void> | undefined;

  const remoteCancel = async (owner: string, callIds: string[], signal: AbortSignal): Promise<CancelOutcome[]> => {
    const answers = new Map<string, CancelStatus>();
    const byInstance = new Map<string, string[]>();
    /** Ids no hop has named an owner for (for this caller): the call may not have reached this feed yet. */
    const unplaced: string[] = [];
    for (const id of callIds) {
      const instance = feed.instanceOf(owner, id);
      // This instance (whose registry already said unknown): nobody else to ask.
      if (instance === instanceId) continue;
      if (instance === undefined) {
        if (unplaced.length < MAX_REMOTE_IDS) unplaced.push(id);
        continue;
      }
      const ids = byInstance.get(instance) ?? [];
      if (ids.length < MAX_REMOTE_IDS) ids.push(id);
      byInstance.set(instance, ids);
    }
    const ask = async (instance: string, ids: string[]): Promise<CancelOutcome[] | typeof NO_RESPONDERS | undefined> => {
      try {
        const answer = await broker.request(instance, 'cancel', { owner, callIds: ids }, signal, REMOTE_CANCEL_MS);
        return answer === NO_RESPONDERS ? NO_RESPONDERS : resultsOf(answer).filter((o) => ids.includes(o.callId));
      } catch (error) {
        // Broker down, timed out, or the owner failed: those ids stay 'unknown', as with one process.
        log.debug({ err: error, instance }, 'remote cancel failed');
        return undefined;
      }
    };
    const presence = broker.instances();
    const up = presence.filter((p) => p.state === 'up' && p.instance !== instanceId).map((p) => p.instance);
    await Promise.all([
      ...[...byInstance].map(async ([instance, ids]) => {
        const answer = await ask(instance, ids);
        if (answer === NO_RESPONDERS) {
          // Gone only when presence agrees (or no longer lists it): a brief blip of its connection is not a death.
          const seen = presence.find((p) => p.instance === instance);
          const status: CancelStatus = seen === undefined || seen.state === 'gone' ? 'instance-gone' : 'unknown';
          for (const id of ids) answers.set(id, status);
          return;
        }
        for (const outcome of answer ?? []) answers.set(outcome.callId, outcome.status);
      }),
      // An owner not known yet: every instance that is up is asked the same; each registry cancels the call
      // or remembers the early cancel for (owner, id) — the call may be on its way there.
      ...(unplaced.length === 0
        ? []
        : up.map(async (instance) => {
            const answer = await ask(instance, unplaced);
            if (answer === NO_RESPONDERS || answer === undefined) return;
            for (const outcome of answer) {
              const rank = RANK[outcome.status] ?? 0;
              if (rank > (RANK[answers.get(outcome.callId) ?? 'unknown'] ?? 0)) answers.set(outcome.callId, outcome.status);
            }
          })),
    ]);
    return callIds.map((callId) => ({ callId, status: answers.get(callId) ?? 'unknown' }));
  };

  const runtimeOptions: EventsLink['runtimeOptions'] = {
    feed,
    // The owner travels with the hop (for cancel routing by (owner, id)); the feed strips it before any reader.
    onHop: (event: ActivityEvent, owner: string) => {
      broker.publish({ ...event, owner });
    },
    remoteCancel,
    clusterInstances: () =>
      broker
        .instances()
        .filter((p) => p.instance !== instanceId)
        .map((p) => instanceStats(p.instance, p.state, p.ageMs, p.stats)),
    eventsStatus: (): EventsStatus => {
      const s = broker.status();
      return { mode: 'broker', connected: s.connected, published: s.published, dropped: s.dropped };
    },
  };

  return {
    broker,
    feed,
    runtimeOptions,
    attach: (runtime) => {
      // Not awaited: the instance serves its own calls meanwhile; a cancel from another instance in the few ms
      // before the NATS server has the subscription is answered as if this instance were gone. serve() never
      // rejects without a signal of its own.
      void broker.serve('cancel', async (payload) => {
        const request = cancelRequestOf(payload);
        if (!request) throw new Error('expected { owner, callIds }');
        return { results: await runtime.calls.cancel(request.owner, request.callIds) };
      });
      const announce = (): void => {
        broker.announce(runtime.instanceStats());
      };
      announce();
      announcer = setInterval(announce, ANNOUNCE_MS);
      announcer.unref();
    },
    close: () =>
      (closing ??= (async () => {
        clearInterval(announcer);
        stop.abort();
        await following;
        await broker.close(AbortSignal.timeout(2_000));
      })()),
  };
}

/** Fills `feed` from the stream: first its newest FEED_CAPACITY seqs (resumable at once), then live. */
async function follow(broker: Broker, feed: ClusterFeed, signal: AbortSignal): Promise<void> {
  let state = await broker.streamState(signal);
  while (!state && !signal.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, 250);
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
    state = await broker.streamState(signal);
  }
  if (!state) return;
  await broker.follow(Math.max(0, state.lastSeq - FEED_CAPACITY), signal, {
    onStream: (bootId) => {
      if (feed.bootId !== bootId) feed.reset(bootId);
    },
    onReset: (bootId) => {
      feed.reset(bootId);
    },
    onRecords: (batch) => {
      const events: OwnedEvent[] = [];
      for (const { seq, record } of batch) {
        // The stream's seq is the event's id everywhere; the publisher's local one is dropped.
        if (isEvent(record)) events.push({ ...record, seq, owner: typeof record.owner === 'string' ? record.owner : undefined });
      }
      feed.ingest(events);
    },
    onMissed: (afterSeq, n, reason) => {
      // A seq the stream no longer holds is counted by the feed itself (an empty slot is one missed event).
      if (reason !== 'retention') feed.addMissed(afterSeq, n);
    },
  });
}

function isEvent(record: unknown): record is ActivityEvent & { owner?: unknown } {
  if (typeof record !== 'object' || record === null) return false;
  const r = record as Record<string, unknown>;
  return typeof r.type === 'string' && typeof r.callId === 'string' && typeof r.path === 'string' && typeof r.instance === 'string' && typeof r.at === 'number';
}

function resultsOf(answer: unknown): CancelOutcome[] {
  const results = (answer as { results?: unknown } | null)?.results;
  if (!Array.isArray(results)) return [];
  return results.filter(
    (o): o is CancelOutcome =>
      typeof o === 'object' && o !== null && typeof (o as CancelOutcome).callId === 'string' && STATUSES.includes((o as CancelOutcome).status),
  );
}

function cancelRequestOf(payload: unknown): { owner: string; callIds: string[] } | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const { owner, callIds } = payload as { owner?: unknown; callIds?: unknown };
  if (typeof owner !== 'string' || !Array.isArray(callIds) || callIds.length > MAX_REMOTE_IDS) return undefined;
  if (!callIds.every((id): id is string => typeof id === 'string')) return undefined;
  return { owner, callIds };
}

/** Another instance's report, with its presence; a missing gauge reads 0 (an older or newer version). */
function instanceStats(instance: string, state: 'up' | 'gone', ageMs: number, stats: unknown): InstanceStats {
  const s = (typeof stats === 'object' && stats !== null ? stats : {}) as Record<string, unknown>;
  const n = (key: string): number => (typeof s[key] === 'number' && Number.isFinite(s[key]) ? s[key] : 0);
  return {
    instance,
    state,
    ageMs,
    inFlight: n('inFlight'),
    queued: n('queued'),
    shed: n('shed'),
    maxInFlight: n('maxInFlight'),
    maxQueue: n('maxQueue'),
    poolMax: n('poolMax'),
    poolBusy: n('poolBusy'),
    eventLoopDelayMs: n('eventLoopDelayMs'),
  };
}
