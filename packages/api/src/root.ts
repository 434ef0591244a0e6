import { createCallerFactory, createTRPCRouter } from './trpc';
import { activityRouter } from './router/activity';
import { labRouter } from './router/lab';
import { usersRouter } from './router/users';

export const appRouter = createTRPCRouter({
  users: usersRouter,
  lab: labRouter,
  activity: activityRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
