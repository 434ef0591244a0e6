/** The real API server (apps/server) as a child process on a free port, for the benchmarks. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApiClient, type ApiClient } from '@asyncscope/client';
import { freePort } from '@asyncscope/db';
import { EventSource } from 'eventsource';
import { spawnChild, stopChild, waitUntilOk, type Child } from './children';

const serverDir = fileURLToPath(new URL('../../server', import.meta.url));

/** The server's `serve` script (what `pnpm start` runs), as node's arguments: flags, then the built entry point. */
const SERVE_ARGS: string[] = (() => {
  const pkg = JSON.parse(readFileSync(join(serverDir, 'package.json'), 'utf8')) as { scripts: { serve: string } };
  const words = pkg.scripts.serve.trim().split(/\s+/);
  if (words[0] !== 'node') throw new Error(`unexpected serve script: ${pkg.scripts.serve}`);
  return words.slice(1);
})();

export interface ApiServer {
  child: Child;
  url: string;
  /** The API token the server was started with. */
  token: string;
  api: ApiClient;
  close(): Promise<void>;
}

export async function startApiServer(databaseUrl: string, extraEnv: Record<string, string>, signal: AbortSignal): Promise<ApiServer> {
  const port = await freePort();
  const token = randomBytes(18).toString('hex');
  const child = spawnChild({
    name: 'server',
    // The same command as `pnpm start` (apps/server's serve script, on its build), so the figures are
    // those of the server a user starts. BENCH_SERVER_NODE_ARGS adds node flags for an investigation
    // (e.g. `--cpu-prof`, `--import ./probe.mjs`).
    args: [...SERVE_ARGS.slice(0, -1), ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean), ...SERVE_ARGS.slice(-1)],
    cwd: serverDir,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: databaseUrl, API_TOKEN: token, LOG_LEVEL: 'warn', ...extraEnv },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilOk(child, `${url}/readyz`, { timeoutMs: 60_000, signal });
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { child, url, token, api: createApiClient({ url: `${url}/trpc`, token, EventSource }), close: () => stopChild(child) };
}
