/**
 * asyncscope users stream: every user, page by page (the server's keyset generator over SSE or the
 * WebSocket), with a progress bar. Ctrl+C stops the stream's call on the server (calls.cancel: its
 * generator ends and the page query in flight is cancelled), closes the stream, and says so.
 */
import { randomBytes } from 'node:crypto';
import type { ApiClient, ApiTransport } from '@asyncscope/client';
import type { CancelStatus, UserStreamPage } from '@asyncscope/contract';
import { Presets, SingleBar } from 'cli-progress';
import { Option, type Command } from 'commander';
import { interruptSignal, preflight, withClient } from '../client';
import type { Config } from '../config';
import { Interrupted } from '../errors';
import { ms, parseInteger } from '../format';
import type { Run } from './users';

interface StreamResult {
  callId: string;
  rows: number;
  total: number | null;
  elapsedMs: number;
  /** Set when Ctrl+C stopped the stream: what the server answered to calls.cancel for it. */
  stopped?: { server: CancelStatus | 'cancel-failed' };
}

function progressBar(enabled: boolean): SingleBar | undefined {
  if (!enabled || !process.stderr.isTTY) return undefined;
  return new SingleBar(
    { stream: process.stderr, format: 'users {bar} {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}', hideCursor: true, fps: 10, etaBuffer: 20 },
    Presets.shades_classic,
  );
}

export function streamCommand(users: Command, run: Run): void {
  users
    .command('stream')
    .description('every user, page by page, with a progress bar (rows/total, rate, ETA); Ctrl+C stops the server\'s stream')
    .option('--page-size <n>', 'users per page (1-1000)', '500')
    .addOption(new Option('--transport <transport>', 'SSE over HTTP, or the WebSocket').choices(['http', 'websocket']).default('http'))
    .option('--no-progress', 'no progress bar (there is none unless stderr is a terminal)')
    .addHelpText('after', '\nWith --json, one user per line (NDJSON) on stdout, then the summary on stderr.\nExit codes: 0 streamed to the end, 130 interrupted.')
    .action(async (_opts: unknown, cmd: Command) => {
      await run(cmd, async (config) => {
        const o = cmd.opts<{ pageSize: string; transport: ApiTransport; progress: boolean }>();
        const pageSize = parseInteger(o.pageSize, '--page-size', 1, 1000);
        const interrupt = interruptSignal();
        try {
          await preflight(config, interrupt.signal, 'before the stream started');
          const result = await withClient(config, o.transport, (client) => streamUsers(client, config, pageSize, o.progress, interrupt.signal));
          const rate = result.rows / (result.elapsedMs / 1000);
          const of = result.total === null ? '' : ` of ${result.total}`;
          if (result.stopped) {
            const said = result.stopped.server === 'cancelled'
              ? `the server stopped the stream (call ${result.callId}: its generator and page query ended)`
              : result.stopped.server === 'cancel-failed'
                ? `the stream was closed (the server's generator ends when it sees the closed stream)`
                : `the stream was closed (the server reported the call ${result.stopped.server})`;
            process.stderr.write(`stopped after ${result.rows}${of} users (${ms(result.elapsedMs)}): ${said}\n`);
            throw new Interrupted('interrupted (Ctrl+C)');
          }
          const line = `streamed ${result.rows}${of} users in ${ms(result.elapsedMs)} (${rate.toFixed(0)} rows/s)\n`;
          if (config.json) process.stderr.write(line);
          else process.stdout.write(line);
        } finally {
          interrupt.dispose();
        }
      });
    });
}

async function streamUsers(client: ApiClient, config: Config, pageSize: number, progress: boolean, interrupt: AbortSignal): Promise<StreamResult> {
  const callId = `cli-stream-${randomBytes(4).toString('hex')}`;
  const started = performance.now();
  const bar = progressBar(progress);
  let rows = 0;
  let total: number | null = null;
  const result = (extra: Partial<StreamResult> = {}): StreamResult => ({ callId, rows, total, elapsedMs: performance.now() - started, ...extra });
  try {
    return await new Promise<StreamResult>((resolve, reject) => {
      let stopping = false;
      const onPage = (page: UserStreamPage): void => {
        if (total === null) bar?.start(page.total, 0, { rate: '0' });
        total = page.total;
        rows = page.sent;
        if (config.json) process.stdout.write(page.items.map((u) => `${JSON.stringify(u)}\n`).join(''));
        const secs = (performance.now() - started) / 1000;
        bar?.setTotal(Math.max(page.total, page.sent));
        bar?.update(page.sent, { rate: secs > 0 ? (page.sent / secs).toFixed(0) : '0' });
      };
      const subscription = client.users.stream.subscribe(
        { pageSize, callId },
        {
          onData: ({ data }) => { onPage(data); },
          // After Ctrl+C the stream ends (completes, or fails with the cancel's error) because we stopped it:
          // the answer to calls.cancel settles the command then.
          onComplete: () => { if (!stopping) { finish(); resolve(result()); } },
          onError: (error) => { if (!stopping) { finish(); reject(error); } },
        },
      );
      const finish = (): void => {
        interrupt.removeEventListener('abort', onInterrupt);
        subscription.unsubscribe();
      };
      const onInterrupt = (): void => {
        stopping = true;
        // Stop the call on the server first, to learn that it did; then close the stream either way.
        client.calls.cancel.mutate({ callIds: [callId] }, { signal: AbortSignal.timeout(3000) }).then(
          ({ results }) => { finish(); resolve(result({ stopped: { server: results[0]?.status ?? 'unknown' } })); },
          () => { finish(); resolve(result({ stopped: { server: 'cancel-failed' } })); },
        );
      };
      if (interrupt.aborted) onInterrupt();
      else interrupt.addEventListener('abort', onInterrupt, { once: true });
    });
  } finally {
    bar?.stop();
  }
}
