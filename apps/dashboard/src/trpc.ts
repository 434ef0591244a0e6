import type { AppRouter } from '@asyncscope/api';
import { createTRPCContext } from '@trpc/tanstack-react-query';

/**
 * React Query integration for the API. Only the features' hooks (each feature's `api.ts`) call useTRPC(): components
 * reach the API through those hooks, never through a client of their own.
 */
export const { TRPCProvider, useTRPC } = createTRPCContext<AppRouter>();
