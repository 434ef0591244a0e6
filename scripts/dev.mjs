// `pnpm dev`: turbo runs the server's and the dashboard's dev tasks, with the whole environment (the
// configuration table's variables: turbo's default strict mode would drop them), and one Ctrl+C stops
// them gracefully.
//
// Why a launcher between pnpm and turbo: under `npx pnpm dev` one Ctrl+C reaches pnpm twice (from the
// terminal, and forwarded by npm), and pnpm answers the second with SIGTERM to its script. Passed on to
// turbo, that SIGTERM would count as a second request and force-kill the tasks before the server drained.
// turbo sits in the terminal's process group and gets the Ctrl+C itself, so a signal that follows a
// SIGINT within a second is the same request and is absorbed here; a SIGTERM or SIGHUP on its own (a
// `kill`, a closed terminal) is passed on.
import { spawn } from 'node:child_process';

const turbo = spawn(
  'turbo',
  ['run', 'dev', '--env-mode=loose', '--filter=@asyncscope/server', '--filter=@asyncscope/dashboard', ...process.argv.slice(2)],
  { stdio: 'inherit' },
);

let lastInterrupt = -Infinity;
process.on('SIGINT', () => { lastInterrupt = performance.now(); });
for (const signal of ['SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (performance.now() - lastInterrupt < 1000) return;
    turbo.kill(signal);
  });
}

turbo.on('error', (error) => {
  process.stderr.write(`could not run turbo: ${error.message}\n`);
  process.exit(1);
});
turbo.on('exit', (code, signal) => {
  // A stop the person asked for (Ctrl+C) that ended cleanly is not a failure.
  process.exit(code ?? (signal === 'SIGINT' || signal === 'SIGTERM' ? 0 : 1));
});
