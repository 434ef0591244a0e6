/**
 * Logs must not carry credentials or personal data: a request is logged by its path (the procedure),
 * never its query string (tokens, tickets, inputs such as emails); an error by its kind and code,
 * never the values that went with it (a failed query's parameters, a constraint's "Key (email)=(…)").
 */
import pino, { type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger } from 'pino';

/** The path of a request URL: no query string, no fragment, at most 256 characters. */
export function logPath(url: string | undefined): string {
  const raw = url ?? '/';
  const end = raw.search(/[?#]/);
  const path = end === -1 ? raw : raw.slice(0, end);
  return path.length > 256 ? `${path.slice(0, 256)}…` : path;
}

/** Fields of driver errors safe to log: no values (`detail`, `where`, `parameters`… are left out). */
const SAFE_FIELDS = ['code', 'severity', 'routine', 'constraint_name', 'table_name', 'column_name', 'errno', 'syscall'] as const;

/** What a censored value is logged as. */
export const CENSOR = '[redacted]';

/** Quoted values in a database message ('invalid input syntax for type integer: "ada@example.com"'). */
function redactQuoted(text: string): string {
  return text.replace(/"(?:[^"\\]|\\.)*"/g, `"${CENSOR}"`);
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

/** Fields whose values are credentials or personal data wherever they appear in a log call's object. */
export const CENSORED_FIELDS: ReadonlySet<string> = new Set(['token', 'ticket', 'authorization', 'connectionParams', 'input']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * A log call's fields with every `CENSORED_FIELDS` value replaced by `CENSOR`, at the top level and one level down
 * (what pino's `redact` did with `field` and `*.field`). Copy on write: a line with nothing to censor (nearly all)
 * allocates nothing, and the caller's objects are never changed. Only plain objects are walked: errors and other
 * instances are their serializers' business (`redactError`).
 */
export function censorCredentials(fields: Record<string, unknown>, depth = 1): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    let next = value;
    if (CENSORED_FIELDS.has(key)) next = value === undefined ? value : CENSOR;
    else if (depth > 0 && isPlainObject(value)) next = censorCredentials(value, depth - 1);
    if (next !== value) (copy ??= { ...fields })[key] = next;
  }
  return copy ?? fields;
}

/**
 * The server's logger: pino with the redacting serializers, and known credential fields censored.
 *
 * Not pino's own `redact` option: since pino replaced fast-redact, which compiled its paths into code
 * (https://github.com/pinojs/pino/pull/2298), pino 10.4 does it with @pinojs/redact 0.4, which parses its paths again and
 * clones the object for each path on every line (6 µs and 17 KB allocated per request line, 22 % of the
 * bytes a `users.byId` call allocated; README, *What the profiles taught*). A `log` formatter does the same in one
 * walk that copies only when it censors. pino gives a child's bindings no formatter (it resets
 * `formatters.bindings` for children), so `child` is wrapped to censor them; children inherit the wrapper.
 * `log-redaction.test.ts` checks both, and that pino still calls the formatter the way this relies on.
 */
export function createLogger(options: { level: string }, destination?: DestinationStream): Logger {
  const logger = pino(
    {
      level: options.level,
      serializers: { err: redactError, error: redactError },
      formatters: { log: (fields) => censorCredentials(fields) },
    },
    destination,
  );
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the logger (or child) as `this`
  const pinoChild = (Object.getPrototypeOf(logger) as Logger).child;
  function child(this: Logger, bindings: Bindings, childOptions?: ChildLoggerOptions): Logger {
    return Reflect.apply(pinoChild, this, [censorCredentials(bindings), childOptions]);
  }
  Object.defineProperty(logger, 'child', { value: child, writable: true, configurable: true });
  return logger;
}
