import { initTRPC, TRPCError } from '@trpc/server';
import { z, ZodError } from 'zod';
import type { Context } from './context';
import { unauthorizedMessage } from './auth';
import { abortCause, openCallScope, type CallScope } from './call-scope';
import { OverloadedError } from './services/errors';
import { edgeError, toTRPCError } from './trpc-errors';

/** Messages for errors tRPC raises with no message of its own but the code. */
const FALLBACK_MESSAGES: Partial<Record<string, string>> = {
  PAYLOAD_TOO_LARGE: 'The request body is larger than the server accepts.',
  PARSE_ERROR: 'The request body is not valid JSON.',
  UNAUTHORIZED: unauthorizedMessage(),
};

function describeZodError(error: ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

/**
 * Raised when input fails its schema. tRPC wraps it in a BAD_REQUEST TRPCError whose message is this
 * error's: a sentence a person can read (a ZodError's own message is a JSON dump of its issues).
 */
export class InputValidationError extends Error {
  override readonly name = 'InputValidationError';
  constructor(readonly zodError: ZodError) {
    const description = describeZodError(zodError);
    // zod's own message for a wrong top-level value already starts "Invalid input": say it once.
    super(description.startsWith('Invalid input') ? description : `Invalid input: ${description}`);
  }
}

/**
 * Adapts a zod schema for `.input()`: same inferred input/output types for clients, readable messages
 * for every caller (HTTP and createCaller alike).
 */
export function validInput<S extends z.ZodType>(schema: S) {
  return {
    _input: undefined as unknown as z.input<S>,
    _output: undefined as unknown as z.output<S>,
    parse(value: unknown): z.output<S> {
      const result = schema.safeParse(value);
      if (result.success) return result.data;
      throw new InputValidationError(result.error);
    },
  };
}

/**
 * How often a quiet SSE stream (activity.events with no calls) gets tRPC's `ping` event. Proxies cut a response
 * that sends nothing for their idle timeout (HAProxy's `timeout server`/`timeout client`, nginx's
 * proxy_read_timeout: 60 s by default); a ping well within it keeps the stream open. tRPC's clients ignore pings.
 */
export const SSE_PING_INTERVAL_MS = 15_000;

const t = initTRPC.context<Context>().create({
  // Never put stack traces in responses, whatever NODE_ENV says.
  isDev: false,
  sse: { ping: { enabled: true, intervalMs: SSE_PING_INTERVAL_MS } },
  errorFormatter({ shape, error }) {
    const zodError = error.cause instanceof InputValidationError ? error.cause.zodError : null;
    let message = shape.message;
    if (error.cause instanceof SyntaxError) message = `The request is not valid JSON: ${error.cause.message}.`;
    else if (error.code === 'INTERNAL_SERVER_ERROR') message = 'Internal server error; the server log has the details under the x-request-id of this response.';
    else if (message === error.code) message = FALLBACK_MESSAGES[error.code] ?? message;
    const flat = zodError ? z.flattenError(zodError) : null;
    return {
      ...shape,
      message,
      data: {
        ...shape.data,
        fieldErrors: flat?.fieldErrors ?? null,
        formErrors: flat?.formErrors ?? null,
      },
    };
  },
});

export const createTRPCRouter = t.router;
export const createCallerFactory = t.createCallerFactory;

function requireToken(ctx: Context): void {
  if (!ctx.authorized) throw new TRPCError({ code: 'UNAUTHORIZED', message: FALLBACK_MESSAGES.UNAUTHORIZED ?? 'UNAUTHORIZED' });
}

/** The checks every API procedure makes first: the bearer token (before the input is even parsed), then the database. */
function admitCaller(ctx: Context): void {
  requireToken(ctx);
  if (!ctx.isDatabaseReady()) {
    throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'The database is not reachable right now; the server keeps checking and serves again as soon as it answers. Retry shortly.' });
  }
}

/** Needs the token only: what must answer while the database is away (the server's own gauges). */
export const authorizedProcedure = t.procedure.use(({ ctx, next }) => {
  requireToken(ctx);
  return next();
});

/** Every API procedure that does not go through `callProcedure` (subscriptions, fault settings). */
export const protectedProcedure = t.procedure.use(({ ctx, next }) => {
  admitCaller(ctx);
  return next();
});

/** openCallScope, with its refusals (an id already in flight, a connection's calls all taken) in tRPC's terms. */
function openScope(...args: Parameters<typeof openCallScope>): CallScope {
  try {
    return openCallScope(...args);
  } catch (error) {
    throw edgeError(error);
  }
}

async function injectFaults(ctx: Context, path: string, scope: CallScope): Promise<void> {
  const fault = ctx.runtime.faults.get(path);
  if (!fault) return;
  // Spent inside Postgres, so the injected latency is cancellable like real work.
  if (fault.latencyMs > 0) await ctx.runtime.db.bind(scope).sql`select pg_sleep(${fault.latencyMs / 1000})`;
  if (ctx.runtime.faults.shouldFail(fault)) {
    throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: `Injected fault on ${path} (lab.setFaults); safe to retry.` });
  }
}

/**
 * Procedures that do work: admitted by the load shedder, run in a call scope (cancellation and deadline
 * reach Postgres), with injected faults applied, and every hop recorded in the activity log.
 */
// One middleware, not protectedProcedure.use(…): each tRPC middleware level is one more suspended async
// frame per call in flight (about 0.5 KB each, with 10,000 calls waiting for a connection).
export const callProcedure = t.procedure.use(async ({ ctx, path, type, signal, batchIndex, next }) => {
  admitCaller(ctx);
  const scope = openScope(ctx, path, signal, batchIndex);
  const started = performance.now();
  let code = 'OK';
  try {
    let permit;
    try {
      // An abort before this point is seen by throwIfAborted below, the permit released by its finally.
      permit = ctx.runtime.admission.tryEnter() ?? await ctx.runtime.admission.enter(scope.signal, (position) => { scope.emit({ type: 'queued', position }); }, ctx.clientKey);
    } catch (error) {
      if (error instanceof OverloadedError) throw edgeError(error);
      throw scope.stoppedError(error);
    }
    try {
      // Handed a slot, then stopped before this line ran (an abort from a microtask): never start it.
      scope.signal.throwIfAborted();
      scope.emit({ type: 'started' });
      if (ctx.runtime.faults.get(path)) await injectFaults(ctx, path, scope);
      const result = await next({ ctx: { call: scope } });
      // A call whose signal fired never reports success (its client was told it stopped, or will be) —
      // except a write that was saved all the same: saying "stopped" would invite a retry that writes twice.
      if (scope.signal.aborted && !(result.ok && type === 'mutation')) throw scope.stoppedError(result.ok ? undefined : result.error);
      if (!result.ok) {
        // A procedure's own error arrives wrapped by tRPC (INTERNAL_SERVER_ERROR): give it its code here.
        const mapped = toTRPCError(result.error);
        if (mapped) throw mapped;
        code = result.error.code;
      }
      return result;
    } catch (error) {
      // Whatever failed after the signal fired (a cancelled statement, an aborted worker) failed because of it.
      if (scope.signal.aborted) throw scope.stoppedError(error);
      throw edgeError(error);
    } finally {
      permit.release();
    }
  } catch (error) {
    code = error instanceof TRPCError ? error.code : 'INTERNAL_SERVER_ERROR';
    throw error;
  } finally {
    const ms = performance.now() - started;
    scope.emit({ type: 'settled', code, ms: Math.round(ms * 10) / 10 });
    ctx.runtime.stats.recordCall(ms);
    scope.dispose();
  }
});

/**
 * The call-scope lifecycle of `callProcedure`, for a subscription: the stream is one call (its id, hops,
 * registry entry, deadline, cancel by id), `body` gets the scope to bind its statements to, and it settles
 * once, however it ends.
 */
export async function* callScopedStream<T>(
  ctx: Context,
  path: string,
  signal: AbortSignal | undefined,
  callId: string | undefined,
  body: (scope: CallScope) => AsyncIterator<T>,
): AsyncGenerator<T, void, undefined> {
  // A stream that comes back under its id (a reconnect that resumes from lastEventId) replaces the one the
  // server still holds — whose connection may look alive for a while yet — instead of a CONFLICT.
  if (callId !== undefined) ctx.runtime.calls.supersede(ctx.owner, callId);
  const scope = openScope(ctx, path, signal, 0, callId);
  const started = performance.now();
  let code = 'OK';
  let steps: AsyncIterator<T> | undefined;
  try {
    scope.emit({ type: 'started' });
    steps = body(scope);
    for (;;) {
      const current = steps;
      const step = await current.next();
      if (step.done) break;
      yield step.value;
    }
    // A body that ends quietly when its signal fires has not finished: say how it was stopped (below).
    scope.signal.throwIfAborted();
  } catch (error) {
    if (!scope.signal.aborted) {
      const mapped = edgeError(error);
      code = mapped instanceof TRPCError ? mapped.code : 'INTERNAL_SERVER_ERROR';
      throw mapped;
    }
    const stopped = scope.stoppedError(error);
    code = stopped.code;
    // Stopped by a cancel, its deadline, shutdown or the database: the client is still there and must not
    // take a partial stream for a whole one. (A client that went away is told nothing: nobody listens.)
    if (abortCause(scope.signal.reason) !== 'client-closed') throw stopped;
  } finally {
    // The consumer stopped (unsubscribe, closed stream): end the body too.
    const current = steps;
    if (current?.return) await current.return().catch(() => undefined);
    if (scope.signal.aborted && code === 'OK') code = scope.stoppedError().code;
    scope.emit({ type: 'settled', code, ms: Math.round(performance.now() - started) });
    scope.dispose();
  }
}

export type { CallScope };
