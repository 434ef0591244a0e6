/**
 * Logs must not carry credentials or personal data: a request is logged by its path (the procedure),
 * never its query string (tokens, tickets, inputs such as emails); an error by its kind and code,
 * never the values that went with it (a failed query's parameters, a constraint's "Key (email)=(…)").
 */
import pino, { type DestinationStream, type Logger } from 'pino';

/** The path of a request URL: no query string, no fragment, at most 256 characters. */
export function logPath(url: string | undefined): string {
  const raw = url ?? '/';
  const end = raw.search(/[?#]/);
  const path = end === -1 ? raw : raw.slice(0, end);
  return path.length > 256 ? `${path.slice(0, 256)}…` : path;
}

/** Fields of driver errors safe to log: no values (`detail`, `where`, `parameters`… are left out). */
const SAFE_FIELDS = ['code', 'severity', 'routine', 'constraint_name', 'table_name', 'column_name', 'errno', 'syscall'] as const;

/** Quoted values in a database message ('invalid input syntax for type integer: "ada@example.com"'). */
function redactQuoted(text: string): string {
  return text.replace(/"(?:[^"\\]|\\.)*"/g, '"[redacted]"');
}

interface LoggedError {
  type: string;
  message: string;
  stack?: string;
  cause?: LoggedError | string;
  [field: string]: unknown;
}

/** pino's `err` serializer, without the values an error may carry; follows `cause` a few levels. */
export function redactError(error: unknown, depth = 0): LoggedError | string {
  if (!(error instanceof Error)) return typeof error === 'string' ? redactQuoted(error) : `[${typeof error}]`;
  const { query, params } = error as Error & { query?: unknown; params?: unknown };
  // drizzle's "Failed query: <sql>\nparams: <values>": the SQL has placeholders only, the params are values.
  const message = typeof query === 'string' && params !== undefined ? `Failed query: ${query} (params redacted)` : redactQuoted(error.message);
  const out: LoggedError = { type: error.name, message };
  if (error.stack) {
    const frames = error.stack.indexOf('\n    at ');
    out.stack = frames === -1 ? message : `${error.name}: ${message}${error.stack.slice(frames)}`;
  }
  for (const field of SAFE_FIELDS) {
    const value = (error as unknown as Record<string, unknown>)[field];
    if (typeof value === 'string' || typeof value === 'number') out[field] = value;
  }
  if (error.cause !== undefined && depth < 4) out.cause = redactError(error.cause, depth + 1);
  return out;
}

/** The server's logger: pino with the redacting serializers, and known credential fields censored anywhere. */
export function createLogger(options: { level: string }, destination?: DestinationStream): Logger {
  return pino(
    {
      level: options.level,
      serializers: { err: redactError, error: redactError },
      redact: { paths: ['token', 'ticket', 'authorization', 'connectionParams', 'input', '*.token', '*.ticket', '*.authorization', '*.connectionParams', '*.input'], censor: '[redacted]' },
    },
    destination,
  );
}
