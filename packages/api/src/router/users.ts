import type { TRPCRouterRecord } from '@trpc/server';
import { createUserInput, listUsersInput, updateUserInput, userByIdInput } from '@asyncscope/contract';
import { protectedProcedure, validInput } from '../trpc';

export const usersRouter = {
  byId: protectedProcedure.input(validInput(userByIdInput)).query(({ ctx, input }) => ctx.services.users.byId(input.id)),
  list: protectedProcedure.input(validInput(listUsersInput)).query(({ ctx, input }) => ctx.services.users.list(input)),
  create: protectedProcedure.input(validInput(createUserInput)).mutation(({ ctx, input }) => ctx.services.users.create(input)),
  update: protectedProcedure.input(validInput(updateUserInput)).mutation(({ ctx, input }) => ctx.services.users.update(input)),
  delete: protectedProcedure.input(validInput(userByIdInput)).mutation(({ ctx, input }) => ctx.services.users.delete(input.id)),
} satisfies TRPCRouterRecord;
