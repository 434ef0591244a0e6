import type { CallMeta } from './calls/call-meta';
import type { Runtime } from './runtime';

/** What procedures log through: pino's shape, so the server can pass a pino child logger. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface InnerContextOptions {
  runtime: Runtime;
  /** Whether the caller presented the right bearer token (the HTTP layer decides; tests pass true). */
  authorized: boolean;
  /**
   * Which credential the caller presented (see `Credentials`): call ids are unique per owner, and a caller
   * may cancel only its own calls. Tests and internal callers share ''.
   */
  owner?: string | undefined;
  /** The call's id: client-supplied (x-request-id) or generated; it names the call in events and logs. */
  callId?: string;
  /** Ids of the calls of a batched request, by batch index (x-call-ids). */
  batchCallIds?: readonly string[] | undefined;
  /** Time budget the client has left for this call, in ms (x-deadline-ms). */
  clientBudgetMs?: number | undefined;
  log?: Logger;
  /** Who is calling, for fair admission (calls of different clients take turns); the HTTP layer uses the remote address. */
  clientKey?: string | undefined;
  /** False while the database is unreachable; procedures then answer SERVICE_UNAVAILABLE. */
  isDatabaseReady?: () => boolean;
  /** One call's own id, budget, signal and slots, where one context would otherwise serve several calls (a WebSocket's). */
  callMeta?: CallMeta | undefined;
  /**
   * The controller of the request's signal, when the request carries this one call and nothing else aborts
   * it (the server's fast path): the call's scope aborts it at its deadline instead of linking a controller
   * of its own to it, one AbortSignal less per call.
   */
  callController?: AbortController | undefined;
}

/**
 * The context every procedure sees. "Inner" because it does not depend on HTTP: tests build it directly
 * and call procedures through `createCaller`.
 */
export function createInnerContext(opts: InnerContextOptions) {
  return {
    runtime: opts.runtime,
    authorized: opts.authorized,
    owner: opts.owner ?? '',
    // Unset for internal callers (tests, createCaller): each of their calls gets a fresh id.
    callId: opts.callId,
    clientBudgetMs: opts.clientBudgetMs,
    batchCallIds: opts.batchCallIds,
    log: opts.log ?? silentLogger,
    clientKey: opts.clientKey ?? '',
    isDatabaseReady: opts.isDatabaseReady ?? (() => true),
    callMeta: opts.callMeta,
    callController: opts.callController,
  };
}

export type Context = ReturnType<typeof createInnerContext>;
