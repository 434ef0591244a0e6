/** This checkout's API server, started the way every benchmark starts it. */
import { fileURLToPath } from 'node:url';
import { startApiServer, type ApiServer, type ApiServerOptions } from '@asyncscope/harness/api-server';

const serverDir = fileURLToPath(new URL('../../server', import.meta.url));

/**
 * `startApiServer` on apps/server's build. BENCH_SERVER_NODE_ARGS adds node flags for an investigation
 * (e.g. `--cpu-prof`, `--import ./probe.mjs`).
 */
export function startOwnServer(
  databaseUrl: string,
  env: Record<string, string>,
  signal: AbortSignal,
  options: Omit<ApiServerOptions, 'serverDir' | 'nodeArgs'> = {},
): Promise<ApiServer> {
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  return startApiServer(databaseUrl, env, signal, { ...options, serverDir, nodeArgs });
}

export type { ApiServer };
