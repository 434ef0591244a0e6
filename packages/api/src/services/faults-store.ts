import type { Fault, FaultTarget } from '@asyncscope/contract';
import { AsyncEvent, deadline, Mutex } from '@asyncscope/concurrency';
import { type DbClient, labFaults } from '@asyncscope/db';
import { eq, sql } from 'drizzle-orm';
import postgres from 'postgres';
import type { Faults } from './faults';

/** The channel every instance LISTENs on; a change to lab_faults notifies it in the same transaction. */
export const LAB_FAULTS_CHANNEL = 'asyncscope_lab_faults';

/** Longest one background load may take (a select of a few rows; longer means the database is in trouble). */
const LOAD_TIMEOUT_MS = 5_000;
/** Background loads start at most this often: a storm of notifies costs one load per gap, not one each. */
const MIN_RELOAD_GAP_MS = 25;
/** A background load that failed is retried, backing off up to this. */
const MAX_RETRY_MS = 1_000;
/** More rows than any set of fault targets: the view stays bounded whatever was written by hand. */
const MAX_ROWS = 1_000;

export interface FaultStoreOptions {
  /** With the lab off no fault applies: nothing is loaded or followed, and the view counts as loaded (empty). */
  enabled?: boolean;
  /** A background load or LISTEN that failed (the first of a run of failures; the next success ends the run). */
  onError?: (error: unknown) => void;
}

/** What the store did, for tests and diagnostics. */
export interface FaultStoreCounters {
  /** LISTENs that took effect (the first, then one per reconnection of the listening connection). */
  listens: number;
  /** Notifications received on the channel. */
  notifies: number;
  /** Loads of the table that replaced the view (background, load(), and the read after set / clear). */
  loads: number;
}

type Row = { procedure: string; latencyMs: number; errorRate: number };

/**
 * Lab faults as rows in Postgres (lab_faults), shared by every instance on the database, and the in-memory
 * `Faults` view the call path reads synchronously. `set` / `clear` change the table in one transaction that
 * also notifies LAB_FAULTS_CHANNEL and reads the table back, so this instance's view has the change before
 * the caller is answered. `follow` keeps the view current with the others' changes: LISTEN, and a reload on
 * every notification and every (re)LISTEN. Loads and changes run one at a time, so the view is always
 * replaced by a newer read than the one before it.
 */
export class FaultStore {
  readonly counters: FaultStoreCounters = { listens: 0, notifies: 0, loads: 0 };
  readonly #mutex = new Mutex();
  readonly #enabled: boolean;
  readonly #onError: (error: unknown) => void;
  /** Set by the first load (at once with the lab off): the view holds the table's rows. */
  readonly #loaded = new AsyncEvent();
  /** The signal of the follow() running, if one is. */
  #following: AbortSignal | undefined;
  /** A background load is due (its timer set, or waiting for the mutex) and has not started reading yet. */
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;
  /** When the next background load may start (performance.now()): the reload gap, or a failure's backoff. */
  #nextLoadAt = 0;
  #failures = 0;
  readonly #background = new Set<Promise<void>>();

  constructor(
    private readonly db: DbClient,
    private readonly faults: Faults,
    options: FaultStoreOptions = {},
  ) {
    this.#enabled = options.enabled ?? true;
    this.#onError = options.onError ?? (() => undefined);
    if (!this.#enabled) this.#loaded.set();
  }

  /** True once the view holds the table's rows (a call must not run before: it would miss a fault). */
  get loaded(): boolean {
    return this.#loaded.isSet();
  }

  /** Resolves once the view has been loaded (by follow()'s first load, or load / set / clear). */
  whenLoaded(signal: AbortSignal): Promise<void> {
    return this.#loaded.wait({ signal });
  }

  /** Sets one procedure's fault (latency 0 and error rate 0 removes it); answers with every fault set. */
  async set(procedure: FaultTarget, fault: Fault, signal: AbortSignal): Promise<Record<string, Fault>> {
    return this.#change(signal, async (tx) => {
      if (fault.latencyMs === 0 && fault.errorRate === 0) {
        await tx.delete(labFaults).where(eq(labFaults.procedure, procedure));
      } else {
        await tx
          .insert(labFaults)
          .values({ procedure, latencyMs: fault.latencyMs, errorRate: fault.errorRate })
          .onConflictDoUpdate({ target: labFaults.procedure, set: { latencyMs: fault.latencyMs, errorRate: fault.errorRate, updatedAt: sql`now()` } });
      }
    });
  }

  /** Removes every fault; answers with what is left (nothing, unless another instance set one meanwhile). */
  async clear(signal: AbortSignal): Promise<Record<string, Fault>> {
    return this.#change(signal, async (tx) => {
      await tx.delete(labFaults);
    });
  }

  /** Reads the table into the view now; answers with every fault set. */
  async load(signal: AbortSignal): Promise<Record<string, Fault>> {
    return this.#mutex.runExclusive(async () => {
      signal.throwIfAborted();
      this.#apply(await this.#select(this.db.bind({ signal }).orm));
      return this.faults.all();
    }, { signal });
  }

  /**
   * Keeps the view current until `signal` aborts: LISTENs on LAB_FAULTS_CHANNEL (application_name
   * `<pool's>-listen`) and loads the table on every LISTEN and every notification. postgres.js (3.4.9,
   * src/index.js `listen`) LISTENs on a connection of its own and, whenever that connection closes,
   * reconnects and LISTENs again, calling onlisten each time: a change made while it was away is read by that
   * reload. Failures go to onError; loads are retried. Resolves once the connection is closed and every load
   * it started has settled; never rejects.
   */
  async follow(signal: AbortSignal): Promise<void> {
    if (!this.#enabled || signal.aborted) return;
    if (this.#following) throw new Error('FaultStore.follow: already following');
    this.#following = signal;
    const stopped = new Promise<void>((resolve) => { signal.addEventListener('abort', () => { resolve(); }, { once: true }); });
    // A client of its own, so the LISTEN connection has a name of its own in pg_stat_activity (the pool's
    // counts by application_name stay the pool's) and goes when following stops. It opens one connection.
    const { config } = this.db;
    const listener = postgres(config.url, {
      max: 1,
      connect_timeout: config.connectTimeoutS,
      // A half-open connection (a database host that vanished) is noticed in seconds.
      keep_alive: 10,
      // Reconnect soon once the database is back: until then, this instance misses changes.
      backoff: (attempt: number) => Math.min(0.25, 0.01 * 2 ** attempt) * (0.5 + Math.random() / 2),
      onnotice: () => undefined,
      connection: { application_name: `${config.applicationName}-listen`.slice(0, 63) },
    });
    // The first load normally comes from the first LISTEN's onlisten: once loaded, this instance is following.
    const listening = listener.listen(
      LAB_FAULTS_CHANNEL,
      () => {
        this.counters.notifies++;
        this.#schedule();
      },
      () => {
        this.counters.listens++;
        this.#schedule();
      },
    );
    // A first LISTEN that failed (database unreachable) is not retried here: postgres.js keeps the listener
    // and LISTENs again when its connection closes, which a failed connection does. Loads start meanwhile
    // (retried until the table answers), so the view does not wait for the LISTEN.
    void listening.catch((error: unknown) => {
      if (signal.aborted) return;
      this.#onError(error);
      this.#schedule();
    });
    try {
      await stopped;
    } finally {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#scheduled = false;
      this.#following = undefined;
      await listener.end({ timeout: 1 }).catch(() => undefined);
      await Promise.all(this.#background);
    }
  }

  async #change(signal: AbortSignal, write: (tx: Transaction) => Promise<void>): Promise<Record<string, Fault>> {
    return this.#mutex.runExclusive(async () => {
      signal.throwIfAborted();
      const rows = await this.db.bind({ signal }).orm.transaction(async (tx) => {
        await write(tx);
        // Delivered at COMMIT, to every instance LISTENing (this one too: a reload that finds the same rows).
        await tx.execute(sql`select pg_notify(${LAB_FAULTS_CHANNEL}, '')`);
        // Read back inside the transaction: this instance's view has the change before the caller is answered.
        return this.#select(tx);
      });
      this.#apply(rows);
      return this.faults.all();
    }, { signal });
  }

  #select(q: Pick<DbClient['orm'], 'select'>): Promise<Row[]> {
    return q
      .select({ procedure: labFaults.procedure, latencyMs: labFaults.latencyMs, errorRate: labFaults.errorRate })
      .from(labFaults)
      .orderBy(labFaults.procedure)
      .limit(MAX_ROWS);
  }

  #apply(rows: readonly Row[]): void {
    this.faults.replace(rows.map((row) => [row.procedure, { latencyMs: row.latencyMs, errorRate: row.errorRate }] as const));
    this.counters.loads++;
    this.#loaded.set();
  }

  /** A background load, unless one is already due (it will read whatever this one would have). */
  #schedule(): void {
    const signal = this.#following;
    if (!signal || signal.aborted || this.#scheduled) return;
    this.#scheduled = true;
    const wait = Math.max(0, this.#nextLoadAt - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#runBackground(signal);
    }, wait);
  }

  #runBackground(signal: AbortSignal): void {
    const run = this.#mutex.runExclusive(async () => {
      // From here on a notification needs a load of its own: this read may come before its change.
      this.#scheduled = false;
      this.#nextLoadAt = performance.now() + MIN_RELOAD_GAP_MS;
      const scope = deadline(LOAD_TIMEOUT_MS, { signal });
      try {
        scope.signal.throwIfAborted();
        this.#apply(await this.#select(this.db.bind({ signal: scope.signal }).orm));
      } finally {
        scope.dispose();
      }
    }, { signal });
    const settled = run.then(
      () => { this.#failures = 0; },
      (error: unknown) => {
        if (signal.aborted) return;
        this.#failures++;
        if (this.#failures === 1) this.#onError(error);
        // Full jitter, so instances that lost the database together do not come back in step.
        this.#nextLoadAt = performance.now() + Math.random() * Math.min(MAX_RETRY_MS, 50 * 2 ** this.#failures);
        this.#schedule();
      },
    );
    this.#background.add(settled);
    void settled.finally(() => this.#background.delete(settled));
  }
}

type Transaction = Parameters<Parameters<DbClient['orm']['transaction']>[0]>[0];
