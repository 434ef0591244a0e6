/** The real API server (apps/server) as a child process on a free port, for the benchmarks. */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createApiClient, type ApiClient } from '@asyncscope/client';
import { freePort } from '@asyncscope/db';
import { EventSource } from 'eventsource';
import { spawnChild, stopChild, waitUntilOk, type Child } from './children';

const serverDir = fileURLToPath(new URL('../../server', import.meta.url));

export interface ApiServer {
  child: Child;
  url: string;
  api: ApiClient;
  close(): Promise<void>;
}

export async function startApiServer(databaseUrl: string, extraEnv: Record<string, string>, signal: AbortSignal): Promise<ApiServer> {
  const port = await freePort();
  const token = randomBytes(18).toString('hex');
  const child = spawnChild({
    name: 'server',
    args: ['--import', 'tsx', 'src/main.ts'],
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
  return { child, url, api: createApiClient({ url: `${url}/trpc`, token, EventSource }), close: () => stopChild(child) };
}
