import { tracked, type TRPCRouterRecord } from '@trpc/server';
import { createUserInput, deleteUserInput, listUsersInput, streamUsersInput, updateUserInput, userByIdInput, type User, type UserStreamPage } from '@asyncscope/contract';
import type { Context } from '../context';
import { callProcedure, callScopedStream, protectedProcedure, validInput, type CallScope } from '../trpc';

/**
 * How much of a page one event carries, in characters of its JSON: V8 allocates a string over 128 KB (a
 * two-byte string takes two bytes a character) as a large object, and the event's JSON, then its SSE or
 * WebSocket text, each cost ~0.7 ms more per event that way (a page of 1,000 users is ~140,000 characters:
 * `bench:stream` 6.2–7.3 µs of server CPU per row, against 5.9 in pages of 500).
 */
export const EVENT_CHARS = 60_000;
/** A user's JSON without its name and email: `{"id":…,"name":"","email":"","createdAt":"…","updatedAt":"…"},`. */
const USER_JSON_CHARS = 110;

/** A page's users in runs that each stay under EVENT_CHARS (at least one user each), in order. */
export function eventSlices(items: readonly User[]): User[][] {
  const slices: User[][] = [];
  let current: User[] = [];
  let chars = 0;
  for (const user of items) {
    const size = USER_JSON_CHARS + user.name.length + user.email.length;
    if (current.length > 0 && chars + size > EVENT_CHARS) {
      slices.push(current);
      current = [];
      chars = 0;
    }
    current.push(user);
    chars += size;
  }
  if (current.length > 0) slices.push(current);
  return slices;
}

/**
 * Keyset pages, as events each `tracked` by its last id so that a reconnecting client resumes after it. A page
 * too large for one event (see EVENT_CHARS) goes out as several, each resumable the same way.
 */
async function* pagesOf(ctx: Context, scope: CallScope, pageSize: number, afterId: number) {
  let sent = 0;
  for await (const page of ctx.runtime.users.stream({ pageSize, afterId, scope })) {
    for (const items of eventSlices(page.items)) {
      sent += items.length;
      const out: UserStreamPage = { items, sent, total: page.total };
      yield tracked(String((items[items.length - 1] as User).id), out);
    }
  }
}

export const usersRouter = {
  byId: callProcedure.input(validInput(userByIdInput)).query(({ ctx, input }) => ctx.runtime.users.byId(input.id, ctx.call)),
  list: callProcedure.input(validInput(listUsersInput)).query(({ ctx, input }) => ctx.runtime.users.list(input, ctx.call)),
  create: callProcedure.input(validInput(createUserInput)).mutation(({ ctx, input }) => ctx.runtime.users.create(input, ctx.call)),
  update: callProcedure.input(validInput(updateUserInput)).mutation(({ ctx, input }) => ctx.runtime.users.update(input, ctx.call)),
  delete: callProcedure.input(validInput(deleteUserInput)).mutation(({ ctx, input }) => ctx.runtime.users.delete(input, ctx.call)),

  /**
   * Every user, page by page (keyset), over SSE. A client that stops reading closes the stream: the signal
   * fires, the page query in flight is cancelled, and this generator's `finally` runs. Each page is
   * `tracked` by its last id, so a reconnecting client resumes after it.
   */
  stream: protectedProcedure.input(validInput(streamUsersInput)).subscription(({ ctx, input, signal }) =>
    callScopedStream(ctx, 'users.stream', signal, input.callId, (scope) => pagesOf(ctx, scope, input.pageSize, Number(input.lastEventId ?? 0))),
  ),
} satisfies TRPCRouterRecord;
