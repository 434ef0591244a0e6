/**
 * A steady load of users.byId / users.create / lab.slowWrite from a few workers, bounded in calls and in
 * time: it stops by itself, or at `stop()`. Writes carry idempotency keys and are retried with the same
 * key on retryable failures (as the README's client policy does), so "acknowledged" means the server said
 * OK to one of the attempts; `acknowledged` keeps them for the lost-write check.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { mutate, query, type CallResult, type Target } from './http';

export type Procedure = 'users.byId' | 'users.create' | 'lab.slowWrite';

export interface Attempt extends CallResult {
  procedure: Procedure;
}

export interface LoadOptions {
  workers: number;
  /** Seeded user ids are 1..users. */
  users: number;
  /** Per-attempt budget sent as x-deadline-ms; the client gives up 1 s after it. */
  budgetMs: number;
  /** Pause between a worker's calls. */
  pauseMs: number;
  slowWriteMs: number;
  maxCalls: number;
  maxMs: number;
  /** Attempts per write (same idempotency key). */
  writeAttempts: number;
  /** Prefix of keys, emails and labels, unique per run. */
  tag: string;
}

const RETRYABLE = (code: string) =>
  code === 'SERVICE_UNAVAILABLE' || code === 'TOO_MANY_REQUESTS' || code === 'CLIENT_TIMEOUT' || code.startsWith('NETWORK:');

export class SteadyLoad {
  readonly attempts: Attempt[] = [];
  /** Emails of users.create calls acknowledged OK, with the id the server returned. */
  readonly createdUsers = new Map<string, number>();
  /** Labels of lab.slowWrite calls acknowledged OK. */
  readonly writtenLabels = new Set<string>();
  /** Writes that never got an OK after every attempt (outcome unknown to the client; not counted as lost). */
  unacknowledgedWrites = 0;
  readonly #controller = new AbortController();
  #done: Promise<void> | undefined;
  #calls = 0;

  constructor(private readonly t: Target, private readonly options: LoadOptions) {}

  start(): void {
    const deadlineAt = Date.now() + this.options.maxMs;
    this.#done = Promise.all(Array.from({ length: this.options.workers }, (_, w) => this.#worker(w, deadlineAt))).then(() => undefined);
  }

  /** Stops the workers (calls in flight are aborted) and waits for them. */
  async stop(): Promise<void> {
    this.#controller.abort();
    await this.#done;
  }

  async #worker(w: number, deadlineAt: number): Promise<void> {
    const { signal } = this.#controller;
    for (let i = 0; !signal.aborted && Date.now() < deadlineAt && this.#calls < this.options.maxCalls; i++) {
      this.#calls++;
      const kind = (w + i) % 3;
      if (kind === 0) await this.#read(signal);
      else if (kind === 1) await this.#write('users.create', `${this.options.tag}-w${w}-${i}`, signal);
      else await this.#write('lab.slowWrite', `${this.options.tag}-w${w}-${i}`, signal);
      if (this.options.pauseMs > 0) await sleep(this.options.pauseMs, undefined, { signal }).catch(() => undefined);
    }
  }

  #callOptions(signal: AbortSignal) {
    return { signal, timeoutMs: this.options.budgetMs + 1000, headers: { 'x-deadline-ms': String(this.options.budgetMs) } };
  }

  async #read(signal: AbortSignal): Promise<void> {
    const id = 1 + Math.floor(Math.random() * this.options.users);
    const r = await query(this.t, 'users.byId', { id }, this.#callOptions(signal));
    if (r.code !== 'ABORTED') this.attempts.push({ ...r, procedure: 'users.byId' });
  }

  async #write(procedure: 'users.create' | 'lab.slowWrite', key: string, signal: AbortSignal): Promise<void> {
    const input =
      procedure === 'users.create'
        ? { name: `Chaos ${key}`, email: `${key}@chaos.test`, idempotencyKey: key }
        : { label: key, ms: this.options.slowWriteMs, idempotencyKey: key };
    for (let attempt = 0; attempt < this.options.writeAttempts && !signal.aborted; attempt++) {
      // Backoff with full jitter, capped at 500 ms: outages here last seconds.
      if (attempt > 0) await sleep(Math.random() * Math.min(500, 50 * 2 ** attempt), undefined, { signal }).catch(() => undefined);
      const r = await mutate(this.t, procedure, input, this.#callOptions(signal));
      if (r.code === 'ABORTED') break;
      this.attempts.push({ ...r, procedure });
      if (r.code === 'OK') {
        if (procedure === 'users.create') this.createdUsers.set(input.idempotencyKey, (r.data as { id: number }).id);
        else this.writtenLabels.add(key);
        return;
      }
      if (!RETRYABLE(r.code)) break;
    }
    this.unacknowledgedWrites++;
  }
}
