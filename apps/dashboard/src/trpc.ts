import type { AppRouter } from '@asyncscope/api';
import { createTRPCContext } from '@trpc/tanstack-react-query';

/** React Query integration for the API: queries and mutations via useTRPC(), the vanilla client via useTRPCClient(). */
export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();
