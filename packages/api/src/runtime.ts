import { setMaxListeners } from 'node:events';
import { withTimeout } from '@asyncscope/concurrency';
import type { CancelOutcome } from '@asyncscope/contract';
import type { DbClient } from '@asyncscope/db';
import type { ActivityFeed } from './activity/feed';
import { ActivityLog, type ActivityEvent, type CallHop } from './activity/log';
import { ServerStats } from './activity/stats';
import { Admission } from './admission';
import { CpuPool } from './cpu/pool';
import { Faults } from './services/faults';
import { FaultStore } from './services/faults-store';
import { LabService } from './services/lab';
import { UsersService } from './services/users';
import { TicketStore } from './tickets';
import { CallRegistry } from './calls/registry';

/** One instance's gauges, as activity.stats lists them (this instance first, then the cluster's others). */
export interface InstanceStats {
  instance: string;
  /** 'gone': no report for 3 s (or it said goodbye). */
  state: 'up' | 'gone';
  /** Since its last report (0 for this instance: it is now). */
  ageMs: number;
  inFlight: number;
  queued: number;
  shed: number;
  maxInFlight: number;
  maxQueue: number;
  poolMax: number;
  /** Statements running in its pool now. */
  poolBusy: number;
  /** p99 of the last sampled second, as ServerStats measures it. */
  eventLoopDelayMs: number;
}

/** Where activity.events gets its hops: this process's log, or the broker. */
export interface EventsStatus {
  mode: 'local' | 'broker';
  connected: boolean;
  /** Hops published to the broker / dropped (broker down or its buffer full). */
  published: number;
  dropped: number;
}

/** How long calls.cancel waits for the instances that own the ids it does not hold. */
export const REMOTE_CANCEL_MS = 2000;

/** The settings the app reads from its environment; their defaults live there (apps/server/src/env.ts). */
export interface RuntimeOptions {
  /** Names this instance in every hop and in activity.stats (host:pid, or INSTANCE_ID). */
  instanceId: string;
  /** What activity.events reads; default this process's ActivityLog (the broker's ClusterFeed with several instances). */
  feed?: ActivityFeed;
  /**
   * Called with every recorded hop (the broker's publisher), and the owner (caller's key in the registry) of its
   * call, so another instance routes a cancel by (owner, call id). It must not throw; if it does, the call goes
   * on and it is counted.
   */
  onHop?: (event: ActivityEvent, owner: string) => void;
  /**
   * Asks the instances that own these ids (those the local registry answered `unknown`) to cancel them,
   * for caller `owner`; answers per id. Given a signal that aborts after REMOTE_CANCEL_MS.
   */
  remoteCancel?: (owner: string, callIds: string[], signal: AbortSignal) => Promise<CancelOutcome[]>;
  /** The other instances of the cluster, for activity.stats. */
  clusterInstances?: () => InstanceStats[];
  /** How events travel, for activity.stats; default { mode: 'local', connected: true, published: 0, dropped: 0 }. */
  eventsStatus?: () => EventsStatus;
  /** Calls that may run at once; more wait in the queue. */
  maxInFlight: number;
  /** Calls that may wait; more are refused with TOO_MANY_REQUESTS. */
  maxQueue: number;
  /** Calls one client may have waiting; the queue is shared between clients in turn. */
  maxQueuePerClient: number;
  /** lab.* on or off: off, every lab procedure answers FORBIDDEN and no fault can be set. */
  lab: boolean;
  /** Longest a call may take, in ms, unless its procedure has a longer limit of its own (PROCEDURE_TIMEOUTS). */
  callTimeoutMs: number;
  /** Events kept for activity.events subscribers. */
  activityCapacity?: number;
  cpuThreads?: number;
  /** Aborts every running call with reason 'shutdown'. */
  shutdownSignal?: AbortSignal;
  /**
   * The signal that fires when the database goes away (a DatabaseUnavailableError); read at the start of
   * every call, so it may be replaced once the database is back.
   */
  databaseDownSignal?: () => AbortSignal;
  random?: () => number;
  /**
   * Reads the pool's connections by state without going through the pool (the server uses the health
   * check's own connection). Without it, activity.stats reads them through the pool.
   */
  poolConnections?: () => Promise<{ state: string; count: number }[]>;
  /** A background load of the lab faults (or their LISTEN) failed; it is retried (see FaultStore). */
  onFaultsError?: (error: unknown) => void;
}

/** Procedures that may take longer than a call's usual limit: lab calls that are slow on purpose. */
const PROCEDURE_TIMEOUTS: Readonly<Record<string, number>> = { 'lab.sleep': 65_000, 'lab.slowWrite': 65_000, 'lab.cpu': 120_000 };

/**
 * Everything the procedures share, built once per process. Building one starts nothing: `start()` starts
 * the per-second stats sampling, `stop()` ends it and the CPU worker pool (made by the first lab.cpu call).
 */
export class Runtime {
  readonly users: UsersService;
  readonly lab: LabService;
  readonly faults: Faults;
  /** The lab faults' rows (lab_faults), shared by every instance: fills and follows `faults`. */
  readonly faultStore: FaultStore;
  /** This process's hops (tests and the server read it directly). */
  readonly activity: ActivityLog;
  /** What activity.events follows: `activity`, or the cluster's feed. */
  readonly feed: ActivityFeed;
  readonly instanceId: string;
  readonly clusterInstances: () => InstanceStats[];
  readonly eventsStatus: () => EventsStatus;
  /** onHop calls that threw (the hop was recorded; the call went on). */
  hopErrors = 0;
  readonly #onHop: ((event: ActivityEvent, owner: string) => void) | undefined;
  readonly #remoteCancel: RuntimeOptions['remoteCancel'];
  readonly admission: Admission;
  readonly stats: ServerStats;
  readonly cpu: CpuPool;
  readonly callTimeoutMs: number;
  readonly shutdownSignal: AbortSignal;
  readonly databaseDownSignal: () => AbortSignal;
  /** The calls in flight, by caller and id: what calls.cancel reaches. */
  readonly calls = new CallRegistry();
  /** Single-use tickets for event streams (auth.ticket). */
  readonly tickets = new TicketStore();
  readonly labEnabled: boolean;
  readonly readPoolConnections: (() => Promise<{ state: string; count: number }[]>) | undefined;

  constructor(readonly db: DbClient, options: RuntimeOptions) {
    this.users = new UsersService(db);
    this.lab = new LabService(db);
    this.faults = new Faults(options.random);
    this.faultStore = new FaultStore(db, this.faults, { enabled: options.lab, onError: options.onFaultsError });
    this.instanceId = options.instanceId;
    this.activity = new ActivityLog(options.activityCapacity ?? 10_000, options.instanceId);
    this.feed = options.feed ?? this.activity;
    this.#onHop = options.onHop;
    this.#remoteCancel = options.remoteCancel;
    this.clusterInstances = options.clusterInstances ?? (() => []);
    this.eventsStatus = options.eventsStatus ?? (() => ({ mode: 'local', connected: true, published: 0, dropped: 0 }));
    this.admission = new Admission(options.maxInFlight, options.maxQueue, options.maxQueuePerClient);
    this.labEnabled = options.lab;
    this.readPoolConnections = options.poolConnections;
    this.stats = new ServerStats(() => ({ inFlight: this.admission.inFlight, queued: this.admission.queued, shed: this.admission.shed }));
    this.cpu = new CpuPool(options.cpuThreads);
    this.callTimeoutMs = options.callTimeoutMs;
    this.shutdownSignal = options.shutdownSignal ?? new AbortController().signal;
    const neverDown = new AbortController().signal;
    setMaxListeners(0, neverDown);
    this.databaseDownSignal = options.databaseDownSignal ?? (() => neverDown);
    // Calls do not listen to it one by one (see CallRegistry.abortAll): one listener stops them all.
    const shutdown = this.shutdownSignal;
    // The lab's fault settings (router/lab.ts) still listen to it one by one: any number may wait at once.
    setMaxListeners(0, shutdown);
    if (!shutdown.aborted) shutdown.addEventListener('abort', () => { this.calls.abortAll(shutdown.reason); }, { once: true });
  }

  #watchedDown: AbortSignal | undefined;

  /**
   * The database-down signal of now (a new one after each recovery), with one listener of ours on it that
   * stops every call in flight when it fires. Read as each call opens; an aborted one means the database is
   * away right now.
   */
  watchDatabaseDown(): AbortSignal {
    const down = this.databaseDownSignal();
    if (down !== this.#watchedDown) {
      this.#watchedDown = down;
      if (!down.aborted) down.addEventListener('abort', () => { this.calls.abortAll(down.reason); }, { once: true });
    }
    return down;
  }

  /** Records one hop of a call, then hands it to onHop (whose failure never reaches the call). */
  recordHop(callId: string, path: string, hop: CallHop, owner = ''): void {
    const seq = this.activity.record(callId, path, hop);
    if (!this.#onHop) return;
    try {
      const event = this.activity.event(seq);
      if (event) this.#onHop(event, owner);
    } catch {
      this.hopErrors++;
    }
  }

  /**
   * calls.cancel: this instance's registry first; the ids it does not know go to remoteCancel (the instance
   * that owns them), within REMOTE_CANCEL_MS. Answers in the order asked; an id no instance answered for
   * (remoteCancel failed, timed out, or left it out) stays `unknown`.
   */
  async cancelCalls(owner: string, callIds: readonly string[], signal?: AbortSignal): Promise<CancelOutcome[]> {
    const local = await this.calls.cancel(owner, callIds);
    const remoteCancel = this.#remoteCancel;
    const unknown = local.filter((o) => o.status === 'unknown').map((o) => o.callId);
    if (!remoteCancel || unknown.length === 0) return local;
    let remote: CancelOutcome[];
    try {
      remote = await withTimeout((s) => remoteCancel(owner, unknown, s), REMOTE_CANCEL_MS, signal ? { signal } : {});
    } catch {
      return local;
    }
    const answered = new Map<string, CancelOutcome['status']>();
    const asked = new Set(unknown);
    for (const o of Array.isArray(remote) ? remote : []) if (asked.has(o.callId)) answered.set(o.callId, o.status);
    return local.map((o) => (o.status === 'unknown' ? { callId: o.callId, status: answered.get(o.callId) ?? 'unknown' } : o));
  }

  /** This instance's gauges now, as the cluster's presence reports them. */
  instanceStats(): InstanceStats {
    const last = this.stats.history().at(-1);
    return {
      instance: this.instanceId,
      state: 'up',
      ageMs: 0,
      inFlight: this.admission.inFlight,
      queued: this.admission.queued,
      shed: this.admission.shed,
      maxInFlight: this.admission.maxInFlight,
      maxQueue: this.admission.maxQueue,
      poolMax: this.db.config.poolMax,
      poolBusy: this.db.statements().running,
      eventLoopDelayMs: last?.eventLoopDelayP99Ms ?? 0,
    };
  }

  timeoutFor(path: string): number {
    return PROCEDURE_TIMEOUTS[path] ?? this.callTimeoutMs;
  }

  #faultsFollow: { stop: AbortController; done: Promise<void> } | undefined;

  /**
   * Starts sampling stats, and following the lab's fault rows in the background (the server admits no call
   * before `faultStore.loaded`, apps/server app.ts). `followFaultsAfter`: begin that only once it resolves —
   * the server's migrations, which create the table (before them every load fails, and says so in the log);
   * if it rejects, or `stop()` comes first, the faults are not followed.
   */
  start(options: { followFaultsAfter?: Promise<unknown> } = {}): this {
    this.stats.start();
    if (this.#faultsFollow) return this;
    const stop = new AbortController();
    const after = options.followFaultsAfter;
    const begin = after
      ? Promise.race([after, new Promise<void>((resolve) => { stop.signal.addEventListener('abort', () => { resolve(); }, { once: true }); })])
      : Promise.resolve();
    this.#faultsFollow = { stop, done: begin.then(() => this.faultStore.follow(stop.signal), () => undefined) };
    return this;
  }

  async stop(): Promise<void> {
    this.stats.stop();
    this.#faultsFollow?.stop.abort();
    await this.#faultsFollow?.done;
    await this.cpu.close();
  }
}
