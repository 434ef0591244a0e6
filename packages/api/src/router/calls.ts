import { cancelCallsInput } from '@asyncscope/contract';
import type { TRPCRouterRecord } from '@trpc/server';
import { authorizedProcedure, validInput } from '../trpc';

export const callsRouter = {
  /**
   * Cancels the caller's named calls wherever they are — waiting for admission, waiting for a pool
   * connection (never sent), running (Postgres cancel), in a transaction (rolled back) — and answers per id.
   * Not admitted through the load shedder and needs no database: a cancel must get through when the
   * server is full or the database is away. Works for calls on any transport, batched HTTP included.
   * Ids this instance does not hold go to the instance that owns them (Runtime option remoteCancel).
   */
  cancel: authorizedProcedure
    .input(validInput(cancelCallsInput))
    .mutation(async ({ ctx, input, signal }) => ({ results: await ctx.runtime.cancelCalls(ctx.owner, input.callIds, signal) })),
} satisfies TRPCRouterRecord;
