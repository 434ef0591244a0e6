/**
 * How the users views reach the API, the one way components do: hooks over the page's typed client. Lists
 * and changes go through React Query (every change refreshes the list), "stream all" through its store.
 */
import type { AppRouter } from '@asyncscope/api';
import type { User } from '@asyncscope/contract';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { TRPCOptionsProxy } from '@trpc/tanstack-react-query';
import { useSyncExternalStore } from 'react';
import { useServices } from '../services';
import { useTRPC } from '../trpc';
import type { StreamState } from './stream-store';

/**
 * A page of the list, refreshed every few seconds: other tabs and programs change the table too. A read still
 * in flight when the list goes away is cancelled (abortOnUnmount hands React Query's signal to the call).
 */
export function userListOptions(trpc: TRPCOptionsProxy<AppRouter>, limit: number, offset: number) {
  return trpc.users.list.queryOptions({ limit, offset }, { placeholderData: keepPreviousData, refetchInterval: 5000, trpc: { abortOnUnmount: true } });
}

export function useUserList(limit: number, offset: number) {
  return useQuery(userListOptions(useTRPC(), limit, offset));
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

export interface DemoUser {
  name: string;
  email: string;
  idempotencyKey: string;
}

/**
 * Adds 50 demo users, ten at a time; resolves to how many failed. Aborted, the creates in flight are cancelled
 * (each has the signal), no further batch starts, and it rejects with the signal's reason.
 */
export async function seedDemoUsers(create: (user: DemoUser, signal: AbortSignal) => Promise<unknown>, signal: AbortSignal, stamp = Date.now().toString(36)): Promise<number> {
  let failed = 0;
  for (let i = 0; i < 50; i += 10) {
    signal.throwIfAborted();
    const batch = Array.from({ length: 10 }, (_, j) => i + j + 1);
    const results = await Promise.allSettled(
      batch.map((n) => create({ name: `Demo user ${stamp}-${n}`, email: `demo-${stamp}-${n}@example.com`, idempotencyKey: `seed:${stamp}:${n}` }, signal)),
    );
    signal.throwIfAborted();
    failed += results.filter((r) => r.status === 'rejected').length;
  }
  return failed;
}

/** seedDemoUsers through the page's client, then the list's refresh. */
export function useSeedUsers(): (signal: AbortSignal) => Promise<number> {
  const { api } = useServices();
  const refresh = useRefreshList();
  return async (signal) => {
    const failed = await seedDemoUsers((user, s) => api.users.create.mutate(user, { signal: s }), signal);
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
