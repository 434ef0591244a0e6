import { setMaxListeners } from 'node:events';
import type { DbClient } from '@asyncscope/db';
import { ActivityLog } from './activity/log';
import { ServerStats } from './activity/stats';
import { Admission } from './admission';
import { CpuPool } from './cpu/pool';
import { Faults } from './services/faults';
import { FaultStore } from './services/faults-store';
import { LabService } from './services/lab';
import { UsersService } from './services/users';
import { TicketStore } from './tickets';
import { CallRegistry } from './calls/registry';

/** The settings the app reads from its environment; their defaults live there (apps/server/src/env.ts). */
export interface RuntimeOptions {
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
  readonly activity: ActivityLog;
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
    this.users = new UsersService(db.orm);
    this.lab = new LabService(db);
    this.faults = new Faults(options.random);
    this.faultStore = new FaultStore(db, this.faults, { enabled: options.lab, onError: options.onFaultsError });
    this.activity = new ActivityLog(options.activityCapacity ?? 10_000);
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
    // Every running call listens to it (removed when the call ends): thousands at once are expected.
    setMaxListeners(0, this.shutdownSignal);
  }

  timeoutFor(path: string): number {
    return PROCEDURE_TIMEOUTS[path] ?? this.callTimeoutMs;
  }

  #faultsFollow: { stop: AbortController; done: Promise<void> } | undefined;

  start(): this {
    this.stats.start();
    // In the background: the server admits no call before `faultStore.loaded` (apps/server app.ts).
    const stop = new AbortController();
    this.#faultsFollow ??= { stop, done: this.faultStore.follow(stop.signal) };
    return this;
  }

  async stop(): Promise<void> {
    this.stats.stop();
    this.#faultsFollow?.stop.abort();
    await this.#faultsFollow?.done;
    await this.cpu.close();
  }
}
