import { tracked, type TRPCRouterRecord } from '@trpc/server';
import { createUserInput, deleteUserInput, listUsersInput, streamUsersInput, updateUserInput, userByIdInput, type UserStreamPage } from '@asyncscope/contract';
import type { Context } from '../context';
import { callProcedure, callScopedStream, protectedProcedure, validInput, type CallScope } from '../trpc';

/** Keyset pages, each `tracked` by its last id so that a reconnecting client resumes after it. */
async function* pagesOf(ctx: Context, scope: CallScope, pageSize: number, afterId: number) {
  let sent = 0;
  for await (const page of ctx.runtime.users.stream({ pageSize, afterId, signal: scope.signal })) {
    sent += page.items.length;
    const out: UserStreamPage = { items: page.items, sent, total: page.total };
    yield tracked(String(page.lastId), out);
  }
}

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
  stream: protectedProcedure.input(validInput(streamUsersInput)).subscription(({ ctx, input, signal }) =>
    callScopedStream(ctx, 'users.stream', signal, input.callId, (scope) => pagesOf(ctx, scope, input.pageSize, Number(input.lastEventId ?? 0))),
  ),
} satisfies TRPCRouterRecord;
