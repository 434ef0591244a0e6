/**
 * What a database error means for the caller: one place that tells "the database (or the connection to
 * it) went away" from a statement that failed on its own merits.
 */

/** Codes postgres.js and Node give a connection that could not be opened or was lost. */
const CONNECTION_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a server that is going away, not yet up, or full: class 08 (connection exception),
 * 57P01 admin_shutdown (pg_terminate_backend, a fast stop), 57P02 crash_shutdown, 57P03
 * cannot_connect_now (starting up), 53300 too_many_connections.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/** SQLSTATEs callers look for: a value already taken (the services' conflict), a statement cancelled. */
export const PG_UNIQUE_VIOLATION = '23505';
export const PG_QUERY_CANCELED = '57014';

function codesOf(error: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

/** The SQLSTATE of a failed statement (drizzle's wrapping included), or null when it did not come from PostgreSQL. */
export function sqlState(error: unknown): string | null {
  return codesOf(error).find((code) => /^[0-9A-Z]{5}$/.test(code)) ?? null;
}

/** The reason a call stops when the database goes away under it (the health check's down signal). */
export class DatabaseUnavailableError extends Error {
  override readonly name = 'DatabaseUnavailableError';
  constructor(readonly detail: string) {
    super('The database is unreachable.');
  }
}

/** True when the error says the database was unreachable or the connection was lost (drizzle's wrapping included). */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof DatabaseUnavailableError) return true;
  }
  return codesOf(error).some((code) => CONNECTION_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code));
}

/**
 * A transaction whose connection was lost after its body had finished, while COMMIT was on its way: the
 * write may or may not have been saved. The caller's idempotency key is how to find out.
 */
export class CommitOutcomeUnknownError extends Error {
  override readonly name = 'CommitOutcomeUnknownError';
  constructor(cause: unknown) {
    super('The connection to the database was lost while the transaction was committing: it may or may not have been saved.', { cause });
  }
}
