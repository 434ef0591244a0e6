/**
 * The only place that reads the environment. Every value is validated at start, and a bad one is
 * named in the error, with what was expected.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const intIn = (name: string, min: number, max: number) =>
  z.coerce
    .number({ error: `${name} must be a whole number` })
    .int({ error: `${name} must be a whole number` })
    .min(min, { error: `${name} must be between ${min} and ${max}` })
    .max(max, { error: `${name} must be between ${min} and ${max}` });

const envSchema = z.object({
  PORT: intIn('PORT', 0, 65535).default(3000),
  HOST: z.string().min(1, { error: 'HOST must not be empty' }).default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .refine((v) => /^postgres(ql)?:\/\//.test(v) && URL.canParse(v), { error: 'DATABASE_URL must be a postgres:// URL' })
    .optional(),
  DATA_DIR: z.string().min(1).default(resolve(REPO_ROOT, '.data')),
  API_TOKEN: z.string().min(16, { error: 'API_TOKEN must be at least 16 characters' }).optional(),
  /** More tokens, comma-separated, each its own caller: its call ids and cancels are its own. */
  EXTRA_API_TOKENS: z
    .string()
    .transform((v) => v.split(',').map((t) => t.trim()).filter((t) => t.length > 0))
    .refine((tokens) => tokens.every((t) => t.length >= 16), { error: 'EXTRA_API_TOKENS must be comma-separated tokens of at least 16 characters each' })
    .default([]),
  DB_POOL_MAX: intIn('DB_POOL_MAX', 1, 500).default(20),
  /** Connections kept open; unset: DB_POOL_MAX (a fixed-size pool, as asyncpg's and HikariCP's defaults are). */
  DB_POOL_MIN: intIn('DB_POOL_MIN', 0, 500).optional(),
  DB_STATEMENT_TIMEOUT_MS: intIn('DB_STATEMENT_TIMEOUT_MS', 0, 3_600_000).default(30_000),
  DB_APPLICATION_NAME: z.string().min(1).max(63).default('asyncscope'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent' }).default('info'),
  MAX_BODY_BYTES: intIn('MAX_BODY_BYTES', 1024, 100 * 1024 * 1024).default(100 * 1024),
  SHUTDOWN_TIMEOUT_MS: intIn('SHUTDOWN_TIMEOUT_MS', 0, 600_000).default(10_000),
  MAX_IN_FLIGHT: intIn('MAX_IN_FLIGHT', 1, 100_000).default(100),
  MAX_QUEUE: intIn('MAX_QUEUE', 0, 1_000_000).default(1000),
  MAX_QUEUE_PER_CLIENT: intIn('MAX_QUEUE_PER_CLIENT', 0, 1_000_000).default(250),
  BODY_TIMEOUT_MS: intIn('BODY_TIMEOUT_MS', 100, 600_000).default(10_000),
  MAX_BATCH_SIZE: intIn('MAX_BATCH_SIZE', 1, 10_000).default(50),
  WS_MAX_CALLS_PER_SOCKET: intIn('WS_MAX_CALLS_PER_SOCKET', 1, 100_000).default(1000),
  WS_MAX_SOCKETS_PER_TOKEN: intIn('WS_MAX_SOCKETS_PER_TOKEN', 1, 100_000).default(64),
  LAB: z.enum(['on', 'off'], { error: 'LAB must be on or off' }).default('on'),
  /** off: every tRPC request through tRPC's own adapter, none through fast-trpc.ts (to rule it out). */
  FAST_PATH: z.enum(['on', 'off'], { error: 'FAST_PATH must be on or off' }).default('on'),
  DASHBOARD_DIR: z.string().min(1).default(resolve(REPO_ROOT, 'apps/dashboard/dist')),
  CALL_TIMEOUT_MS: intIn('CALL_TIMEOUT_MS', 1, 3_600_000).default(30_000),
  // PEM files; with both, the server speaks HTTPS (HTTP/2 and HTTP/1.1). Relative paths are from the checkout.
  TLS_CERT: z.string().min(1).optional(),
  TLS_KEY: z.string().min(1).optional(),
  /** The broker (NATS JetStream) the instances of a cluster share events through; unset: this process's own log. */
  EVENTS_URL: z
    .string()
    .refine((v) => /^(nats|tls):\/\//.test(v) && URL.canParse(v), { error: 'EVENTS_URL must be a nats:// URL (e.g. nats://127.0.0.1:4222)' })
    .optional(),
  EVENTS_STREAM: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'EVENTS_STREAM must be 1 to 64 letters, digits, _ or -' }).default('ASYNCSCOPE_HOPS'),
  EVENTS_MAX_EVENTS: intIn('EVENTS_MAX_EVENTS', 1_000, 100_000_000).default(100_000),
  EVENTS_MAX_AGE_S: intIn('EVENTS_MAX_AGE_S', 10, 30 * 24 * 3600).default(3600),
  /** Names this instance in every hop and in the server panel; unique per instance of a cluster. */
  INSTANCE_ID: z
    .string()
    .regex(/^[\w.:@-]{1,128}$/, { error: 'INSTANCE_ID must be 1 to 128 letters, digits or . _ : @ -' })
    .default(() => `${hostname()}:${process.pid}`),
  /** 1: one process. N>1: node:cluster, N worker processes serving one port (needs EVENTS_URL). */
  WORKERS: intIn('WORKERS', 1, 64).default(1),
});

export type Env = Omit<z.infer<typeof envSchema>, 'DB_POOL_MIN'> & { DB_POOL_MIN: number };

export class EnvError extends Error {
  override readonly name = 'EnvError';
}

/** Parses the given environment (process.env by default); empty strings count as unset. */
export function readEnv(source: Record<string, string | undefined> = process.env): Env {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const result = envSchema.safeParse(cleaned);
  if (!result.success) {
    // Secrets are named, never echoed: this message goes to the terminal and to logs.
    const shown = (key: string) => (/(^|_)API_TOKENS?$|^EVENTS_URL$/.test(key) ? '(hidden)' : JSON.stringify(cleaned[key] ?? ''));
    const lines = result.error.issues.map((i) => `  ${i.path.join('.')}=${shown(String(i.path[0]))}: ${i.message}`);
    throw new EnvError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const env = result.data;
  if ((env.TLS_CERT === undefined) !== (env.TLS_KEY === undefined)) {
    const [set, unset] = env.TLS_CERT === undefined ? ['TLS_KEY', 'TLS_CERT'] : ['TLS_CERT', 'TLS_KEY'];
    throw new EnvError(`Invalid configuration:\n  ${set} is set but ${unset} is not: set both (PEM files) to serve HTTPS, or neither for plain HTTP`);
  }
  // Workers that each kept their own in-process event log would each show only their own calls' events.
  if (env.WORKERS > 1 && env.EVENTS_URL === undefined) {
    throw new EnvError(`Invalid configuration:\n  WORKERS=${env.WORKERS} needs EVENTS_URL (a NATS JetStream server, e.g. nats://127.0.0.1:4222): without a broker each worker would show only its own calls' events and cancels could not reach the worker that runs the call. Set EVENTS_URL, or WORKERS=1`);
  }
  const poolMin = env.DB_POOL_MIN ?? env.DB_POOL_MAX;
  if (poolMin > env.DB_POOL_MAX) {
    throw new EnvError(`Invalid configuration:\n  DB_POOL_MIN=${poolMin} is more than DB_POOL_MAX=${env.DB_POOL_MAX}: the pool keeps open at most the connections it may have. Lower DB_POOL_MIN, or raise DB_POOL_MAX`);
  }
  // Relative paths are from the checkout, like the defaults: `pnpm start` and `pnpm dev` run the server in
  // apps/server, a folder the person never chose.
  const absolute = (path: string) => (isAbsolute(path) ? path : resolve(REPO_ROOT, path));
  return {
    ...env,
    DB_POOL_MIN: poolMin,
    DATA_DIR: absolute(env.DATA_DIR),
    DASHBOARD_DIR: absolute(env.DASHBOARD_DIR),
    TLS_CERT: env.TLS_CERT === undefined ? undefined : absolute(env.TLS_CERT),
    TLS_KEY: env.TLS_KEY === undefined ? undefined : absolute(env.TLS_KEY),
  };
}

/**
 * The certificate and key TLS_CERT / TLS_KEY name, read now so that a missing file, an unreadable one or a
 * key that does not belong to the certificate stops the start with its name, not the first TLS handshake.
 */
export function readTls(env: Pick<Env, 'TLS_CERT' | 'TLS_KEY'>): { cert: Buffer; key: Buffer } | undefined {
  if (env.TLS_CERT === undefined || env.TLS_KEY === undefined) return undefined;
  const read = (name: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new EnvError(`Invalid configuration:\n  ${name}=${JSON.stringify(path)}: cannot read it (${reason})`);
    }
  };
  const cert = read('TLS_CERT', env.TLS_CERT);
  const key = read('TLS_KEY', env.TLS_KEY);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new EnvError(`Invalid configuration:\n  TLS_CERT=${JSON.stringify(env.TLS_CERT)}, TLS_KEY=${JSON.stringify(env.TLS_KEY)}: not a usable PEM certificate and its private key (${reason})`);
  }
  return { cert, key };
}
