import { createCallerFactory, createTRPCRouter } from './trpc';
import { activityRouter } from './router/activity';
import { authRouter } from './router/auth';
import { callsRouter } from './router/calls';
import { labRouter } from './router/lab';
import { usersRouter } from './router/users';

export const appRouter = createTRPCRouter({
  users: usersRouter,
  lab: labRouter,
  activity: activityRouter,
  auth: authRouter,
  calls: callsRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
