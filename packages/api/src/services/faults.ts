import type { Fault, FaultTarget } from '@asyncscope/contract';

/** Faults injected at run time, per procedure (see lab.setFaults). */
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
}
