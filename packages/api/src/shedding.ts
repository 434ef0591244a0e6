import { appRouter } from './root';
import { callProcedure } from './trpc';

/** tRPC 11 keeps a procedure's middlewares, in order, on its `_def` (untyped there; shedding.test.ts checks it holds). */
const middlewaresOf = (procedure: unknown): readonly unknown[] =>
  (procedure as { _def?: { middlewares?: readonly unknown[] } } | undefined)?._def?.middlewares ?? [];

/**
 * The procedures that go through admission (built on callProcedure): the ones a full server refuses with
 * TOO_MANY_REQUESTS. The HTTP layer may refuse them early (Admission.refuseNow); every other procedure
 * (activity.*, lab fault settings, subscriptions) is never shed, so the dashboard keeps seeing the load.
 */
export const admittedProcedures: ReadonlySet<string> = (() => {
  const admit = middlewaresOf(callProcedure)[0];
  const procedures = appRouter._def.procedures as Record<string, unknown>;
  return new Set(Object.keys(procedures).filter((path) => admit !== undefined && middlewaresOf(procedures[path]).includes(admit)));
})();
