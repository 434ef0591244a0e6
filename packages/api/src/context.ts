import type { Db } from '@asyncscope/db';
import { UsersService } from './services/users';

/** What procedures log through: pino's shape, so the server can pass a pino child logger. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface Services {
  users: UsersService;
}

/** Built once per process: the database and the services over it. */
export function createServices(db: Db): Services {
  return { users: new UsersService(db.db) };
}

export interface InnerContextOptions {
  services: Services;
  /** Whether the caller presented the right bearer token (the HTTP layer decides; tests pass true). */
  authorized: boolean;
  requestId?: string;
  log?: Logger;
  /** False while the database is unreachable; procedures then answer SERVICE_UNAVAILABLE. */
  isDatabaseReady?: () => boolean;
}

/**
 * The context every procedure sees. "Inner" because it does not depend on HTTP: tests build it directly
 * and call procedures through `createCaller`.
 */
export function createInnerContext(opts: InnerContextOptions) {
  return {
    services: opts.services,
    authorized: opts.authorized,
    requestId: opts.requestId ?? 'internal',
    log: opts.log ?? silentLogger,
    isDatabaseReady: opts.isDatabaseReady ?? (() => true),
  };
}

export type Context = ReturnType<typeof createInnerContext>;
