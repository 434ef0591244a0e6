/**
 * The lab's fault is the server's: while it is set, every client's calls to that procedure get slower or
 * fail. So the lab holds it only for its run: it is cleared when the run ends (or could not start) and when
 * the page goes away, unless the person pinned it. A fault someone else changed since is theirs: left alone.
 */
import type { Fault, FaultTarget } from '@asyncscope/contract';

export interface FaultsApi {
  set(procedure: FaultTarget, fault: Fault, signal?: AbortSignal): Promise<unknown>;
  list(): Promise<Record<string, Fault | undefined>>;
  /** While the page goes away: sent at once (fetch keepalive), no answer awaited. */
  clearOnUnload(procedure: FaultTarget): void;
}

export const NO_FAULT: Fault = { latencyMs: 0, errorRate: 0 };

const same = (a: Fault | undefined, b: Fault): boolean => a !== undefined && a.latencyMs === b.latencyMs && a.errorRate === b.errorRate;

export class LabFaults {
  #held: { procedure: FaultTarget; fault: Fault } | null = null;
  #pinned = false;
  /** One change at a time: a run's release still reading the server must not undo the next run's fault. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #listeners = new Set<() => void>();

  constructor(private readonly api: FaultsApi) {}

  /** What this page set and will clear (null: nothing). */
  get held(): { procedure: FaultTarget; fault: Fault } | null {
    return this.#held;
  }

  get pinned(): boolean {
    return this.#pinned;
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  };

  readonly getPinned = (): boolean => this.#pinned;
  readonly getHeld = (): { procedure: FaultTarget; fault: Fault } | null => this.#held;

  setPinned(pinned: boolean): void {
    this.#pinned = pinned;
    this.#emit();
  }

  /**
   * Sets exactly what the form says (no fault clears the procedure's); a real fault is held until release —
   * from the moment it is asked for: the server may have set it before its answer reaches a page that is
   * closing. Held through a failed or aborted set too: release compares with the server before it clears
   * anything.
   */
  apply(procedure: FaultTarget, fault: Fault, signal?: AbortSignal): Promise<void> {
    return this.#serial(async () => {
      signal?.throwIfAborted();
      this.#held = same(fault, NO_FAULT) ? null : { procedure, fault };
      this.#emit();
      await this.api.set(procedure, fault, signal);
    });
  }

  /** The run is over: clear the held fault unless pinned or changed by someone else. True when cleared. */
  release(): Promise<boolean> {
    return this.#serial(async () => {
      const held = this.#held;
      if (!held || this.#pinned) return false;
      this.#held = null;
      this.#emit();
      const current = (await this.api.list())[held.procedure];
      if (!same(current, held.fault)) return false;
      await this.api.set(held.procedure, NO_FAULT);
      return true;
    });
  }

  /** The page goes away (pagehide): no time to read first, so the held fault is cleared as it stands. */
  releaseOnUnload(): void {
    const held = this.#held;
    if (!held || this.#pinned) return;
    this.#held = null;
    this.api.clearOnUnload(held.procedure);
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(op);
    this.#queue = result.catch(() => undefined); // a failed change does not block the next
    return result;
  }

  #emit(): void {
    for (const listener of this.#listeners) listener();
  }
}
