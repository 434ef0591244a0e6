import { cancelCallsInput } from '@asyncscope/contract';
import type { TRPCRouterRecord } from '@trpc/server';
import { authorizedProcedure, validInput } from '../trpc';

export const callsRouter = {
  /**
   * Cancels the caller's named calls wherever they are — waiting for admission, waiting for a pool
   * connection (never sent), running (Postgres cancel), in a transaction (rolled back) — and answers per id.
   * Not admitted through the load shedder and needs no database: a cancel must get through when the
   * server is full or the database is away. Works for calls on any transport, batched HTTP included.
   */
  cancel: authorizedProcedure
    .input(validInput(cancelCallsInput))
    .mutation(async ({ ctx, input }) => ({ results: await ctx.runtime.calls.cancel(ctx.owner, input.callIds) })),
} satisfies TRPCRouterRecord;
