/** The real API server (apps/server) as a child process on a free port, for the benchmarks. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApiClient, type ApiClient } from '@asyncscope/client';
import { freePort } from '@asyncscope/db';
import { EventSource } from 'eventsource';
import { spawnChild, stopChild, waitUntilOk, type Child } from './children';

const ownServerDir = fileURLToPath(new URL('../../server', import.meta.url));

/** The server's `serve` script (what `pnpm start` runs), as node's arguments: flags, then the built entry point. */
function serveArgs(serverDir: string): string[] {
  const pkg = JSON.parse(readFileSync(join(serverDir, 'package.json'), 'utf8')) as { scripts: { serve: string } };
  const words = pkg.scripts.serve.trim().split(/\s+/);
  if (words[0] !== 'node') throw new Error(`unexpected serve script: ${pkg.scripts.serve}`);
  return words.slice(1);
}

export interface ApiServer {
  child: Child;
  url: string;
  /** The bearer token it was started with (for raw HTTP clients). */
  token: string;
  api: ApiClient;
  close(): Promise<void>;
}

/**
 * Starts the built server (`serverDir`: an apps/server folder with dist/ built, this checkout's by default)
 * against `databaseUrl`, and waits until /readyz answers 200.
 */
export async function startApiServer(
  databaseUrl: string,
  extraEnv: Record<string, string>,
  signal: AbortSignal,
  options: { serverDir?: string; readyTimeoutMs?: number } = {},
): Promise<ApiServer> {
  const serverDir = options.serverDir ?? ownServerDir;
  const serve = serveArgs(serverDir);
  const port = await freePort();
  const token = randomBytes(18).toString('hex');
  const child = spawnChild({
    name: 'server',
    // The same command as `pnpm start` (apps/server's serve script, on its build), so the figures are
    // those of the server a user starts. BENCH_SERVER_NODE_ARGS adds node flags for an investigation
    // (e.g. `--cpu-prof`, `--import ./probe.mjs`).
    args: [...serve.slice(0, -1), ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean), ...serve.slice(-1)],
    cwd: serverDir,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: databaseUrl, API_TOKEN: token, LOG_LEVEL: 'warn', ...extraEnv },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilOk(child, `${url}/readyz`, { timeoutMs: options.readyTimeoutMs ?? 60_000, signal });
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { child, url, token, api: createApiClient({ url: `${url}/trpc`, token, EventSource }), close: () => stopChild(child) };
}
