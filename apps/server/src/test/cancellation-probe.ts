/**
 * What the cancellation tests look at, hop by hop, whatever carried the call (HTTP/1.1, HTTP/1.1 over TLS,
 * HTTP/2): the server's activity log (signal fired, statement ended with 57014, rolled back, settled) and
 * PostgreSQL's own view of the pool (pg_stat_activity, through a separate observer connection).
 */
import type { ActivityEvent } from '@asyncscope/api';
import { apiErrorCode } from '@asyncscope/client';
import { until } from '@asyncscope/concurrency/testing';
import { TRPCClientError } from '@trpc/client';
import type postgres from 'postgres';
import { expect } from 'vitest';
import type { TestServer } from '../test-server';

export interface PgSession { pid: number; state: string | null; query: string; wait: string | null }

/** The settled outcome of a promise: undefined when it resolved, the error when it rejected. */
export const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

/** What a caller's own abort rejects with: the client's error, no answer from the server, an AbortError as cause. */
export function expectAbortedByCaller(error: unknown): void {
  expect(error).toBeInstanceOf(TRPCClientError);
  expect(apiErrorCode(error)).toBeUndefined();
  expect((error as Error).cause).toMatchObject({ name: 'AbortError' });
}

export interface CancellationProbe {
  sessions: () => Promise<PgSession[]>;
  /** Active statements of the server's pool whose text contains `fragment`. */
  running: (fragment: string) => Promise<PgSession[]>;
  eventsOf: (callId: string) => ActivityEvent[];
  hop: <K extends ActivityEvent['type']>(callId: string, type: K) => Extract<ActivityEvent, { type: K }> | undefined;
}

/** Getters, because test files assign their server and observer in beforeAll. */
export function cancellationProbe(server: () => TestServer, observer: () => postgres.Sql, applicationName = 'test-server'): CancellationProbe {
  const sessions = () =>
    observer()<PgSession[]>`select pid, state, query, wait_event as wait from pg_stat_activity where application_name = ${applicationName} and datname = current_database()`;
  const eventsOf = (callId: string): ActivityEvent[] => server().server.runtime.activity.read(0, 100_000).events.filter((e) => e.callId === callId);
  return {
    sessions,
    running: async (fragment) => (await sessions()).filter((s) => s.state === 'active' && s.query.includes(fragment)),
    eventsOf,
    hop: <K extends ActivityEvent['type']>(callId: string, type: K) => eventsOf(callId).find((e) => e.type === type) as Extract<ActivityEvent, { type: K }> | undefined,
  };
}

/**
 * A call aborted by its client at `abortedAt` (performance.now()): the server's signal fired for `reason`
 * (the connection closed; over WebSocket, a calls.cancel) within 200 ms, its statement was cancelled inside PostgreSQL (57014) and left pg_stat_activity
 * within 500 ms, and the call settled CLIENT_CLOSED_REQUEST.
 */
export async function expectCancelledHopByHop(probe: CancellationProbe, callId: string, abortedAt: number, reason: 'client-closed' | 'cancelled' = 'client-closed'): Promise<void> {
  const fired = await until('the server signal', () => probe.hop(callId, 'signal.fired'));
  expect(fired.reason).toBe(reason);
  expect(fired.at - Date.now() + (performance.now() - abortedAt)).toBeLessThan(200);

  const started = probe.hop(callId, 'statement.started');
  expect(started?.pid).toBeGreaterThan(0);
  await until('the statement leaves pg_stat_activity', async () => !(await probe.sessions()).some((s) => s.pid === started?.pid && s.state === 'active'), 2000);
  expect(performance.now() - abortedAt).toBeLessThan(500);
  expect(probe.hop(callId, 'statement.ended')).toMatchObject({ sqlstate: '57014', pid: started?.pid });
  await until('settled', () => probe.hop(callId, 'settled'));
  expect(probe.hop(callId, 'settled')?.code).toBe('CLIENT_CLOSED_REQUEST');
}

/** Starts a call with `start(signal)`, aborts it once a statement sleeps inside Postgres, and gives what the call rejected with. */
export async function abortOnceRunning(probe: CancellationProbe, start: (signal: AbortSignal) => Promise<unknown>): Promise<unknown> {
  const controller = new AbortController();
  const call = failure(start(controller.signal));
  await until('the statement waits inside Postgres', async () => (await probe.running('pg_sleep')).length > 0);
  controller.abort();
  return call;
}

/**
 * A lab.sleep of 2 s given a 300 ms budget (`start(deadlineAt)` makes the call): it fails TIMEOUT at the
 * budget, the server received that budget, and its signal fired for 'timeout'.
 */
export async function expectStoppedAtBudget(probe: CancellationProbe, callId: string, start: (deadlineAt: number) => Promise<unknown>): Promise<void> {
  const started = performance.now();
  const error = await failure(start(Date.now() + 300));
  const took = performance.now() - started;
  expect(apiErrorCode(error)).toBe('TIMEOUT');
  expect(took).toBeGreaterThan(280);
  expect(took).toBeLessThan(700);
  expect(probe.hop(callId, 'received')?.budgetMs).toBeLessThanOrEqual(300);
  expect(probe.hop(callId, 'signal.fired')?.reason).toBe('timeout');
}

/** A cancelled lab.slowWrite: rolled back (57014), its row never written, no session left idle in transaction. */
export async function expectRolledBack(probe: CancellationProbe, observer: postgres.Sql, callId: string, label: string): Promise<void> {
  await until('rolled back', () => probe.hop(callId, 'rolled_back'));
  expect(probe.hop(callId, 'rolled_back')?.sqlstate).toBe('57014');
  expect(await observer`select * from lab_writes where label = ${label}`).toHaveLength(0);
  await until('no idle-in-transaction session', async () => !(await probe.sessions()).some((s) => s.state?.startsWith('idle in transaction')));
}

/** After calls were cancelled: every connection back in the pool and idle, nothing queued or running, no call admitted. */
export async function expectPoolReturned(probe: CancellationProbe, t: TestServer): Promise<void> {
  await until('every connection idle', async () => (await probe.sessions()).every((s) => s.state === 'idle'));
  expect(t.server.database.client.statements()).toEqual({ queued: 0, running: 0 });
  await until('no call in flight', () => t.server.runtime.admission.inFlight === 0);
}
