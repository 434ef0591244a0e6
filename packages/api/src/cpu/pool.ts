import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';

// Resolved through the package's own name, so it is right from the sources and from the server's bundle.
const WORKER_URL = pathToFileURL(createRequire(import.meta.url).resolve('@asyncscope/api/cpu-worker')).href;

export interface DigestResult { digest: string; rounds: number }

/**
 * CPU work off the event loop (the guide's run_in_executor), on piscina's worker pool. Aborting a call
 * that is running terminates its worker thread, so the job really stops; one still queued never starts.
 * The pool is made by the first job, so building a CpuPool starts nothing.
 */
export class CpuPool {
  #pool: Piscina | undefined;
  #closed = false;

  constructor(private readonly maxThreads = Math.max(1, availableParallelism() - 1)) {}

  /** Live worker threads (for tests and stats). */
  get threads(): number {
    return this.#pool?.threads.length ?? 0;
  }

  get queued(): number {
    return this.#pool?.queueSize ?? 0;
  }

  digest(seed: string, rounds: number, signal: AbortSignal): Promise<DigestResult> {
    if (this.#closed) return Promise.reject(new Error('the CPU pool is closed'));
    this.#pool ??= new Piscina({ filename: WORKER_URL, minThreads: 0, maxThreads: this.maxThreads, idleTimeout: 30_000 });
    return this.#pool.run({ seed, rounds }, { signal }) as Promise<DigestResult>;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool?.destroy();
  }
}
