/** What the tests and the `cluster` script share: where the built server is, and waiting for HAProxy's checks. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Haproxy } from '@asyncscope/harness/cluster';

export function serverDir(): string {
  const dir = fileURLToPath(new URL('../../server', import.meta.url));
  if (!existsSync(join(dir, 'dist', 'main.mjs'))) throw new Error(`no server build in ${dir}/dist: run \`npx --yes pnpm@10.34.8 --filter @asyncscope/server run build\``);
  return dir;
}

/** Resolves once HAProxy sees every one of `names` UP (its health checks on /readyz passed). */
export async function untilUp(haproxy: Haproxy, names: readonly string[], signal: AbortSignal, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const servers = await haproxy.servers();
    const up = new Set(servers.filter((s) => s.status === 'UP').map((s) => s.name));
    if (names.every((name) => up.has(name))) return;
    if (Date.now() > deadline) throw new Error(`HAProxy does not see ${names.join(', ')} UP after ${timeoutMs} ms: ${JSON.stringify(servers)}`);
    await sleep(100, undefined, { signal });
  }
}
