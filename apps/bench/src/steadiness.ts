/**
 * Whether the machine kept its speed through a run of `pnpm bench`. On a shared machine (a VM on a busy host)
 * the same build's CPU per call has moved by half from one minute to the next (twelfth machine: 183 → 282 µs
 * in consecutive 6 s runs of `bench:ab`), while a CPU-only loop on both cores, alone, stayed within ±7 %; a
 * probe of that kind did not follow the servers on the eleventh machine either. What the run itself holds:
 * every target serves the same `users.byId` load twice, in the interleaved runs and again in its soak, minutes
 * later. A target whose CPU per call differs between the two, by about as much as the others', tells of the
 * machine, not of itself; figures are then comparable within one table only.
 */
import { median } from './stats';

export interface SectionShift<K extends string = string> {
  target: K;
  /** Server CPU µs per call in the interleaved `users.byId` runs (their median). */
  runsUsPerCall: number;
  /** Server CPU µs per call over the soak's windows (their median). */
  soakUsPerCall: number;
  /** soak / runs − 1. */
  shift: number;
}

/** Beyond this, in any target, the report says that figures moved between the sections (the machine, or that target). */
export const NOTABLE_SHIFT = 0.15;

/** Per target that has both: its `users.byId` runs' CPU per call against its soak's. */
export function sectionShifts<K extends string>(
  runs: readonly { target: K; serverCpuUsPerCall: number }[],
  soaks: readonly { target: K; windows: readonly { cpuUsPerCall: number }[] }[],
): SectionShift<K>[] {
  const out: SectionShift<K>[] = [];
  for (const soak of soaks) {
    const cell = runs.find((r) => r.target === soak.target);
    const soakUsPerCall = median(soak.windows.map((w) => w.cpuUsPerCall));
    if (!cell || !Number.isFinite(cell.serverCpuUsPerCall) || cell.serverCpuUsPerCall <= 0 || !Number.isFinite(soakUsPerCall)) continue;
    out.push({ target: soak.target, runsUsPerCall: cell.serverCpuUsPerCall, soakUsPerCall, shift: soakUsPerCall / cell.serverCpuUsPerCall - 1 });
  }
  return out;
}

