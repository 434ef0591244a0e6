/**
 * The cancellation scope of one call. Its signal fires when the client goes away (the request's signal),
 * when the call's deadline passes (the smaller of the client's budget and the procedure's limit), or when
 * the server shuts down. Every SQL statement of the call is bound to that signal (the scope is the QueryScope
 * its services bind the database to: `runtime.db.bind(scope)`), so the work stops everywhere: statement
 * cancelled in Postgres, transaction rolled back, connection returned.
 */
import { deadline, TimeoutError, type SignalScope } from '@asyncscope/concurrency';
import { DatabaseUnavailableError, type DbEvent, type QueryScope } from '@asyncscope/db';
import { batchCallId, newCallId } from '@asyncscope/contract';
import type { TRPCError } from '@trpc/server';
import type { AbortCause, CallHop } from './activity/log';
import type { CallSlots } from './calls/call-meta';
import { CancelledError, DuplicateCallIdError, type CancellableCall } from './calls/registry';
import type { Context } from './context';
import { OverloadedError } from './services/errors';
import { abortError } from './trpc-errors';

export class ShutdownError extends Error {
  override readonly name = 'ShutdownError';
  constructor() {
    super('The server is shutting down.');
  }
}

export function abortCause(reason: unknown): AbortCause {
  if (reason instanceof TimeoutError) return 'timeout';
  if (reason instanceof ShutdownError) return 'shutdown';
  if (reason instanceof DatabaseUnavailableError) return 'database';
  if (reason instanceof CancelledError) return 'cancelled';
  return 'client-closed';
}

function dbHop(event: DbEvent): CallHop | undefined {
  switch (event.type) {
    case 'statement.queued':
      return undefined; // every call has them; 'statement.started' and the cancel hops are what tell a story
    case 'statement.started':
    case 'statement.ended':
    case 'cancel.sent':
      return event;
    case 'transaction.committed':
      return { type: 'committed', ms: event.ms };
    case 'transaction.rolled_back':
      return { type: 'rolled_back', sqlstate: event.sqlstate };
  }
}

/** A call's scope; as a QueryScope, what its statements are bound to (`runtime.db.bind(scope)`, the services). */
export interface CallScope extends QueryScope {
  callId: string;
  signal: AbortSignal;
  deadlineAt: number;
  budgetMs: number;
  emit(hop: CallHop): void;
  /** The typed error for the way this call was stopped (its signal must have fired). */
  stoppedError(original?: unknown): TRPCError;
  dispose(): void;
}

/**
 * A server holds one of these per call in flight (10,000 in the burst benchmark), so it is one object
 * with prototype methods: one AbortController (the request and the deadline linked into it by `deadline`;
 * shutdown and the database going away through the call registry), itself the query scope its statements are
 * bound to, and one closure, the signal's listener (a function, not this object: see LinkedScope in
 * packages/concurrency for what an object listener costs on Node). It must be registered (`register`) in
 * the same turn as it is made: from then on the registry stops it.
 */
class OpenCallScope implements CallScope, QueryScope, CancellableCall {
  readonly signal: AbortSignal;
  readonly deadlineAt: number;
  readonly #runtime: Context['runtime'];
  /** The caller's registry key: published with each hop so a cancel elsewhere finds this call by (owner, id). */
  readonly #owner: string;
  readonly #scope: SignalScope;
  #settle: (() => void) | undefined;
  #slots: CallSlots | undefined;
  /** The signal fired: its hop. (A class field, so a young closure; one assigned later would be pretenured.) */
  readonly #onAbort = (): void => { this.emit({ type: 'signal.fired', reason: abortCause(this.signal.reason) }); };

  constructor(
    runtime: Context['runtime'],
    readonly callId: string,
    readonly path: string,
    readonly budgetMs: number,
    requestSignal: AbortSignal | undefined,
    owner: string,
    requestController?: AbortController,
  ) {
    this.#runtime = runtime;
    this.#owner = owner;
    // Linked to the request only (or the request's controller itself, when it stands for this call alone):
    // shutdown and the database going away reach running calls through the registry (Runtime.calls.abortAll),
    // which costs a call no listener on those process-wide signals.
    this.#scope = requestController ? deadline(budgetMs, { controller: requestController }) : deadline(budgetMs, { signal: requestSignal });
    this.signal = this.#scope.signal;
    if (!this.signal.aborted) {
      const stopped = runtime.shutdownSignal.aborted ? runtime.shutdownSignal : runtime.watchDatabaseDown();
      if (stopped.aborted) this.#scope.abort(stopped.reason);
    }
    this.deadlineAt = Date.now() + budgetMs;
    this.emit({ type: 'received', budgetMs });
    if (this.signal.aborted) this.#onAbort();
    else this.signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Registers the call under its caller and id, so calls.cancel reaches it; `slots` were acquired for it. */
  register(owner: string, slots: CallSlots | undefined): void {
    this.#slots = slots;
    this.#settle = this.#runtime.calls.register(owner, this.callId, this);
  }

  /** CancellableCall: calls.cancel named this call, or the server stops every call (shutdown, the database gone). */
  cancel(reason: unknown): void {
    this.#scope.abort(reason);
  }

  /** QueryScope: statements of this call get `SET LOCAL statement_timeout` up to here. */
  get deadline(): number {
    return this.deadlineAt;
  }

  emit(hop: CallHop): void {
    this.#runtime.recordHop(this.callId, this.path, hop, this.#owner);
  }

  /** QueryScope: a statement-level hop of this call. */
  onEvent(event: DbEvent): void {
    const hop = dbHop(event);
    if (hop) this.emit(hop);
  }

  stoppedError(original?: unknown): TRPCError {
    return abortError(abortCause(this.signal.reason), this.budgetMs, original);
  }

  dispose(): void {
    this.signal.removeEventListener('abort', this.#onAbort);
    this.#scope[Symbol.dispose]();
    this.#settle?.();
    this.#settle = undefined;
    this.#slots?.release();
    this.#slots = undefined;
  }
}

/**
 * Opens the scope of a call: its id, signal and deadline, its hops recorded in the activity log, and its
 * entry in the registry of calls in flight (calls.cancel). A transport that carries several calls per
 * context (the WebSocket) names each through `ctx.callMeta`. Throws DuplicateCallIdError for an id the
 * caller already has in flight, OverloadedError when the call's connection has all the calls it may.
 */
export function openCallScope(ctx: Context, path: string, requestSignal: AbortSignal | undefined, batchIndex = 0, namedCallId?: string): CallScope {
  const { runtime } = ctx;
  const meta = ctx.callMeta;
  // A batched HTTP request carries several calls under one request id.
  const callId = namedCallId ?? meta?.callId ?? (ctx.batchCallIds?.[batchIndex] || (ctx.callId === undefined ? newCallId('internal') : batchCallId(ctx.callId, batchIndex)));
  const limit = runtime.timeoutFor(path);
  const clientBudgetMs = meta?.clientBudgetMs ?? ctx.clientBudgetMs;
  const budgetMs = Math.max(1, Math.min(limit, clientBudgetMs ?? limit));
  // Refused before the scope opens, so they leave no hops under an id that belongs to another call.
  if (runtime.calls.isInFlight(ctx.owner, callId)) {
    throw new DuplicateCallIdError(callId);
  }
  const slots = meta?.slots;
  if (slots && !slots.tryAcquire()) {
    throw new OverloadedError('This connection has as many calls in flight as it may; wait for some to finish, or open another connection.');
  }
  // The request's own controller, when it stands for this call alone: adopted, not linked to (context.ts).
  const adopted = meta === undefined && requestSignal !== undefined && ctx.callController?.signal === requestSignal ? ctx.callController : undefined;
  const scope = new OpenCallScope(runtime, callId, path, budgetMs, meta?.signal ?? requestSignal, ctx.owner, adopted);
  scope.register(ctx.owner, slots);
  return scope;
}
