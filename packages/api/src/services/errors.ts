/**
 * What went wrong, in the domain's words: the errors services (and the call machinery under them) throw.
 * No HTTP, no tRPC here: the tRPC edge (../trpc-errors.ts) gives each kind its code, once. The message is
 * written for a person and goes out to the client as it is.
 */

/** Every kind of domain error; the edge's table of codes must name each (the compiler checks). */
export type DomainErrorKind = 'not-found' | 'conflict' | 'overloaded';

export abstract class DomainError extends Error {
  abstract readonly kind: DomainErrorKind;
}

/** The thing asked for does not exist (or no longer does). */
export class NotFoundError extends DomainError {
  override readonly name = 'NotFoundError';
  readonly kind = 'not-found';
  constructor(
    readonly entity: string,
    readonly id: number | string,
  ) {
    super(`No ${entity} with id ${id}.`);
  }
}

/**
 * The request contradicts what is already there: a unique value taken, an idempotency key used for another
 * request, a call id already in flight. Retrying the same request gets the same answer.
 */
export class ConflictError extends DomainError {
  override readonly name: string = 'ConflictError';
  readonly kind = 'conflict';
}

/** Refused for want of room, not for what was asked: the same request later may well succeed. */
export class OverloadedError extends DomainError {
  override readonly name = 'OverloadedError';
  readonly kind = 'overloaded';
}
