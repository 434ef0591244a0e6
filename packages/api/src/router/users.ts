import { tracked, type TRPCRouterRecord } from '@trpc/server';
import { createUserInput, deleteUserInput, listUsersInput, streamUsersInput, updateUserInput, userByIdInput, type UserStreamPage } from '@asyncscope/contract';
import { openCallScope } from '../call-scope';
import { callProcedure, protectedProcedure, validInput } from '../trpc';

export const usersRouter = {
  byId: callProcedure.input(validInput(userByIdInput)).query(({ ctx, input }) => ctx.runtime.users.byId(input.id)),
  list: callProcedure.input(validInput(listUsersInput)).query(({ ctx, input }) => ctx.runtime.users.list(input)),
  create: callProcedure.input(validInput(createUserInput)).mutation(({ ctx, input }) => ctx.runtime.users.create(input)),
  update: callProcedure.input(validInput(updateUserInput)).mutation(({ ctx, input }) => ctx.runtime.users.update(input)),
  delete: callProcedure.input(validInput(deleteUserInput)).mutation(({ ctx, input }) => ctx.runtime.users.delete(input)),

  /**
   * Every user, page by page (keyset), over SSE. A client that stops reading closes the stream: the signal
   * fires, the page query in flight is cancelled, and this generator's `finally` runs. Each page is
   * `tracked` by its last id, so a reconnecting client resumes after it.
   */
  stream: protectedProcedure.input(validInput(streamUsersInput)).subscription(async function* ({ ctx, input, signal }) {
    const scope = openCallScope(input.callId ? { ...ctx, callId: input.callId } : ctx, 'users.stream', signal);
    const started = performance.now();
    let code = 'OK';
    let sent = 0;
    try {
      scope.emit({ type: 'started' });
      const pages = ctx.runtime.users.stream({ pageSize: input.pageSize, afterId: Number(input.lastEventId ?? 0), signal: scope.signal });
      // AsyncLocalStorage does not follow a generator's body into its consumer, so each step runs in the scope.
      for (;;) {
        const step = await scope.run(() => pages.next());
        if (step.done) break;
        sent += step.value.items.length;
        const page: UserStreamPage = { items: step.value.items, sent, total: step.value.total };
        yield tracked(String(step.value.lastId), page);
      }
    } catch (error) {
      code = scope.signal.aborted ? scope.stoppedError(error).code : 'INTERNAL_SERVER_ERROR';
      if (!scope.signal.aborted) throw error;
    } finally {
      if (scope.signal.aborted && code === 'OK') code = scope.stoppedError().code;
      scope.emit({ type: 'settled', code, ms: Math.round(performance.now() - started) });
      scope.dispose();
    }
  }),
} satisfies TRPCRouterRecord;
