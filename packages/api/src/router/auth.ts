import { TRPCError, type TRPCRouterRecord } from '@trpc/server';
import { unauthorizedMessage } from '../auth';
import { publicProcedure } from '../trpc';

export const authRouter = {
  /**
   * A short-lived, single-use ticket for one event stream (an EventSource cannot send an Authorization
   * header). Accepted only by subscriptions, only once, only within `expiresInMs`. A mutation, so it is
   * never cached or prefetched. It does not need the database: streams can (re)connect during an outage.
   */
  ticket: publicProcedure.mutation(({ ctx }) => {
    if (!ctx.authorized) throw new TRPCError({ code: 'UNAUTHORIZED', message: unauthorizedMessage() });
    return ctx.runtime.tickets.issue(ctx.owner);
  }),
} satisfies TRPCRouterRecord;
