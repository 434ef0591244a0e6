import type { Fault, FaultTarget } from '@asyncscope/contract';

/**
 * Faults injected at run time, per procedure (see lab.setFaults): the in-memory view the call path reads,
 * synchronously. The rows live in Postgres (lab_faults); FaultStore (./faults-store.ts) fills this view from
 * them and keeps it current. `set` and `clear` change this view only (tests use them to inject a fault
 * without the table); the next reload replaces it with the table's rows.
 */
export class Faults {
  readonly #faults = new Map<string, Fault>();

  constructor(private readonly random: () => number = Math.random) {}

  set(procedure: FaultTarget, fault: Fault): void {
    if (fault.latencyMs === 0 && fault.errorRate === 0) this.#faults.delete(procedure);
    else this.#faults.set(procedure, fault);
  }

  get(path: string): Fault | undefined {
    return this.#faults.get(path);
  }

  /** Whether this call should fail, drawn at the configured rate. */
  shouldFail(fault: Fault): boolean {
    return fault.errorRate > 0 && this.random() < fault.errorRate;
  }

  all(): Record<string, Fault> {
    return Object.fromEntries(this.#faults);
  }

  clear(): void {
    this.#faults.clear();
  }

  /** Everything at once, as the table holds it (rows with no effect are left out, like `set` does). */
  replace(faults: Iterable<readonly [string, Fault]>): void {
    this.#faults.clear();
    for (const [procedure, fault] of faults) {
      if (fault.latencyMs !== 0 || fault.errorRate !== 0) this.#faults.set(procedure, fault);
    }
  }
}
