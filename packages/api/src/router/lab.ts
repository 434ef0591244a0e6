import { TRPCError, type TRPCRouterRecord } from '@trpc/server';
import { labCpuInput, labSleepInput, labSlowWriteInput, setFaultsInput } from '@asyncscope/contract';
import type { Runtime } from '../runtime';
import { callProcedure, protectedProcedure, validInput } from '../trpc';

/**
 * The operator's switch (Runtime option `lab`; LAB=off on the server): lab.* can slow or fail every caller's
 * calls, so a deployment turns it off. Checked after the token, which callProcedure / protectedProcedure check first.
 */
function requireLab(runtime: Runtime): void {
  if (!runtime.labEnabled) {
    throw new TRPCError({ code: 'FORBIDDEN', message: 'The lab (lab.*) is switched off on this server; its operator can switch it on (LAB=on).' });
  }
}

const labCall = callProcedure.use(({ ctx, next }) => {
  requireLab(ctx.runtime);
  return next();
});
const labSetting = protectedProcedure.use(({ ctx, next }) => {
  requireLab(ctx.runtime);
  return next();
});

/** Procedures that exist to demonstrate and test cancellation, deadlines and faults. */
export const labRouter = {
  sleep: labCall.input(validInput(labSleepInput)).query(({ ctx, input }) => ctx.runtime.lab.sleep(input.ms)),
  slowWrite: labCall.input(validInput(labSlowWriteInput)).mutation(({ ctx, input }) => ctx.runtime.lab.slowWrite(input)),
  /** CPU-bound work in a worker thread; cancelling the call terminates the worker's job. */
  cpu: labCall
    .input(validInput(labCpuInput))
    .query(({ ctx, input }) => ctx.runtime.cpu.digest(ctx.call.callId, input.rounds, ctx.call.signal)),
  setFaults: labSetting.input(validInput(setFaultsInput)).mutation(({ ctx, input }) => {
    ctx.runtime.faults.set(input.procedure, input.fault);
    return ctx.runtime.faults.all();
  }),
  faults: labSetting.query(({ ctx }) => ctx.runtime.faults.all()),
  clearFaults: labSetting.mutation(({ ctx }) => {
    ctx.runtime.faults.clear();
    return ctx.runtime.faults.all();
  }),
} satisfies TRPCRouterRecord;
