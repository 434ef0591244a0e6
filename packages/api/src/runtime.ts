import { setMaxListeners } from 'node:events';
import type { Db } from '@asyncscope/db';
import { ActivityLog } from './activity/log';
import { ServerStats } from './activity/stats';
import { Admission } from './admission';
import { CpuPool } from './cpu/pool';
import { Faults } from './services/faults';
import { LabService } from './services/lab';
import { UsersService } from './services/users';
import { TicketStore } from './tickets';
import { CallRegistry } from './calls/registry';

export interface RuntimeOptions {
  /** Calls that may run at once; more wait in the queue. */
  maxInFlight?: number;
  /** Calls that may wait; more are refused with TOO_MANY_REQUESTS. */
  maxQueue?: number;
  /** Calls one client may have waiting (default: maxQueue); the queue is shared between clients in turn. */
  maxQueuePerClient?: number | undefined;
  /** lab.* on (default) or off: off, every lab procedure answers FORBIDDEN and no fault can be set. */
  lab?: boolean | undefined;
  /** Longest a call may take, per procedure path ('*' for the rest), in ms. */
  timeouts?: Record<string, number>;
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
}

export const DEFAULT_TIMEOUTS: Record<string, number> = { '*': 30_000, 'lab.sleep': 65_000, 'lab.slowWrite': 65_000, 'lab.cpu': 120_000 };

/** Everything the procedures share, built once per process. */
export class Runtime {
  readonly users: UsersService;
  readonly lab: LabService;
  readonly faults: Faults;
  readonly activity: ActivityLog;
  readonly admission: Admission;
  readonly stats: ServerStats;
  readonly cpu: CpuPool;
  readonly timeouts: Record<string, number>;
  readonly shutdownSignal: AbortSignal;
  readonly databaseDownSignal: () => AbortSignal;
  /** The calls in flight, by caller and id: what calls.cancel reaches. */
  readonly calls = new CallRegistry();
  /** Single-use tickets for event streams (auth.ticket). */
  readonly tickets = new TicketStore();
  readonly labEnabled: boolean;
  readonly readPoolConnections: (() => Promise<{ state: string; count: number }[]>) | undefined;

  constructor(readonly db: Db, options: RuntimeOptions = {}) {
    this.users = new UsersService(db.db);
    this.lab = new LabService(db);
    this.faults = new Faults(options.random);
    this.activity = new ActivityLog(options.activityCapacity ?? 10_000);
    const maxQueue = options.maxQueue ?? 1000;
    this.admission = new Admission(options.maxInFlight ?? 100, maxQueue, options.maxQueuePerClient ?? maxQueue);
    this.labEnabled = options.lab ?? true;
    this.readPoolConnections = options.poolConnections;
    this.stats = new ServerStats(() => ({ inFlight: this.admission.inFlight, queued: this.admission.queued, shed: this.admission.shed }));
    this.cpu = new CpuPool(options.cpuThreads);
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.shutdownSignal = options.shutdownSignal ?? new AbortController().signal;
    const neverDown = new AbortController().signal;
    setMaxListeners(0, neverDown);
    this.databaseDownSignal = options.databaseDownSignal ?? (() => neverDown);
    // Every running call listens to it (removed when the call ends): thousands at once are expected.
    setMaxListeners(0, this.shutdownSignal);
  }

  timeoutFor(path: string): number {
    return this.timeouts[path] ?? this.timeouts['*'] ?? 30_000;
  }

  async close(): Promise<void> {
    this.stats.close();
    await this.cpu.close();
  }
}
