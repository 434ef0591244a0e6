/**
 * How the lab's views reach the API, the one way components do: hooks over the page's typed client. The
 * server's faults go through React Query (so the banner and the server panel share one query); the fault
 * a run holds, the calls and the run itself are stores (services.ts).
 */
import type { AppRouter } from '@asyncscope/api';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { TRPCOptionsProxy } from '@trpc/tanstack-react-query';
import { useServices } from '../services';
import { useTRPC } from '../trpc';

/**
 * Every fault injected on the server, whoever set it; re-read every 5 s. A read still in flight when the last
 * view using it goes away is cancelled (abortOnUnmount hands React Query's signal to the call).
 */
export function serverFaultsOptions(trpc: TRPCOptionsProxy<AppRouter>) {
  return trpc.lab.faults.queryOptions(undefined, { refetchInterval: 5000, trpc: { abortOnUnmount: true } });
}

export function useServerFaults() {
  return useQuery(serverFaultsOptions(useTRPC()));
}

/** Reads the server's faults again now (after the lab set, released or cleared one). */
export function useRefreshFaults(): () => Promise<void> {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  return () => queryClient.invalidateQueries({ queryKey: trpc.lab.faults.queryKey() });
}

/** Removes every fault on the server, then reads them again. */
export function useClearFaults() {
  const trpc = useTRPC();
  const refresh = useRefreshFaults();
  return useMutation(trpc.lab.clearFaults.mutationOptions({ onSettled: refresh }));
}

/** The ids a run fetches: the first page of users (up to 100). */
export function useRunUserIds(): (signal: AbortSignal) => Promise<number[]> {
  const { api } = useServices();
  return async (signal) => (await api.users.list.query({ limit: 100, offset: 0 }, { signal })).items.map((u) => u.id);
}
