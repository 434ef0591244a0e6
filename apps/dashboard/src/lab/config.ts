/** The fetch lab's form: defaults, bounds and the checks that turn it into a RunConfig. */
import { z } from 'zod';
import type { RunConfig } from './calls-store';

/**
 * Browsers open at most 6 HTTP/1.1 connections per origin. The activity stream holds one for good and
 * the server panel polls once a second: 4 calls at a time leaves room for both.
 */
export const BROWSER_CONNECTIONS = 6;
export const DEFAULT_CONCURRENCY = 4;

export interface LabForm {
  count: string;
  concurrency: string;
  timeoutMs: string;
  retries: string;
  minDelayMs: string;
  maxDelayMs: string;
  latencyMs: string;
  errorRatePct: string;
  mode: 'settled' | 'fail-fast';
  batched: boolean;
}

export const DEFAULT_FORM: LabForm = {
  count: '50',
  concurrency: String(DEFAULT_CONCURRENCY),
  timeoutMs: '5000',
  retries: '2',
  minDelayMs: '100',
  maxDelayMs: '1000',
  latencyMs: '300',
  errorRatePct: '0',
  mode: 'settled',
  batched: false,
};

const whole = (label: string, min: number, max: number) =>
  z.coerce
    .number({ error: `${label} must be a number` })
    .int({ error: `${label} must be a whole number` })
    .min(min, { error: `${label}: ${min}–${max.toLocaleString('en-US')}` })
    .max(max, { error: `${label}: ${min}–${max.toLocaleString('en-US')}` });

const labSchema = z
  .object({
    count: whole('Calls', 1, 10_000),
    concurrency: whole('Concurrency', 1, 200),
    timeoutMs: whole('Timeout', 50, 120_000),
    retries: whole('Retries', 0, 10),
    minDelayMs: whole('Min backoff', 0, 30_000),
    maxDelayMs: whole('Max backoff', 0, 60_000),
    latencyMs: whole('Latency', 0, 60_000),
    errorRatePct: z.coerce.number({ error: 'Error rate must be a number' }).min(0, { error: 'Error rate: 0–100 %' }).max(100, { error: 'Error rate: 0–100 %' }),
    mode: z.enum(['settled', 'fail-fast']),
    batched: z.boolean(),
  })
  .refine((v) => v.maxDelayMs >= v.minDelayMs, { error: 'Max backoff must be at least the min backoff', path: ['maxDelayMs'] });

export type LabErrors = Partial<Record<keyof LabForm, string>>;

export function parseLabForm(form: LabForm): { ok: true; config: RunConfig } | { ok: false; errors: LabErrors } {
  const trimmed = Object.fromEntries(Object.entries(form).map(([k, v]) => [k, typeof v === 'string' && v.trim() === '' ? undefined : v]));
  const result = labSchema.safeParse(trimmed);
  if (!result.success) {
    const errors: LabErrors = {};
    for (const issue of result.error.issues) {
      const key = issue.path[0] as keyof LabForm | undefined;
      if (key) errors[key] ??= issue.message;
    }
    return { ok: false, errors };
  }
  const v = result.data;
  return {
    ok: true,
    config: {
      count: v.count,
      concurrency: v.concurrency,
      timeoutMs: v.timeoutMs,
      retries: v.retries,
      minDelayMs: v.minDelayMs,
      maxDelayMs: v.maxDelayMs,
      latencyMs: v.latencyMs,
      errorRate: Math.round(v.errorRatePct * 100) / 10_000,
      mode: v.mode,
      transport: v.batched ? 'batch' : 'single',
    },
  };
}

/** What the concurrency means for the browser's connection budget, in one sentence (or null when fine). */
export function connectionAdvice(concurrency: number, batched: boolean): string | null {
  if (batched) return 'Batched: calls started together share one HTTP request. Cancelling one only drops its answer — the server keeps working until every call in that request is cancelled.';
  const free = BROWSER_CONNECTIONS - 1; // the activity stream's
  if (concurrency > free) {
    return `Above ${free} calls at a time the browser queues requests itself (6 connections per origin, 1 held by the event stream): those rows show “running”, but the server has not received them, and the server panel's polling waits too.`;
  }
  return null;
}
