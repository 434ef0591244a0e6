/**
 * For tests that run the README's commands (`pnpm dev`, `pnpm start`) as a person does: pnpm of this
 * checkout in a process group of its own, like a terminal's foreground job, so a Ctrl+C can be sent the
 * way a terminal sends it (to the whole group). turbo starts its tasks in groups of their own, so cleanup
 * walks the process tree rather than trusting the group.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { until } from '@asyncscope/concurrency/testing';

export const REPO_ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
const PNPM = fileURLToPath(new URL('../../../../node_modules/pnpm/bin/pnpm.cjs', import.meta.url));

export interface PnpmProcess {
  proc: ChildProcessWithoutNullStreams;
  output: () => string;
  /** Exit code, or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Ctrl+C in a terminal: SIGINT to the foreground process group (and npm's forwarded copy, as `npx pnpm` does). */
  interrupt(): void;
  /** Kills whatever is left of the tree (SIGKILL) and waits for the exit. Safe to call twice. */
  kill(): Promise<void>;
}

/** Every process below `root`, read from ps. */
function descendants(root: number): number[] {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number) as [number, number]);
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.shift();
    for (const [pid, ppid] of rows) {
      if (ppid === parent) {
        found.push(pid);
        queue.push(pid);
      }
    }
  }
  return found;
}

export function runPnpm(args: string[], env: Record<string, string>): PnpmProcess {
  const proc = spawn(process.execPath, [PNPM, ...args], {
    cwd: REPO_ROOT,
    detached: true,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
  });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => { resolve({ code, signal }); });
  });
  const pid = proc.pid ?? 0;
  return {
    proc,
    output: () => out,
    exited,
    interrupt() {
      process.kill(-pid, 'SIGINT');
      // `npx pnpm …` forwards the signal to pnpm again: the same Ctrl+C, a second time.
      process.kill(pid, 'SIGINT');
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) {
        for (const child of descendants(pid)) {
          try {
            process.kill(child, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
    },
  };
}

/** `until`, failing at once with pnpm's output if the process exits first. */
export function waitFor<T>(what: string, check: () => T | undefined | false, p: PnpmProcess, timeoutMs: number): Promise<T> {
  return until(what, () => {
    const value = check();
    if ((value === undefined || value === false) && (p.proc.exitCode !== null || p.proc.signalCode !== null)) throw new Error(`pnpm exited while waiting for ${what}:\n${p.output()}`);
    return value;
  }, { timeoutMs, intervalMs: 100, context: () => p.output() });
}
