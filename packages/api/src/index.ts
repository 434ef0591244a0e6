import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import type { AppRouter } from './root';

export { appRouter, createCaller, type AppRouter } from './root';
export { createInnerContext, createServices, silentLogger, type Context, type Logger, type Services } from './context';
export { createBearerVerifier } from './auth';
export { UsersService } from './services/users';

export type RouterInputs = inferRouterInputs<AppRouter>;
export type RouterOutputs = inferRouterOutputs<AppRouter>;
