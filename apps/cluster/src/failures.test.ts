/**
 * Failures of a cluster's parts mid-run: an instance killed with SIGKILL (no drain, no goodbye), and the broker
 * restarted. Each test has a cluster of its own (what it breaks stays broken for the rest of its life).
 */
import { apiErrorCode, isApiError } from '@asyncscope/client';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { printFigure, sessionsOf, skipReason, startCluster, subscribe, until, untilLive } from './test-cluster';
import { untilUp } from './local';

/** Runs `query` on a short-lived observer connection (not one of the instances'). */
async function observe<T>(url: string, query: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined, idle_timeout: 1, connection: { application_name: 'asyncscope-cluster-observer' } });
  try {
    return await query(sql);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

describe.skipIf(skipReason !== false)('failures', () => {
  it('an instance killed mid-run: its calls fail typed, the others go on, it is shown gone, its sessions end, a new one joins', async () => {
    await using cluster = await startCluster(3);
    const { signal } = cluster;
    const [watched, , victim] = cluster.instances.list();
    if (!watched || !victim) throw new Error('three instances expected');
    const watcher = subscribe(cluster.direct(watched));
    try {
      await untilLive(cluster, watcher);
      const ids = Array.from({ length: 45 }, (_, i) => `killrun-${i}`);
      const outcomes = ids.map((callId) =>
        cluster.api.lab.sleep.query({ ms: 6000 }, { context: { transport: 'single', callId } }).then(
          () => ({ ok: true as const }),
          (error: unknown) => ({ ok: false as const, typed: isApiError(error), code: apiErrorCode(error), message: error instanceof Error ? error.message : String(error) }),
        ),
      );
      const ownerOf = (id: string) => watcher.of(id)[0]?.instance;
      await until('every call runs somewhere', () => ids.every((id) => watcher.of(id).some((h) => h.type === 'statement.started')), signal, 20_000);
      // A write the victim acknowledged, and one it holds open when it dies: a lab.slowWrite inserts its first row,
      // then sleeps 20 s inside the transaction (its session holds the row lock and the transaction all that time).
      const label = `killed-${Date.now().toString(36)}`;
      const victimApi = cluster.direct(victim);
      expect(await victimApi.lab.slowWrite.mutate({ label: `${label}-acked`, ms: 0 }, { context: { transport: 'single' } })).toEqual({ rows: 2 });
      const open = victimApi.lab.slowWrite.mutate({ label: `${label}-open`, ms: 20_000 }, { context: { transport: 'single' } }).then(
        () => 'answered',
        () => 'failed',
      );
      const inTransaction = () => observe(cluster.db.url, async (sql) => (await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where application_name = ${victim.applicationName} and backend_xid is not null and query like '%pg_sleep%'`)[0]?.n ?? 0);
      await until('the slow write holds its transaction', async () => (await inTransaction()) === 1, signal, 10_000);
      await cluster.instances.kill(victim);
      const killedAt = Date.now();
      // Its Postgres sessions end within seconds of the SIGKILL, well before the slow write's statement would
      // have ended by itself (20 s): none left — so none `idle in transaction`, none still running a statement for
      // a client that is gone, holding its locks. The pool's client_connection_check_interval is what makes
      // Postgres notice the closed socket mid-statement; without it the session runs on to the end of its sleep.
      let left: { state: string; query: string }[] = [];
      await until('its sessions ended', async () => (left = await sessionsOf(cluster.db.url, victim.applicationName)).length === 0, signal, 5_000,
        () => `sessions left: ${JSON.stringify(left)}`);
      printFigure('the killed instance\'s sessions gone after (ms)', String(Date.now() - killedAt));
      expect(await open).toBe('failed');
      // The transaction rolled back: the acknowledged write is there, whole; nothing of the open one remains.
      const rows = await observe(cluster.db.url, (sql) => sql<{ label: string; n: number }[]>`
        select label, count(*)::int as n from lab_writes where label in (${`${label}-acked`}, ${`${label}-open`}) group by label`);
      expect(rows).toEqual([{ label: `${label}-acked`, n: 2 }]);
      // In flight on the victim when it died: its calls not settled before (a slow start can let a few finish).
      const victims = ids.filter((id) => ownerOf(id) === victim.id && !watcher.of(id).some((h) => h.type === 'settled'));
      expect(victims.length).toBeGreaterThan(0);

      const settled = await Promise.all(outcomes);
      for (const [k, id] of ids.entries()) {
        const outcome = settled[k];
        // The victim's calls fail at the client, typed: HAProxy's 502 in tRPC's error shape (deploy/haproxy.cfg),
        // never replayed elsewhere; every other call finishes.
        if (victims.includes(id)) expect(outcome).toMatchObject({ ok: false, typed: true, code: 'BAD_GATEWAY' });
        else expect(outcome).toEqual({ ok: true });
      }

      const seen = new Map<string, number>();
      for (const [k, id] of ids.entries()) {
        const outcome = settled[k];
        if (victims.includes(id) && outcome && !outcome.ok) seen.set(`${outcome.code ?? 'no code'}: ${outcome.message.slice(0, 80)}`, (seen.get(`${outcome.code ?? 'no code'}: ${outcome.message.slice(0, 80)}`) ?? 0) + 1);
      }
      printFigure(`the killed instance's ${victims.length} calls failed at the client with`, [...seen].map(([text, n]) => `${n} × ${text}`).join('; '));

      // Shown gone by the instance a dashboard is connected to.
      await until('the victim shown gone', async () => {
        const stats = await cluster.direct(watched).activity.stats.query();
        return stats.instances.some((i) => i.instance === victim.id && i.state === 'gone');
      }, signal, 10_000);
      // New calls through the balancer still succeed (HAProxy took it out of rotation).
      const after = await Promise.all(Array.from({ length: 20 }, () => cluster.api.users.list.query({ limit: 1 }, { context: { transport: 'single' } }).then(() => 'ok', (e: unknown) => apiErrorCode(e) ?? String(e))));
      expect(after).toEqual(after.map(() => 'ok'));

      // A new instance joins: behind the balancer, and in every instance's view.
      const fresh = await cluster.instances.add();
      await cluster.haproxy.addBackend({ name: fresh.id, url: fresh.url });
      await untilUp(cluster.haproxy, [fresh.id], signal);
      await until('the new instance shown up', async () => {
        const stats = await cluster.direct(watched).activity.stats.query();
        return stats.instances.some((i) => i.instance === fresh.id && i.state === 'up');
      }, signal, 10_000);
      const joined = Array.from({ length: 40 }, (_, i) => `joined-${i}`);
      await Promise.all(joined.map((callId) => cluster.api.users.list.query({ limit: 1 }, { context: { transport: 'single', callId } })));
      await until('the new instance serves calls', () => joined.some((id) => ownerOf(id) === fresh.id), signal, 10_000);
    } finally {
      watcher.close();
    }
  }, 120_000);

  it('a broker restart mid-run: no call fails, events resume, the gap is reported as missed', async () => {
    await using cluster = await startCluster(2);
    const { signal } = cluster;
    const [watched] = cluster.instances.list();
    if (!watched) throw new Error('an instance expected');
    const watcher = subscribe(cluster.direct(watched));
    try {
      await untilLive(cluster, watcher);
      // Load through the balancer for the whole restart: 8 loops of calls.
      let stop = false;
      const failures: string[] = [];
      let calls = 0;
      const loops = Array.from({ length: 8 }, async () => {
        while (!stop) {
          calls++;
          await cluster.api.users.list.query({ limit: 1 }, { context: { transport: 'single' } }).catch((error: unknown) => { failures.push(apiErrorCode(error) ?? String(error)); });
        }
      });
      await sleep(1000, undefined, { signal });
      await cluster.nats.restart({ downMs: 1500 });
      const restartedAt = Date.now();
      await sleep(3000, undefined, { signal });
      stop = true;
      await Promise.all(loops);
      expect(failures).toEqual([]);
      expect(calls).toBeGreaterThan(50);

      // Events resume: hops produced after the broker came back reach the subscriber.
      const marker = `after-restart-${Date.now()}`;
      await until('events resume', async () => {
        await cluster.api.users.list.query({ limit: 1 }, { context: { transport: 'single', callId: marker } });
        return watcher.of(marker).some((h) => h.type === 'settled' && h.at >= restartedAt);
      }, signal, 15_000);
      // The gap: every event an instance could not publish is counted, and reported to the subscriber as missed.
      const dropped = async () => {
        const all = await Promise.all(cluster.instances.list().map(async (i) => (await cluster.direct(i).activity.stats.query()).events.dropped));
        return all.reduce((a, b) => a + b, 0);
      };
      const lost = await dropped();
      expect(lost).toBeGreaterThan(0);
      await until('the gap reported as missed', () => watcher.missed() === lost, signal, 10_000, () => `missed ${watcher.missed()}, dropped ${lost}`);
    } finally {
      watcher.close();
    }
  }, 120_000);
});
