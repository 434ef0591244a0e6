/** What the CLI says on failure: one line, and an exit code a script can act on. */
import { apiErrorCode, ConnectionLostError, isApiError } from '@asyncscope/client';
import { CommanderError } from 'commander';
import { UsageError } from './config';

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  auth: 3,
  unreachable: 4,
  partial: 5,
  /** 128 + SIGINT, as shells report a program stopped by Ctrl+C. */
  interrupted: 130,
} as const;

/** Some calls of a run failed: the run's summary was printed, the exit code says so. */
export class PartialFailure extends Error {
  override readonly name = 'PartialFailure';
}

/** Stopped by Ctrl+C; what was stopped has been printed. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

/** No answer came at all: the fetch failed (refused, DNS, reset) or the socket could not stay open. */
export function isUnreachable(error: unknown): boolean {
  if (error instanceof ConnectionLostError) return true;
  if (!isApiError(error)) return false;
  if (apiErrorCode(error) !== undefined) return false;
  const cause: unknown = error.cause;
  return cause instanceof TypeError || cause instanceof ConnectionLostError || (cause instanceof Error && cause.name === 'TRPCWebSocketClosedError');
}

/** The exit code and the one line to print for an error that ended the command. */
export function describeError(error: unknown, baseUrl: string | undefined): { exitCode: number; message: string } {
  if (error instanceof CommanderError) return { exitCode: EXIT.usage, message: error.message };
  if (error instanceof UsageError) return { exitCode: EXIT.usage, message: `error: ${error.message}` };
  if (error instanceof PartialFailure) return { exitCode: EXIT.partial, message: `error: ${error.message}` };
  if (error instanceof Interrupted) return { exitCode: EXIT.interrupted, message: error.message };
  const code = apiErrorCode(error);
  if (code === 'UNAUTHORIZED') return { exitCode: EXIT.auth, message: 'error: the server refused the API token (UNAUTHORIZED): check ASYNCSCOPE_TOKEN or --token' };
  if (code === 'FORBIDDEN') return { exitCode: EXIT.auth, message: `error: FORBIDDEN: ${oneLine(error)}` };
  if (isUnreachable(error)) return { exitCode: EXIT.unreachable, message: `error: cannot reach the server at ${baseUrl ?? 'its URL'} (${reason(error)}): is it running? (set ASYNCSCOPE_URL or --url)` };
  // The server refused the input: a usage error, with its field messages.
  if (code === 'BAD_REQUEST') return { exitCode: EXIT.usage, message: `error: BAD_REQUEST: ${oneLine(error)}` };
  if (code) return { exitCode: EXIT.failure, message: `error: ${code}: ${oneLine(error)}` };
  return { exitCode: EXIT.failure, message: `error: ${oneLine(error)}` };
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

/** The lowest cause's message: "connect ECONNREFUSED 127.0.0.1:9" rather than "fetch failed". */
function reason(error: unknown): string {
  let current: unknown = error;
  let last = oneLine(error);
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    last = typeof code === 'string' && !current.message.includes(code) ? `${code}: ${oneLine(current)}` : oneLine(current);
    current = current.cause;
  }
  return last;
}
