/**
 * For tests: a typed tRPC client whose link records each operation (with the signal it was given) and leaves
 * it unanswered, and the React Query options proxy over it, as the page's TRPCProvider builds it.
 */
import type { AppRouter } from '@asyncscope/api';
import { QueryClient } from '@tanstack/react-query';
import { createTRPCClient, type Operation, type TRPCLink } from '@trpc/client';
import { observable } from '@trpc/server/observable';
import { createTRPCOptionsProxy } from '@trpc/tanstack-react-query';

export function recordingTrpc() {
  const ops: Operation[] = [];
  const link: TRPCLink<AppRouter> = () => ({ op }) => observable(() => {
    ops.push(op);
    return () => undefined;
  });
  const client = createTRPCClient<AppRouter>({ links: [link] });
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const trpc = createTRPCOptionsProxy<AppRouter>({ client, queryClient });
  return { ops, queryClient, trpc };
}
