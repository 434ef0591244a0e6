// The cancel storm's load generator, in a worker thread of its own: its launch and abort timers do not
// queue behind the main thread's work (parsing the hop-log stream, the test runner). Plain JavaScript so
// that it loads the same under tsx and vitest. Protocol: workerData in, one message out.
import { Agent, get } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';

const { url, token, calls, sleepMs, launchMs, abortWithinMs, prefix } = workerData;
const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
const loop = monitorEventLoopDelay({ resolution: 5 });
loop.enable();

const outcomes = {};
const bump = (key) => { outcomes[key] = (outcomes[key] ?? 0) + 1; };
const abortedAt = [];
const launchLag = [];
const abortLag = [];
const input = encodeURIComponent(JSON.stringify({ ms: sleepMs }));
const started = Date.now();
const settled = [];
/** Calls aborted before their request was written. */
const neverSent = [];
for (let i = 0; i < calls; i++) {
  const plannedLaunch = started + (i * launchMs) / calls;
  if (plannedLaunch > Date.now()) await sleep(plannedLaunch - Date.now());
  launchLag.push(Date.now() - plannedLaunch);
  const id = `${prefix}${i}`;
  const latest = started + abortWithinMs;
  const plannedAbort = Math.min(latest, Date.now() + 100 + Math.random() * Math.max(0, latest - Date.now() - 100));
  settled.push(
    new Promise((resolve) => {
      let timer;
      const req = get(`${url}/trpc/lab.sleep?input=${input}`, { agent, headers: { authorization: `Bearer ${token}`, 'x-request-id': id } }, (res) => {
        // An answer before the abort (a shed call, an error): recorded as such.
        clearTimeout(timer);
        bump(`answered ${res.statusCode ?? 0}`);
        res.resume();
        res.on('end', resolve);
        res.on('error', resolve);
      });
      req.on('error', () => { resolve(); });
      // 'finish': the whole request was handed to the socket. One destroyed before that (its connection still
      // waiting in the launch burst) never left this process: the server cannot have seen it.
      let written = false;
      req.on('finish', () => { written = true; });
      timer = setTimeout(() => {
        // Stamped with Date.now() (the wall clock the server's hops use), right before the socket closes.
        const now = Date.now();
        abortLag.push(now - plannedAbort);
        abortedAt.push([id, now]);
        bump(written ? 'aborted' : 'aborted before it was sent');
        if (!written) neverSent.push(id);
        req.destroy();
      }, plannedAbort - Date.now());
    }),
  );
}
await Promise.all(settled);
agent.destroy();
loop.disable();
parentPort.postMessage({
  outcomes,
  abortedAt,
  neverSent,
  launchLag,
  abortLag,
  loopDelayP99Ms: loop.percentile(99) / 1e6,
  wallMs: Date.now() - started,
});
