/** asyncscope watch: the server's live activity stream (activity.events), one line per hop of every call. */
import type { ApiTransport } from '@asyncscope/client';
import { Option, type Command } from 'commander';
import { interruptSignal, preflight, withClient } from '../client';
import { shownUrl } from '../config';
import { parseDuration } from '../format';
import type { Run } from './users';

/** A hop as activity.events sends it (packages/api/src/activity/log.ts), read loosely: new hop types print too. */
interface Hop {
  seq: number;
  at: number;
  callId: string;
  path: string;
  type: string;
  [key: string]: unknown;
}

function details(hop: Hop): string {
  const { seq: _seq, at: _at, callId: _callId, path: _path, type: _type, ...rest } = hop;
  return Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
}

export function formatHop(hop: Hop): string {
  const time = new Date(hop.at).toISOString().slice(11, 23);
  return `${time}  ${hop.callId.padEnd(28)}  ${hop.path.padEnd(14)}  ${hop.type.padEnd(17)}  ${details(hop)}`.trimEnd();
}

export function watchCommand(program: Command, run: Run): void {
  program
    .command('watch')
    .description('the live activity stream: one line per hop of every call (received, started, statements, cancels, settled)')
    .option('--replay', 'start from the oldest event the server still holds, not from now')
    .option('--call <prefix>', 'only calls whose id starts with this')
    .option('--path <prefix>', 'only procedures whose path starts with this (e.g. users.)')
    .option('--for <duration>', 'stop after this long (default: until Ctrl+C)')
    .addOption(new Option('--transport <transport>', 'SSE over HTTP, or the WebSocket').choices(['http', 'websocket']).default('http'))
    .addHelpText('after', '\nWith --json, one event per line (NDJSON). Ctrl+C ends the watch (exit 0).')
    .action(async (_opts: unknown, cmd: Command) => {
      await run(cmd, async (config) => {
        const o = cmd.opts<{ replay?: boolean; call?: string; path?: string; for?: string; transport: ApiTransport }>();
        const forMs = o.for === undefined ? undefined : parseDuration(o.for, '--for');
        const interrupt = interruptSignal();
        const timer = forMs === undefined ? undefined : setTimeout(() => { process.emit('SIGINT'); }, forMs);
        try {
          await preflight(config, interrupt.signal, 'before the watch started');
          await withClient(config, o.transport, (client) =>
            new Promise<void>((resolve, reject) => {
              const subscription = client.activity.events.subscribe(
                { replay: o.replay ?? false },
                {
                  // On stderr, so --json output stays NDJSON: tells a person (and a script) the watch is live.
                  onStarted: () => { process.stderr.write(`watching ${shownUrl(config.baseUrl)} (Ctrl+C to stop)\n`); },
                  onData: ({ data }) => {
                    if (data.missed > 0) process.stderr.write(`(${data.missed} events missed: the server's buffer moved on)\n`);
                    const out: string[] = [];
                    for (const hop of data.events as Hop[]) {
                      if (o.call && !hop.callId.startsWith(o.call)) continue;
                      if (o.path && !hop.path.startsWith(o.path)) continue;
                      out.push(config.json ? JSON.stringify(hop) : formatHop(hop));
                    }
                    if (out.length > 0) process.stdout.write(`${out.join('\n')}\n`);
                  },
                  onError: (error) => { done(); reject(error); },
                  onComplete: () => { done(); resolve(); },
                },
              );
              const done = (): void => {
                interrupt.signal.removeEventListener('abort', onStop);
                subscription.unsubscribe();
              };
              // Ctrl+C is how a watch ends: close the stream (the server's generator ends) and exit 0.
              const onStop = (): void => { done(); resolve(); };
              if (interrupt.signal.aborted) onStop();
              else interrupt.signal.addEventListener('abort', onStop, { once: true });
            }),
          );
        } catch (error) {
          if (!interrupt.signal.aborted) throw error;
        } finally {
          clearTimeout(timer);
          interrupt.dispose();
        }
      });
    });
}
