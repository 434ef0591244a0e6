import type { TRPCRouterRecord } from '@trpc/server';
import { authorizedProcedure } from '../trpc';

export const authRouter = {
  /**
   * A short-lived, single-use ticket for one event stream (an EventSource cannot send an Authorization
   * header). Accepted only by subscriptions, only once, only within `expiresInMs`. A mutation, so it is
   * never cached or prefetched. It does not need the database: streams can (re)connect during an outage.
   */
  ticket: authorizedProcedure.mutation(({ ctx }) => ctx.runtime.tickets.issue(ctx.owner)),
} satisfies TRPCRouterRecord;
