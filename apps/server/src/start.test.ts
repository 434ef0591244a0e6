/**
 * `pnpm start` as the README runs it, stopped as a terminal's Ctrl+C stops it: a clean stop ends quietly
 * with exit 0, a restart of an unchanged checkout rebuilds nothing, and the embedded database can be
 * reached with the psql URL the banner prints, on the same port after a restart.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '@asyncscope/db';
import { runPnpm, waitFor, type PnpmProcess } from './test/pnpm-process';

const running: PnpmProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) await p.kill();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function start(env: Record<string, string>): Promise<PnpmProcess> {
  const p = runPnpm(['start'], { LOG_LEVEL: 'info', ...env });
  running.push(p);
  await waitFor('the banner', () => p.output().includes('asyncscope is running'), p, 120_000);
  return p;
}

async function stop(p: PnpmProcess): Promise<number | null> {
  p.interrupt();
  return (await p.exited).code;
}

const psqlUrl = (p: PnpmProcess) => /^ {2}psql\s+psql '(postgres:\/\/[^']+)'/m.exec(p.output())?.[1];

describe('pnpm start', () => {
  it('ends quietly with exit 0 on a clean Ctrl+C; a restart rebuilds nothing and keeps the database port', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'asyncscope-start-'));
    dirs.push(dataDir);
    const env = { PORT: String(await freePort()), DATA_DIR: dataDir };

    const first = await start(env);
    const url = psqlUrl(first);
    expect(url).toMatch(/^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/asyncscope$/);
    const sql = postgres(url ?? '', { max: 1, onnotice: () => undefined });
    try {
      expect(await sql<{ ok: number }[]>`select 1 as ok`).toEqual([{ ok: 1 }]);
    } finally {
      await sql.end();
    }
    // The password reaches the terminal once, in the banner; never a JSON log line.
    const password = decodeURIComponent(new URL(url ?? 'postgres://x').password);
    const logLines = first.output().split('\n').filter((line) => line.trimStart().startsWith('{'));
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.filter((line) => line.includes(password))).toEqual([]);

    expect(await stop(first)).toBe(0);
    expect(first.output()).toContain('"msg":"stopped"');
    expect(first.output()).not.toMatch(/ERR_PNPM|ELIFECYCLE|Command failed/);

    const second = await start(env);
    // Both builds came from turbo's cache: nothing was rebuilt.
    expect(second.output()).toMatch(/@asyncscope\/server:build: cache hit/);
    expect(second.output()).toMatch(/@asyncscope\/dashboard:build: cache hit/);
    expect(new URL(psqlUrl(second) ?? 'postgres://x').port).toBe(new URL(url ?? 'postgres://x').port);
    expect(await stop(second)).toBe(0);
    expect(second.output()).not.toMatch(/ERR_PNPM|ELIFECYCLE|Command failed/);
  }, 300_000);
});
