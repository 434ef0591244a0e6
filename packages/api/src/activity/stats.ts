import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** One second of the server's life. */
export interface StatsSample {
  at: number;
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  latencyP99Ms: number;
  eventLoopDelayP50Ms: number;
  eventLoopDelayP99Ms: number;
  inFlight: number;
  queued: number;
  shed: number;
}

const MAX_LATENCIES_PER_SECOND = 20_000;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/**
 * Per-second samples of throughput, latency and event-loop delay, kept for `historySeconds`. A timer takes
 * one sample a second (unref'd, so it never keeps the process alive) from `start()` until `stop()`.
 */
export class ServerStats {
  readonly #history: StatsSample[] = [];
  readonly #loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  #latencies: number[] = [];
  #completed = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly gauges: () => { inFlight: number; queued: number; shed: number },
    readonly historySeconds = 300,
  ) {}

  start(): void {
    if (this.#timer) return;
    this.#loop.enable();
    this.#timer = setInterval(() => { this.#sample(); }, 1000);
    this.#timer.unref();
  }

  recordCall(ms: number): void {
    this.#completed++;
    if (this.#latencies.length < MAX_LATENCIES_PER_SECOND) this.#latencies.push(ms);
  }

  /** Samples, oldest first. */
  history(): readonly StatsSample[] {
    return this.#history;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#loop.disable();
  }

  #sample(): void {
    const sorted = Float64Array.from(this.#latencies).sort();
    this.#history.push({
      at: Date.now(),
      requestsPerSecond: this.#completed,
      latencyP50Ms: percentile(sorted, 50),
      latencyP95Ms: percentile(sorted, 95),
      latencyP99Ms: percentile(sorted, 99),
      eventLoopDelayP50Ms: this.#loop.count > 0 ? this.#loop.percentile(50) / 1e6 : 0,
      eventLoopDelayP99Ms: this.#loop.count > 0 ? this.#loop.percentile(99) / 1e6 : 0,
      ...this.gauges(),
    });
    if (this.#history.length > this.historySeconds) this.#history.shift();
    this.#latencies = [];
    this.#completed = 0;
    this.#loop.reset();
  }
}
