import { createAbortController } from './abort-controller';
import { systemClock, type Clock, type TimerHandle } from './clock';
import { TimeoutError, abortReason } from './errors';

/** A child AbortSignal you control: aborts when any parent aborts, or when you call `abort()`. */
export interface SignalScope extends Disposable {
  readonly signal: AbortSignal;
  /** Abort this scope (and only this scope) with `reason`; also detaches it from its parents. Safe to destructure. */
  readonly abort: (reason?: unknown) => void;
  /** Detach from the parents (and clear a deadline's timer) without aborting. Idempotent. Safe to destructure. */
  readonly dispose: () => void;
}

type Parent = AbortSignal | undefined;

/**
 * The one implementation behind linkSignals and deadline. A server opens one per call, thousands at once,
 * so it is built to be small: one AbortController, one abort listener for all its parents (made only when
 * there is a parent), prototype methods, and the destructurable `abort` / `dispose` closures made only when
 * someone reads them.
 *
 * Why the listener is a function and not this object (`handleEvent`): for an object listener, Node's
 * EventTarget makes a closure of its own (`this.callback = async (...args) => …`, node:internal/event_target),
 * and V8 allocates a function literal assigned to a property in the old generation. That closure holds the
 * listener, so every scope — with its controller and whatever the call hung on it — outlived the call until
 * the next full collection. For the same reason the closures below are made as locals, then stored.
 */
class LinkedScope implements SignalScope {
  readonly #controller: AbortController;
  // Most scopes have one or two parents: two fields, no array.
  #first: AbortSignal | undefined;
  #rest: AbortSignal[] | undefined;
  #timer: TimerHandle;
  #clock: Clock | undefined; // set while a deadline's timer is armed
  #abortFn: ((reason?: unknown) => void) | undefined;
  #disposeFn: (() => void) | undefined;
  #onParentAbort: ((event: Event) => void) | undefined;

  constructor(parents: readonly Parent[], controller: AbortController = createAbortController()) {
    this.#controller = controller;
    if (controller.signal.aborted) return;
    let onParentAbort: ((event: Event) => void) | undefined;
    for (const parent of parents) {
      if (parent === undefined) continue;
      if (parent.aborted) {
        this.#abort(parent.reason);
        return;
      }
      onParentAbort ??= (event) => { this.#abort((event.target as AbortSignal).reason); };
      this.#onParentAbort = onParentAbort;
      parent.addEventListener('abort', onParentAbort, { once: true });
      if (this.#first === undefined) this.#first = parent;
      else (this.#rest ??= []).push(parent);
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get abort(): (reason?: unknown) => void {
    if (this.#abortFn) return this.#abortFn;
    const abort = (reason?: unknown) => { this.#abort(reason); };
    this.#abortFn = abort;
    return abort;
  }

  get dispose(): () => void {
    if (this.#disposeFn) return this.#disposeFn;
    const dispose = () => { this.#detach(); };
    this.#disposeFn = dispose;
    return dispose;
  }

  [Symbol.dispose](): void {
    this.#detach();
  }

  /** Arms the deadline: abort with TimeoutError(ms) after `ms`, unless detached or aborted first. */
  arm(ms: number, clock: Clock): void {
    this.#clock = clock;
    this.#timer = clock.setTimeout(() => {
      this.#clock = undefined;
      this.#abort(new TimeoutError(ms));
    }, ms);
  }

  #abort(reason: unknown): void {
    // Once aborted there is nothing left to listen for, so let go of the parents (and the timer) right away.
    this.#detach();
    this.#controller.abort(reason);
  }

  #detach(): void {
    if (this.#clock !== undefined) {
      this.#clock.clearTimeout(this.#timer);
      this.#clock = undefined;
      this.#timer = undefined;
    }
    const listener = this.#onParentAbort;
    if (listener === undefined) return;
    this.#onParentAbort = undefined;
    if (this.#first !== undefined) {
      this.#first.removeEventListener('abort', listener);
      this.#first = undefined;
    }
    if (this.#rest !== undefined) {
      for (const parent of this.#rest) parent.removeEventListener('abort', listener);
      this.#rest = undefined;
    }
  }
}

/**
 * Returns a signal that aborts with the reason of whichever input aborts first.
 *
 * Why not `AbortSignal.any()`: on Node 20 it leaks. Each derived signal stays reachable from its long-lived
 * parent (a server-wide shutdown signal, a TaskGroup's signal) until the parent is collected
 * (nodejs/node#54614, nodejs/node#55351). Plain listeners plus `dispose()` remove that edge
 * deterministically, and work the same in every browser.
 */
export function linkSignals(...signals: Parent[]): SignalScope {
  return new LinkedScope(signals);
}

export interface DeadlineOptions {
  /** A parent (or several) whose abort also aborts the scope, with the parent's reason rather than a TimeoutError. */
  signal?: Parent | readonly Parent[];
  clock?: Clock | undefined;
  /**
   * The controller to abort, whose signal becomes the scope's, instead of a new one: for an owner whose own
   * controller stands for exactly this work (a server's request carrying one call), it saves an AbortSignal
   * and a link. Its owner may abort it too; the deadline's timer then stays armed, doing nothing, until `dispose`.
   */
  controller?: AbortController | undefined;
}

/**
 * A scope whose signal aborts with `TimeoutError(ms)` after `ms`. `Infinity` means no deadline.
 * The timer is cleared on dispose and on any earlier abort, so a finished scope never holds the event loop open.
 */
export function deadline(ms: number, { signal, clock = systemClock, controller }: DeadlineOptions = {}): SignalScope {
  if (Number.isNaN(ms) || ms < 0) throw new RangeError(`deadline: ms must be >= 0, got ${ms}`);
  const scope = new LinkedScope(Array.isArray(signal) ? (signal as readonly Parent[]) : [signal as Parent], controller);
  if (!scope.signal.aborted && ms !== Infinity) scope.arm(ms, clock);
  return scope;
}

/**
 * Runs `fn` under a deadline. At the deadline the signal given to `fn` is aborted (so the work is really
 * cancelled, not just abandoned) and the returned promise rejects with `TimeoutError` right away.
 * If `fn` ignores its signal it keeps running unobserved; use a TaskGroup when you must wait for it.
 * If the parent `signal` aborts first, rejects with the parent's reason.
 */
export async function withTimeout<T>(fn: (signal: AbortSignal) => Promise<T>, ms: number, options: DeadlineOptions = {}): Promise<T> {
  const scope = deadline(ms, options);
  try {
    scope.signal.throwIfAborted();
    return await raceAbort(fn(scope.signal), scope.signal);
  } finally {
    scope.dispose();
  }
}

/** Settles like `promise`, or rejects with the signal's reason as soon as it aborts. Never leaves an unhandled rejection behind. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(abortReason(signal));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    // Handles the loser too: a late rejection from `promise` lands in an already-settled reject and is dropped.
    void promise.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
    });
  });
}
