/**
 * The fetch lab's state, outside React: the current run, one row per call, and the server's events
 * joined to them. Changes are applied at once (so counts and joins are always exact) and published at an
 * animation frame, at most every VIEW_INTERVAL_MS (lib/frame-batcher), through `subscribe`/`getSnapshot` (useSyncExternalStore).
 */
import type { ActivityEvent } from '@asyncscope/api';
import { parseCallId, type CancelOutcome } from '@asyncscope/contract';
import { CALL_STATES, isTerminal, newRow, reduceCall, type CallEvent, type CallRow, type CallState, type ErrorInfo } from './call-state';
import { joinEvents, SERVER_PHASES, serverPhase, type ServerPhase } from './hops';
import type { LabTransport } from './transport';
import { FrameBatcher, viewFrames, type FrameScheduler } from '../lib/frame-batcher';

export type RunMode = 'settled' | 'fail-fast';

export interface RunConfig {
  count: number;
  concurrency: number;
  timeoutMs: number;
  retries: number;
  minDelayMs: number;
  maxDelayMs: number;
  latencyMs: number;
  errorRate: number;
  mode: RunMode;
  transport: LabTransport;
}

export interface RunInfo {
  id: string;
  config: RunConfig;
  startedAt: number;
  endedAt?: number;
  /** Fail-fast: the call whose failure cancelled the rest, and why it failed. */
  cause?: { index: number; error: ErrorInfo };
}

/** A server call that is not one of this run's rows: batched calls, other tabs, other clients. */
export interface OtherCall {
  callId: string;
  path: string;
  firstAt: number;
  lastAt: number;
  last: ActivityEvent['type'];
  code?: string;
  ms?: number;
  pid?: number;
  sqlstate?: string | null;
  signal?: string;
}

export interface CallsSnapshot {
  version: number;
  run: RunInfo | null;
  rows: readonly CallRow[];
  counts: Readonly<Record<CallState, number>>;
  /** Rows by where their call is on the server (latest attempt). */
  server: Readonly<Record<ServerPhase, number>>;
  /** Server time (epoch ms) its first hop of the run's 1st and 100th call to reach it arrived. */
  firstReceivedAt: number | undefined;
  hundredthReceivedAt: number | undefined;
  active: number;
  selected: number;
  /** Selected calls that can still be cancelled. */
  selectedActive: number;
  /** Fail-fast: calls cancelled because a sibling failed. */
  siblingsCancelled: number;
  others: readonly OtherCall[];
  /** Activity events the server's ring dropped before we read them. */
  missedEvents: number;
  /** The server instances that served this run's calls (their hops' `instance`), in order of first hop. */
  instances: readonly string[];
  /** Time of this frame (for bars that are still growing). */
  now: number;
  inspected: number | null;
}

const OTHERS_KEPT = 60;
/** Instances remembered per run: more than a balancer would ever have in front of one lab. */
const INSTANCES_KEPT = 64;

function zeroPhases(): Record<ServerPhase, number> {
  return Object.fromEntries(SERVER_PHASES.map((p) => [p, 0])) as Record<ServerPhase, number>;
}

function zeroCounts(): Record<CallState, number> {
  return Object.fromEntries(CALL_STATES.map((s) => [s, 0])) as Record<CallState, number>;
}

export class CallsStore {
  #version = 0;
  #run: RunInfo | null = null;
  #rows: CallRow[] = [];
  #byCallId = new Map<string, number>();
  #counts = zeroCounts();
  #phases = zeroPhases();
  #receivedCount = 0;
  #firstReceivedAt: number | undefined;
  #hundredthReceivedAt: number | undefined;
  #selected = 0;
  #selectedActive = 0;
  #siblingsCancelled = 0;
  readonly #others = new Map<string, OtherCall>();
  #othersList: readonly OtherCall[] = [];
  #othersChanged = false;
  #missed = 0;
  #instances: readonly string[] = [];
  #inspected: number | null = null;
  #dirty = true;
  #snapshot: CallsSnapshot;
  readonly #batcher: FrameBatcher;

  constructor(
    scheduler?: FrameScheduler,
    private readonly clock: () => number = Date.now,
  ) {
    this.#batcher = new FrameBatcher(() => { this.#flush(); }, scheduler ?? viewFrames);
    this.#snapshot = this.#build();
  }

  subscribe = (listener: () => void): (() => void) => this.#batcher.subscribe(listener);
  getSnapshot = (): CallsSnapshot => this.#snapshot;

  get run(): RunInfo | null {
    return this.#run;
  }

  row(index: number): CallRow | undefined {
    return this.#rows[index];
  }

  /** Replaces the previous run with `count` queued rows. */
  beginRun(id: string, config: RunConfig, userIds: readonly number[], at = this.clock()): RunInfo {
    this.#run = { id, config, startedAt: at };
    this.#rows = [];
    this.#byCallId = new Map();
    this.#counts = zeroCounts();
    this.#phases = zeroPhases();
    this.#receivedCount = 0;
    this.#firstReceivedAt = undefined;
    this.#hundredthReceivedAt = undefined;
    this.#selected = 0;
    this.#selectedActive = 0;
    this.#siblingsCancelled = 0;
    this.#instances = [];
    this.#inspected = null;
    for (let i = 0; i < config.count; i++) {
      const callId = `${id}-${i + 1}`;
      this.#rows.push(newRow(i, callId, userIds[i % userIds.length] ?? i + 1, config.transport, at));
      this.#byCallId.set(callId, i);
    }
    this.#counts.queued = config.count;
    this.#phases.unseen = config.count;
    // A run's start and end are published at once: "Launch" must not show again while its first publish waits.
    this.#dirty = true;
    this.#batcher.publishNow();
    return this.#run;
  }

  endRun(at = this.clock()): void {
    if (!this.#run || this.#run.endedAt !== undefined) return;
    this.#run = { ...this.#run, endedAt: at };
    this.#dirty = true;
    this.#batcher.publishNow();
  }

  /** Fail-fast: `index` failed first and cancelled its siblings. */
  setCause(index: number, error: ErrorInfo): void {
    if (!this.#run || this.#run.cause) return;
    this.#run = { ...this.#run, cause: { index, error } };
    this.dispatch(index, { type: 'cause' });
  }

  dispatch(index: number, event: CallEvent): void {
    const before = this.#rows[index];
    if (!before) return;
    const after = reduceCall(before, event);
    if (after === before) return;
    this.#rows[index] = after;
    if (after.hops !== before.hops) {
      const was = serverPhase(before.hops);
      const is = serverPhase(after.hops);
      if (was !== is) {
        this.#phases[was]--;
        this.#phases[is]++;
        if (was === 'unseen') this.#noteReceived(after.hops[0]?.at);
      }
    }
    if (after.state !== before.state) {
      this.#counts[before.state]--;
      this.#counts[after.state]++;
      if (after.cancelledBy === 'sibling') this.#siblingsCancelled++;
    }
    const wasSelectedActive = before.selected && !isTerminal(before.state);
    const isSelectedActive = after.selected && !isTerminal(after.state);
    this.#selected += Number(after.selected) - Number(before.selected);
    this.#selectedActive += Number(isSelectedActive) - Number(wasSelectedActive);
    this.#changed();
  }

  /** Joins a batch of server events to rows; the rest become "other calls". */
  applyServerEvents(events: readonly ActivityEvent[], missed = 0): void {
    this.#missed += missed;
    const { hops, others } = joinEvents(events, (base) => this.#byCallId.get(base));
    for (const { index, hop } of hops) {
      this.dispatch(index, { type: 'hop', hop });
      // A new array only when an instance is new, so readers can compare by identity.
      if (!this.#instances.includes(hop.instance) && this.#instances.length < INSTANCES_KEPT) this.#instances = [...this.#instances, hop.instance];
    }
    for (const event of others) this.#noteOther(event);
    if (others.length > 0) this.#othersChanged = true;
    if (others.length > 0 || missed > 0) this.#changed();
  }

  /** What the server answered the client's `calls.cancel` for this run's calls (other ids are not ours). */
  applyCancelOutcomes(outcomes: readonly CancelOutcome[]): void {
    for (const { callId, status } of outcomes) {
      const index = this.#byCallId.get(parseCallId(callId).base);
      if (index !== undefined) this.dispatch(index, { type: 'cancel-outcome', status });
    }
  }

  /** A person's selection: published at once (see FrameBatcher.publishNow), not at the next frame. */
  select(index: number, selected: boolean): void {
    this.dispatch(index, { type: 'select', selected });
    this.#batcher.publishNow();
  }

  /** Selects every call still queued, running or retrying (or clears the selection). */
  selectActive(selected: boolean): void {
    this.#rows.forEach((row, index) => {
      if (selected ? !isTerminal(row.state) : row.selected) this.dispatch(index, { type: 'select', selected });
    });
    this.#batcher.publishNow();
  }

  selectedActiveIndices(): number[] {
    const out: number[] = [];
    this.#rows.forEach((row, index) => {
      if (row.selected && !isTerminal(row.state)) out.push(index);
    });
    return out;
  }

  activeIndices(): number[] {
    const out: number[] = [];
    this.#rows.forEach((row, index) => {
      if (!isTerminal(row.state)) out.push(index);
    });
    return out;
  }

  inspect(index: number | null): void {
    if (this.#inspected === index) return;
    this.#inspected = index;
    this.#dirty = true;
    this.#batcher.publishNow();
  }

  /** Forces a snapshot now (tests, and code that must read its own writes through getSnapshot). */
  flushNow(): void {
    this.#flush();
  }

  #noteReceived(at: number | undefined): void {
    this.#receivedCount++;
    if (this.#receivedCount === 1) this.#firstReceivedAt = at;
    if (this.#receivedCount === 100) this.#hundredthReceivedAt = at;
  }

  #noteOther(event: ActivityEvent): void {
    const prev = this.#others.get(event.callId);
    const next: OtherCall = prev ? { ...prev, lastAt: event.at, last: event.type } : { callId: event.callId, path: event.path, firstAt: event.at, lastAt: event.at, last: event.type };
    if (event.type === 'settled') {
      next.code = event.code;
      next.ms = event.ms;
    } else if (event.type === 'statement.started') next.pid = event.pid;
    else if (event.type === 'statement.ended' && (next.sqlstate == null || event.sqlstate !== null)) next.sqlstate = event.sqlstate;
    else if (event.type === 'signal.fired') next.signal = event.reason;
    // Re-insert so the map's order is "most recently active last".
    this.#others.delete(event.callId);
    this.#others.set(event.callId, next);
    if (this.#others.size > OTHERS_KEPT) {
      const oldest = this.#others.keys().next().value;
      if (oldest !== undefined) this.#others.delete(oldest);
    }
  }

  #changed(): void {
    this.#dirty = true;
    this.#batcher.schedule();
  }

  get #active(): number {
    return this.#counts.queued + this.#counts.running + this.#counts.retrying;
  }

  #build(): CallsSnapshot {
    // Rebuilt only when it changed, so its readers can skip a render when it did not.
    if (this.#othersChanged) {
      this.#othersList = [...this.#others.values()].reverse();
      this.#othersChanged = false;
    }
    return {
      version: this.#version,
      run: this.#run,
      rows: this.#rows.slice(),
      counts: { ...this.#counts },
      server: { ...this.#phases },
      firstReceivedAt: this.#firstReceivedAt,
      hundredthReceivedAt: this.#hundredthReceivedAt,
      active: this.#active,
      selected: this.#selected,
      selectedActive: this.#selectedActive,
      siblingsCancelled: this.#siblingsCancelled,
      others: this.#othersList,
      missedEvents: this.#missed,
      instances: this.#instances,
      now: this.clock(),
      inspected: this.#inspected,
    };
  }

  #flush(): void {
    const ticking = this.#active > 0;
    if (!this.#dirty && !ticking) return;
    this.#version++;
    this.#dirty = false;
    this.#snapshot = this.#build();
    // While calls are in flight their bars grow: keep publishing a frame at a time.
    if (ticking) this.#batcher.schedule();
  }
}
