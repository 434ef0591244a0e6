/**
 * `pnpm --filter @asyncscope/bench bench:signal`: what one AbortSignal costs on the Node.js that runs it — the
 * signal every call of ours has (the request's, adopted as the call's), made, listened to twice and let go.
 * On Node 20 `createAbortSignal` swaps a new EventTarget's prototype and then adds three fields: V8 gives each
 * signal a hidden class of its own (a new map in the old generation, and megamorphic `addEventListener`); Node 22
 * builds it with a constructor (nodejs/node#52505). Each figure: microseconds per operation, the best of five
 * rounds. The last line asks V8 (a child with --allow-natives-syntax) whether two signals share a hidden class.
 * It prints figures; it is not a test.
 */
import { execFileSync } from 'node:child_process';

const ROUNDS = 5;
const N = Number(process.env.BENCH_SIGNAL_N ?? 200_000);
/** Where each made object goes, so that V8 cannot leave it unmade. */
const kept: { last: unknown } = { last: undefined };

function best(run: () => void): number {
  let min = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const started = performance.now();
    for (let i = 0; i < N; i++) run();
    min = Math.min(min, ((performance.now() - started) * 1000) / N);
  }
  return min;
}

const listener = (): void => undefined;
const rows: [string, number][] = [
  ['new EventTarget()', best(() => { kept.last = new EventTarget(); })],
  ['new AbortController().signal', best(() => { kept.last = new AbortController().signal; })],
  ['… + one listener added and removed', best(() => {
    const signal = new AbortController().signal;
    signal.addEventListener('abort', listener, { once: true });
    signal.removeEventListener('abort', listener);
    kept.last = signal;
  })],
  ['… + two listeners added and removed (a users.byId call)', best(() => {
    const signal = new AbortController().signal;
    const other = (): void => undefined;
    signal.addEventListener('abort', listener, { once: true });
    signal.addEventListener('abort', other, { once: true });
    signal.removeEventListener('abort', other);
    signal.removeEventListener('abort', listener);
    kept.last = signal;
  })],
];

const shared = execFileSync(process.execPath, ['--allow-natives-syntax', '-e', 'console.log(%HaveSameMap(new AbortController().signal, new AbortController().signal))'], { encoding: 'utf8' }).trim();

console.log(`Node.js ${process.version}, ${N.toLocaleString('en-US')} operations per round, best of ${ROUNDS}`);
for (const [name, us] of rows) console.log(`${us.toFixed(3).padStart(8)} µs  ${name}`);
console.log(`two signals share a hidden class: ${shared === 'true' ? 'yes' : 'no'}`);
