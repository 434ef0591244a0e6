/**
 * The fetch lab's runs, off the page's main thread. On the main thread each call cost the page two tasks (the
 * timer that starts it, its answer's message) and its answer waited behind the page's rendering: at
 * concurrency 4 a `users.byId` took 11–15 ms in the lab against 4–6 ms for a bare client (README, *Where the
 * browser's milliseconds go*). In a dedicated worker the runner, its TaskGroup and the lab's API clients run
 * without the page's frames in their way, and the page only applies what changed to its store.
 *
 *   page (RemoteLab)                       worker (LabHost)
 *   calls.beginRun, rows render  ── run ─▶ startRun on a mirror store, calls over the lab's clients
 *   calls.dispatch / setCause / …  ◀─ ops ─ every change the runner makes, in order, batched per microtask
 *   cancel / cancel-all / token / close ─▶ the runner's handle, the clients
 *
 * Both ends take a port (a Worker, the worker's own scope, or a MessageChannel's port), so the same code
 * runs in the page when no worker can be started, and in tests.
 */
import type { CancelOutcome } from '@asyncscope/contract';
import type { CallEvent, ErrorInfo } from './call-state';
import { CallsStore, type RunConfig } from './calls-store';
import { newRunId, startRun, type FetchUser, type RunHandle, type RunStore } from './runner';
import type { LabTransport } from './transport';

/** Page → lab. */
export type ToLab =
  | { type: 'token'; token: string }
  | { type: 'run'; id: string; config: RunConfig; userIds: number[] }
  | { type: 'cancel'; runId: string; indices: number[] }
  | { type: 'cancel-all'; runId: string }
  | { type: 'close-others'; keep: LabTransport | null };

/** One change the runner made to its store; the page makes the same change to its own. */
export type StoreOp =
  | { op: 'dispatch'; index: number; event: CallEvent }
  | { op: 'cause'; index: number; error: ErrorInfo }
  | { op: 'cancel-outcomes'; outcomes: CancelOutcome[] }
  | { op: 'end'; at: number };

/** Lab → page. */
export interface OpsMessage {
  type: 'ops';
  runId: string;
  ops: StoreOp[];
}

/** What both ends need of a port: a Worker, a DedicatedWorkerGlobalScope and a MessagePort all have it. */
export interface LabPort {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
  /** A MessagePort delivers nothing until started. */
  start?: () => void;
}

export interface LabHostOptions {
  /** users.byId over `transport`, on the lab's client for it. */
  fetchFor: (transport: LabTransport) => FetchUser;
  /** Closes the lab's clients but the one `keep` uses (null: all). */
  closeOthers: (keep: LabTransport | null) => void;
  /** The token the lab's clients authenticate with from now on. */
  setToken: (token: string) => void;
}

/** No frames where nobody renders: the mirror store publishes nothing. */
const NO_FRAMES = (): void => undefined;

/**
 * The lab's end: runs the runner against a mirror of the page's store and sends every change it makes.
 * The mirror gives the runner what it reads (a row's state before a cancel, the fail-fast cause, the active
 * rows); the page's store also gets the server's hops, which the runner never reads.
 */
export class LabHost {
  readonly #mirror = new CallsStore(NO_FRAMES);
  #run: RunHandle | null = null;
  #outbox: StoreOp[] = [];
  #outboxRun = '';
  #flushQueued = false;
  readonly #recording: RunStore;

  constructor(private readonly port: LabPort, private readonly options: LabHostOptions) {
    const mirror = this.#mirror;
    this.#recording = {
      beginRun: (id, config, userIds) => mirror.beginRun(id, config, userIds), // the page began it before asking
      row: (index) => mirror.row(index),
      get run() {
        return mirror.run;
      },
      activeIndices: () => mirror.activeIndices(),
      dispatch: (index, event) => {
        mirror.dispatch(index, event);
        this.#send({ op: 'dispatch', index, event });
      },
      setCause: (index, error) => {
        mirror.setCause(index, error);
        this.#send({ op: 'cause', index, error });
      },
      endRun: () => {
        mirror.endRun();
        this.#send({ op: 'end', at: mirror.run?.endedAt ?? Date.now() });
        this.#flush(); // the page's "Launch" comes back with it: no reason to wait for the microtask
      },
    };
    port.addEventListener('message', (event) => { this.#receive(event.data as ToLab); });
    port.start?.();
  }

  /** What the server answered the lab's `calls.cancel`s (the lab's clients report it here). */
  cancelOutcomes(outcomes: CancelOutcome[]): void {
    if (!this.#mirror.run) return;
    this.#mirror.applyCancelOutcomes(outcomes);
    this.#send({ op: 'cancel-outcomes', outcomes });
  }

  #receive(message: ToLab): void {
    switch (message.type) {
      case 'token':
        this.options.setToken(message.token);
        return;
      case 'close-others':
        this.options.closeOthers(message.keep);
        return;
      case 'run': {
        const { id, config, userIds } = message;
        this.options.closeOthers(config.transport);
        const run = startRun(this.#recording, config, userIds, this.options.fetchFor(config.transport), id);
        this.#run = run;
        void run.done.finally(() => {
          if (this.#run === run) this.#run = null;
        });
        return;
      }
      case 'cancel':
        if (this.#run?.id === message.runId) this.#run.cancelMany(message.indices);
        return;
      case 'cancel-all':
        if (this.#run?.id === message.runId) this.#run.cancelAll();
        return;
    }
  }

  #send(op: StoreOp): void {
    const runId = this.#mirror.run?.id ?? '';
    if (runId !== this.#outboxRun) this.#flush();
    this.#outboxRun = runId;
    this.#outbox.push(op);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    // Everything one answer changes (its attempt, its settle, the next call's start) goes as one message.
    queueMicrotask(() => { this.#flush(); });
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#outbox.length === 0) return;
    const message: OpsMessage = { type: 'ops', runId: this.#outboxRun, ops: this.#outbox };
    this.#outbox = [];
    this.port.postMessage(message);
  }
}

/**
 * The page's end: begins each run in the page's store (its rows render at once), hands it to the lab, and
 * applies what the lab sends back. Its handles cancel through the lab.
 */
export class RemoteLab {
  readonly #ends = new Map<string, () => void>();
  #token: string | null = null;
  #port: LabPort | null = null;
  #failures = 0;

  /**
   * `connect` gives the lab's port, when first needed and again after the lab broke (`failures` says how often
   * it did: the page can then host the lab itself).
   */
  constructor(private readonly calls: CallsStore, private readonly connect: (failures: number) => LabPort) {}

  /** The lab's clients authenticate with `token` from now on; a new token closes their sockets (they open again). */
  setToken(token: string): void {
    if (token === this.#token) return;
    const changed = this.#token !== null;
    this.#token = token;
    this.#post({ type: 'token', token });
    if (changed) this.closeOthers(null);
  }

  closeOthers(keep: LabTransport | null): void {
    this.#post({ type: 'close-others', keep });
  }

  start(config: RunConfig, userIds: readonly number[], id = newRunId()): RunHandle {
    this.calls.beginRun(id, config, userIds);
    const done = new Promise<void>((resolve) => { this.#ends.set(id, resolve); });
    this.#post({ type: 'run', id, config, userIds: [...userIds] });
    return {
      id,
      done,
      cancel: (index) => { this.#post({ type: 'cancel', runId: id, indices: [index] }); },
      cancelMany: (indices) => { this.#post({ type: 'cancel', runId: id, indices: [...indices] }); },
      cancelAll: () => { this.#post({ type: 'cancel-all', runId: id }); },
    };
  }

  /**
   * The lab stopped (its worker failed to load, or threw): every call still going is failed with `message`,
   * the run ends and its `done` settles, so the page can launch again, on a lab connected anew.
   */
  broken(message: string): void {
    this.#port = null;
    this.#failures++;
    const run = this.calls.run;
    if (!run || run.endedAt !== undefined) return;
    const at = Date.now();
    const error: ErrorInfo = { code: 'ERROR', message };
    for (const index of this.calls.activeIndices()) this.calls.dispatch(index, { type: 'failed', at, error, timedOut: false });
    this.#end(run.id, at);
  }

  #receive(message: OpsMessage): void {
    if (this.calls.run?.id !== message.runId) return; // a run the page has replaced
    for (const op of message.ops) {
      switch (op.op) {
        case 'dispatch':
          this.calls.dispatch(op.index, op.event);
          break;
        case 'cause':
          this.calls.setCause(op.index, op.error);
          break;
        case 'cancel-outcomes':
          this.calls.applyCancelOutcomes(op.outcomes);
          break;
        case 'end':
          this.#end(message.runId, op.at);
          break;
      }
    }
  }

  #end(runId: string, at: number): void {
    this.calls.endRun(at);
    this.#ends.get(runId)?.();
    this.#ends.delete(runId);
  }

  #post(message: ToLab): void {
    if (!this.#port) {
      const port = this.connect(this.#failures);
      port.addEventListener('message', (event) => {
        if (this.#port === port) this.#receive(event.data as OpsMessage);
      });
      port.start?.();
      this.#port = port;
      if (this.#token !== null && message.type !== 'token') port.postMessage({ type: 'token', token: this.#token } satisfies ToLab);
    }
    this.#port.postMessage(message);
  }
}
