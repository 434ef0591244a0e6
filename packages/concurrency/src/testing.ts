/**
 * Helpers for other packages' tests (`@asyncscope/concurrency/testing`); the package itself never imports them.
 */
import { sleep } from './clock';

export interface UntilOptions {
  /** Give up after this long. Default 5000. */
  timeoutMs?: number | undefined;
  /** Pause between checks. Default 5. */
  intervalMs?: number | undefined;
  /** Appended to the failure message, e.g. a child process's output. */
  context?: (() => string) | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Polls `check` until it gives a value (anything but undefined, null or false) and returns that value; fails
 * naming `what` after `timeoutMs`. A check that throws ends the wait with its error (e.g. "the process exited").
 * Unlike vi.waitFor, a check can simply return its condition, and the failure says what was awaited.
 */
export async function until<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  options: number | UntilOptions = {},
): Promise<T> {
  const { timeoutMs = 5000, intervalMs = 5, context, signal } = typeof options === 'number' ? { timeoutMs: options } : options;
  const start = performance.now();
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== null && value !== false) return value;
    if (performance.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${context ? `:\n${context()}` : ''}`);
    }
    await sleep(intervalMs, { signal });
  }
}
