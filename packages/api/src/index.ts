import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import type { AppRouter } from './root';

export { appRouter, createCaller, type AppRouter } from './root';
export { createInnerContext, silentLogger, type Context, type Logger } from './context';
export { Runtime, REMOTE_CANCEL_MS, type RuntimeOptions, type InstanceStats, type EventsStatus } from './runtime';
export { ShutdownError } from './call-scope';
export { CallRegistry, CancelledError, type CallRegistryOptions } from './calls/registry';
export type { CallMeta, CallSlots } from './calls/call-meta';
export { admittedProcedures } from './shedding';
export { SSE_PING_INTERVAL_MS } from './trpc';
export { BEARER_TOKEN_HINT, createCredentials, ownerOfToken, unauthorizedMessage, type Credentials } from './auth';
export { TicketStore, type TicketStoreOptions } from './tickets';
export type { ActivityEvent, CallHop, AbortCause, ActivityBatch } from './activity/log';
export type { StatsSample } from './activity/stats';
export type { ActivityFeed } from './activity/feed';
export { ClusterFeed, type ClusterFeedOptions, type OwnedEvent } from './activity/cluster-feed';

export type RouterInputs = inferRouterInputs<AppRouter>;
export type RouterOutputs = inferRouterOutputs<AppRouter>;
