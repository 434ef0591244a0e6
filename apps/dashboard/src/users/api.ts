/**
 * How the users views reach the API, the one way components do: hooks over the page's typed client. Lists
 * and changes go through React Query (every change refreshes the list), "stream all" through its store.
 */
import type { User } from '@asyncscope/contract';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useSyncExternalStore } from 'react';
import { useServices } from '../services';
import { useTRPC } from '../trpc';
import type { StreamState } from './stream-store';

export function useUserList(limit: number, offset: number) {
  const trpc = useTRPC();
  // Refreshed every few seconds: other tabs and programs change the table too.
  return useQuery(trpc.users.list.queryOptions({ limit, offset }, { placeholderData: keepPreviousData, refetchInterval: 5000 }));
}

function useRefreshList(): () => Promise<void> {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  return () => queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() });
}

interface ChangeHandlers<T> {
  onSuccess?: (result: T) => void;
  onError: (error: unknown) => void;
}

/** A change's handlers, then the list's refresh after a success. */
function refreshingList<T>(refresh: () => Promise<void>, handlers: ChangeHandlers<T>) {
  return {
    onSuccess: (result: T) => {
      handlers.onSuccess?.(result);
      void refresh();
    },
    onError: handlers.onError,
  };
}

export function useCreateUser(handlers: ChangeHandlers<User>) {
  const trpc = useTRPC();
  return useMutation(trpc.users.create.mutationOptions(refreshingList(useRefreshList(), handlers)));
}

export function useUpdateUser(handlers: ChangeHandlers<User>) {
  const trpc = useTRPC();
  return useMutation(trpc.users.update.mutationOptions(refreshingList(useRefreshList(), handlers)));
}

export function useDeleteUser(handlers: ChangeHandlers<unknown>) {
  const trpc = useTRPC();
  return useMutation(trpc.users.delete.mutationOptions(refreshingList(useRefreshList(), handlers)));
}

/** Adds 50 demo users, ten at a time, then refreshes the list; resolves to how many failed. */
export function useSeedUsers(): () => Promise<number> {
  const { api } = useServices();
  const refresh = useRefreshList();
  return async () => {
    const stamp = Date.now().toString(36);
    let failed = 0;
    for (let i = 0; i < 50; i += 10) {
      const batch = Array.from({ length: 10 }, (_, j) => i + j + 1);
      const results = await Promise.allSettled(
        batch.map((n) => api.users.create.mutate({ name: `Demo user ${stamp}-${n}`, email: `demo-${stamp}-${n}@example.com`, idempotencyKey: `seed:${stamp}:${n}` })),
      );
      failed += results.filter((r) => r.status === 'rejected').length;
    }
    void refresh();
    return failed;
  };
}

/** The "stream all" subscription: its state, and starting or cancelling it. */
export function useUserStream(): { state: StreamState; start: (pageSize: number) => void; cancel: () => void } {
  const { userStream } = useServices();
  const state = useSyncExternalStore(userStream.subscribe, userStream.getSnapshot);
  return { state, start: (pageSize) => { userStream.start(pageSize); }, cancel: () => { userStream.cancel(); } };
}
