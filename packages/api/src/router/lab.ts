import { TRPCError, type TRPCRouterRecord } from '@trpc/server';
import { type Fault, labCpuInput, labSleepInput, labSlowWriteInput, setFaultsInput } from '@asyncscope/contract';
import { deadline } from '@asyncscope/concurrency';
import { abortCause } from '../call-scope';
import type { Context } from '../context';
import type { Runtime } from '../runtime';
import { abortError, edgeError } from '../trpc-errors';
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

/**
 * A read or change of the lab faults' rows (FaultStore), stopped by the client going away, shutdown, the
 * database going away, or the call's usual time limit; its errors typed like a call's (database away →
 * SERVICE_UNAVAILABLE).
 */
async function faultsCall(ctx: Context, signal: AbortSignal | undefined, run: (signal: AbortSignal) => Promise<Record<string, Fault>>): Promise<Record<string, Fault>> {
  const { runtime } = ctx;
  const scope = deadline(runtime.callTimeoutMs, { signal: [signal, runtime.shutdownSignal, runtime.databaseDownSignal()] });
  try {
    return await run(scope.signal);
  } catch (error) {
    if (scope.signal.aborted) throw abortError(abortCause(scope.signal.reason), runtime.callTimeoutMs, error);
    throw edgeError(error);
  } finally {
    scope.dispose();
  }
}

/** Procedures that exist to demonstrate and test cancellation, deadlines and faults. */
export const labRouter = {
  sleep: labCall.input(validInput(labSleepInput)).query(({ ctx, input }) => ctx.runtime.lab.sleep(input.ms, ctx.call)),
  slowWrite: labCall.input(validInput(labSlowWriteInput)).mutation(({ ctx, input }) => ctx.runtime.lab.slowWrite(input, ctx.call)),
  /** CPU-bound work in a worker thread; cancelling the call terminates the worker's job. */
  cpu: labCall
    .input(validInput(labCpuInput))
    .query(({ ctx, input }) => ctx.runtime.cpu.digest(ctx.call.callId, input.rounds, ctx.call.signal)),
  // Faults are rows shared by every instance (FaultStore): a change is answered once this instance applies it.
  setFaults: labSetting
    .input(validInput(setFaultsInput))
    .mutation(({ ctx, input, signal }) => faultsCall(ctx, signal, (s) => ctx.runtime.faultStore.set(input.procedure, input.fault, s))),
  faults: labSetting.query(({ ctx, signal }) => faultsCall(ctx, signal, (s) => ctx.runtime.faultStore.load(s))),
  clearFaults: labSetting.mutation(({ ctx, signal }) => faultsCall(ctx, signal, (s) => ctx.runtime.faultStore.clear(s))),
} satisfies TRPCRouterRecord;
