import { createCallerFactory, createTRPCRouter } from './trpc';
import { usersRouter } from './router/users';

export const appRouter = createTRPCRouter({
  users: usersRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
