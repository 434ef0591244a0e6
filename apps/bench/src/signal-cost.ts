/**
 * `pnpm --filter @asyncscope/bench bench:signal`: what one AbortSignal costs on the Node.js that runs it — the
 * signal every call of ours has (the request's, adopted as the call's), made, listened to twice and let go.
 * On Node 20 `createAbortSignal` swaps a new EventTarget's prototype and then adds three fields: V8 gives each
 * signal a hidden class of its own (a new map in the old generation, and megamorphic `addEventListener`); Node 22
 * builds it with a constructor (nodejs/node#52505). Each figure: microseconds per operation, the best of five
 * rounds, for Node's own controller and for `createAbortController` (packages/concurrency, which makes its own
 * signals on Node 20). The last line asks V8 (%HaveSameMap) whether two signals share a hidden class.
 * It prints figures; it is not a test.
 */
import { execFileSync } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { createAbortController, sharedShapeSignals } from '@asyncscope/concurrency';

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
const rows: [string, number][] = [['new EventTarget()', best(() => { kept.last = new EventTarget(); })]];
for (const [name, make] of [['new AbortController()', () => new AbortController()], ['createAbortController()', createAbortController]] as const) {
  rows.push(
    [`${name}.signal`, best(() => { kept.last = make().signal; })],
    ['… + one listener added and removed', best(() => {
      const { signal } = make();
      signal.addEventListener('abort', listener, { once: true });
      signal.removeEventListener('abort', listener);
      kept.last = signal;
    })],
    ['… + two listeners added and removed (a users.byId call)', best(() => {
      const { signal } = make();
      const other = (): void => undefined;
      signal.addEventListener('abort', listener, { once: true });
      signal.addEventListener('abort', other, { once: true });
      signal.removeEventListener('abort', other);
      signal.removeEventListener('abort', listener);
      kept.last = signal;
    })],
  );
}

const shared = execFileSync(process.execPath, ['--allow-natives-syntax', '-e', 'console.log(%HaveSameMap(new AbortController().signal, new AbortController().signal))'], { encoding: 'utf8' }).trim();
setFlagsFromString('--allow-natives-syntax');
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- V8's %HaveSameMap exists only in code compiled with that flag
const sameShape = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
const oursShared = sameShape(createAbortController().signal, createAbortController().signal);

console.log(`Node.js ${process.version}, ${N.toLocaleString('en-US')} operations per round, best of ${ROUNDS}`);
console.log(`createAbortController() here: ${sharedShapeSignals ? 'its own signals (Node 20)' : "Node's own controller"}`);
for (const [name, us] of rows) console.log(`${us.toFixed(3).padStart(8)} µs  ${name}`);
console.log(`two signals share a hidden class: Node's ${shared === 'true' ? 'yes' : 'no'}, createAbortController's ${oursShared ? 'yes' : 'no'}`);
