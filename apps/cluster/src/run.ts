/**
 * `npx pnpm --filter @asyncscope/cluster-tests run cluster`: a local cluster to look at — a nats-server (JetStream,
 * temp store), N built server instances on their own ports and HAProxy (deploy/haproxy.cfg) in front, on
 * DATABASE_URL or, without it, an embedded PostgreSQL in a temp folder. Prints where to point a browser and
 * runs until Ctrl+C, then stops everything (instances drain first).
 *
 *   CLUSTER_INSTANCES  how many (default 3)
 *   DATABASE_URL       an existing PostgreSQL (its database gets migrated)
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { startEmbeddedPostgres } from '@asyncscope/db';
import { runBench } from '@asyncscope/harness/children';
import { missingBinaries, startHaproxy, startInstances, startNats } from '@asyncscope/harness/cluster';
import { serverDir, untilUp } from './local';

// eslint-disable-next-line no-restricted-properties -- a tool's settings, read here only
const env = process.env;

runBench(async (signal) => {
  const missing = missingBinaries();
  if (missing) throw new Error(missing);
  const n = Number(env.CLUSTER_INSTANCES || 3);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new Error('CLUSTER_INSTANCES must be a whole number from 1 to 16');
  const cleanups: (() => Promise<void>)[] = [];
  try {
    let databaseUrl = env.DATABASE_URL;
    if (!databaseUrl) {
      const dir = await mkdtemp(join(tmpdir(), 'asyncscope-cluster-pg-'));
      await chmod(dir, 0o755);
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const pg = await startEmbeddedPostgres({ dataDir: dir, ephemeral: true });
      cleanups.push(() => pg.stop());
      databaseUrl = pg.url;
    }
    const nats = await startNats({ signal });
    cleanups.push(() => nats.stop());
    const instances = await startInstances(n, { databaseUrl, eventsUrl: nats.url, serverDir: serverDir(), env: { LOG_LEVEL: 'warn' }, signal });
    cleanups.push(() => instances.close());
    const haproxy = await startHaproxy({ backends: instances.list().map((i) => ({ name: i.id, url: i.url })), signal });
    cleanups.push(() => haproxy.stop());
    await untilUp(haproxy, instances.list().map((i) => i.id), signal);
    process.stdout.write(
      [
        '',
        `  asyncscope cluster: ${n} instances behind HAProxy, events on ${nats.url}`,
        `  Dashboard  ${haproxy.url}/#token=${encodeURIComponent(instances.token)}`,
        `  API        ${haproxy.url}/trpc   (token ${instances.token})`,
        ...instances.list().map((i) => `  ${i.id}  ${i.url}`),
        '  Stop       Ctrl+C',
        '',
      ].join('\n') + '\n',
    );
    await once(signal, 'abort').catch(() => undefined);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => { process.stderr.write(`cluster: ${String(error)}\n`); });
  }
});
