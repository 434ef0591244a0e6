import type { TRPCRouterRecord } from '@trpc/server';
import { labCpuInput, labSleepInput, labSlowWriteInput, setFaultsInput } from '@asyncscope/contract';
import { callProcedure, protectedProcedure, validInput } from '../trpc';

/** Procedures that exist to demonstrate and test cancellation, deadlines and faults. */
export const labRouter = {
  sleep: callProcedure.input(validInput(labSleepInput)).query(({ ctx, input }) => ctx.runtime.lab.sleep(input.ms)),
  slowWrite: callProcedure.input(validInput(labSlowWriteInput)).mutation(({ ctx, input }) => ctx.runtime.lab.slowWrite(input)),
  /** CPU-bound work in a worker thread; cancelling the call terminates the worker's job. */
  cpu: callProcedure
    .input(validInput(labCpuInput))
    .query(({ ctx, input }) => ctx.runtime.cpu.digest(ctx.call.callId, input.rounds, ctx.call.signal)),
  setFaults: protectedProcedure.input(validInput(setFaultsInput)).mutation(({ ctx, input }) => {
    ctx.runtime.faults.set(input.procedure, input.fault);
    return ctx.runtime.faults.all();
  }),
  faults: protectedProcedure.query(({ ctx }) => ctx.runtime.faults.all()),
  clearFaults: protectedProcedure.mutation(({ ctx }) => {
    ctx.runtime.faults.clear();
    return ctx.runtime.faults.all();
  }),
} satisfies TRPCRouterRecord;
