// Restart time of `pnpm start` as a person sees it: spawns `npx --yes pnpm@10.34.8 start` (PORT=0) in a
// checkout, times the install, the builds and the banner, then stops it with Ctrl+C (SIGINT to its process
// group) and reports the exit and whether pnpm printed a failure. Run it on an unchanged checkout:
//   node scripts/measure-restart.mjs [checkout=.] [runs=3]
// The first run may build; the later ones are restarts.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';

const [cwd = '.', runs = '3'] = process.argv.slice(2);
for (let i = 0; i < Number(runs); i++) {
  const t0 = performance.now();
  // eslint-disable-next-line no-restricted-properties -- a measuring script: the person's environment, any free port
  const child = spawn('npx', ['--yes', 'pnpm@10.34.8', 'start'], { cwd, detached: true, env: { ...process.env, PORT: '0' } });
  let out = '';
  const marks = {};
  const mark = (name, pattern) => {
    if (!marks[name] && pattern.test(out)) marks[name] = Number(((performance.now() - t0) / 1000).toFixed(2));
  };
  const onData = (chunk) => {
    out += chunk;
    mark('installedS', /turbo \d|• turbo/);
    mark('builtS', /Tasks:/);
    mark('bannerS', /asyncscope is running/);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((resolve) => { child.once('exit', (code, signal) => { resolve({ code, signal }); }); });
  // Bounded: a start that never prints its banner is killed after 3 minutes.
  const limit = setTimeout(() => { process.kill(-child.pid, 'SIGKILL'); }, 180_000);
  while (!marks.bannerS && child.exitCode === null && child.signalCode === null) await sleep(20);
  if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGINT');
  const { code, signal } = await exited;
  clearTimeout(limit);
  const failure = /ERR_PNPM|ELIFECYCLE/.test(out) ? 'pnpm printed a failure' : 'quiet';
  process.stdout.write(`${JSON.stringify(marks)}  exit ${code ?? signal}  ${failure}\n`);
}
