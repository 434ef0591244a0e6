/** The fetch lab's form: defaults, bounds and the checks that turn it into a RunConfig. */
import { z } from 'zod';
import type { RunConfig } from './calls-store';
import { DEFAULT_TRANSPORT, LAB_TRANSPORTS, PLAIN_HTTP_PAGE, transportChoices, type LabTransport, type PageProtocol } from './transport';

/**
 * The page's own traffic (event stream, server panel) rides its WebSocket, so the lab's calls have the
 * wire to themselves: 20 at a time shows concurrency (and a pool of 20 working) without a queue.
 */
export const DEFAULT_CONCURRENCY = 20;
export const MAX_CONCURRENCY = 1000;

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
  transport: LabTransport;
}

export const DEFAULT_FORM: LabForm = {
  count: '100',
  concurrency: String(DEFAULT_CONCURRENCY),
  timeoutMs: '5000',
  retries: '2',
  minDelayMs: '100',
  maxDelayMs: '1000',
  latencyMs: '300',
  errorRatePct: '0',
  mode: 'settled',
  transport: DEFAULT_TRANSPORT,
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
    concurrency: whole('Concurrency', 1, MAX_CONCURRENCY),
    timeoutMs: whole('Timeout', 50, 120_000),
    retries: whole('Retries', 0, 10),
    minDelayMs: whole('Min backoff', 0, 30_000),
    maxDelayMs: whole('Max backoff', 0, 60_000),
    latencyMs: whole('Latency', 0, 60_000),
    errorRatePct: z.coerce.number({ error: 'Error rate must be a number' }).min(0, { error: 'Error rate: 0–100 %' }).max(100, { error: 'Error rate: 0–100 %' }),
    mode: z.enum(['settled', 'fail-fast']),
    transport: z.enum(LAB_TRANSPORTS as [LabTransport, ...LabTransport[]], { error: 'Choose how the calls travel' }),
  })
  .refine((v) => v.maxDelayMs >= v.minDelayMs, { error: 'Max backoff must be at least the min backoff', path: ['maxDelayMs'] });

export type LabErrors = Partial<Record<keyof LabForm, string>>;

/** The form as a RunConfig, or every field's problem; a transport this page cannot use (HTTP/2 without TLS) is one. */
export function parseLabForm(form: LabForm, page: PageProtocol = PLAIN_HTTP_PAGE): { ok: true; config: RunConfig } | { ok: false; errors: LabErrors } {
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
  const unavailable = transportChoices(page).find((c) => c.value === v.transport)?.unavailable;
  if (unavailable) return { ok: false, errors: { transport: unavailable } };
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
      transport: v.transport,
    },
  };
}
