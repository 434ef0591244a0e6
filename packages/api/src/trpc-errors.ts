/**
 * The one mapping from what went wrong to what the client is told: domain errors (services/errors.ts), a
 * database that went away, and the ways a call is stopped become a TRPCError with its code and a message a
 * person understands. Everything under the procedures throws its own errors; only the procedure layer
 * (trpc.ts, call-scope.ts, the routers) speaks tRPC.
 */
import { CommitOutcomeUnknownError, isDatabaseUnavailable } from '@asyncscope/db';
import { TRPCError, type TRPC_ERROR_CODE_KEY } from '@trpc/server';
import type { AbortCause } from './activity/log';
import { DomainError, type DomainErrorKind } from './services/errors';

/** The code of each kind of domain error. */
export const DOMAIN_ERROR_CODES = {
  'not-found': 'NOT_FOUND',
  conflict: 'CONFLICT',
  overloaded: 'TOO_MANY_REQUESTS',
} as const satisfies Record<DomainErrorKind, TRPC_ERROR_CODE_KEY>;

const DATABASE_GONE = 'The database became unreachable;';
const RETRY_HINT = 'Safe to retry: a write that may have been saved is answered once, from its idempotencyKey.';

/** The chain of causes, outermost first (a procedure's error arrives wrapped in tRPC's, drizzle's, ours). */
function* causes(error: unknown): Generator<Error> {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) yield e;
}

/**
 * The TRPCError the client gets for `error`, found anywhere in its chain of causes: a domain error's code
 * and message; SERVICE_UNAVAILABLE, retryable at once, for database work that failed because the database
 * or the connection went away (not because of the call), saying so when a lost COMMIT leaves a write's
 * outcome unknown. Undefined for anything else, which stays as it is (a TRPCError, or an internal error).
 */
export function toTRPCError(error: unknown): TRPCError | undefined {
  for (const e of causes(error)) {
    if (e instanceof DomainError) return new TRPCError({ code: DOMAIN_ERROR_CODES[e.kind], message: e.message, cause: e });
    if (e instanceof CommitOutcomeUnknownError) {
      return new TRPCError({
        code: 'SERVICE_UNAVAILABLE',
        message: 'The connection to the database was lost while the write was committing: it may or may not have been saved. Retry with the same idempotencyKey to find out.',
        cause: e,
      });
    }
  }
  if (!isDatabaseUnavailable(error)) return undefined;
  return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: `The connection to the database was lost; the call did not finish. ${RETRY_HINT}`, cause: error });
}

/** `error` as the client gets it: mapped by toTRPCError, or as it is. */
export function edgeError(error: unknown): unknown {
  return toTRPCError(error) ?? error;
}

/** The TRPCError for a call whose signal fired, by why it fired. */
export function abortError(cause: AbortCause, budgetMs: number, original?: unknown): TRPCError {
  switch (cause) {
    case 'timeout':
      return new TRPCError({ code: 'TIMEOUT', message: `The call ran out of its ${budgetMs} ms budget and was stopped.`, cause: original });
    case 'shutdown':
      return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'The server is shutting down; the call was stopped. Retry.', cause: original });
    case 'client-closed':
      return new TRPCError({ code: 'CLIENT_CLOSED_REQUEST', message: 'The client went away; the call was stopped.', cause: original });
    case 'cancelled':
      return new TRPCError({ code: 'CLIENT_CLOSED_REQUEST', message: 'The call was cancelled by its caller (calls.cancel); it was stopped.', cause: original });
    case 'database':
      return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: `${DATABASE_GONE} the call was stopped. ${RETRY_HINT}`, cause: original });
  }
}
