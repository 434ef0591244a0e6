import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { startEmbeddedPostgres } from './embedded';

function postgresProcessesFor(dir: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(dir) && l.includes('postgres'));
}

describe('startEmbeddedPostgres', () => {
  it('keeps data across restarts and leaves no process behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'asyncscope-embedded-'));
    try {
      const first = await startEmbeddedPostgres({ dataDir: dir });
      const sql1 = postgres(first.url, { max: 1, onnotice: () => undefined });
      await sql1`create table kept (v text)`;
      await sql1`insert into kept values ('still here')`;
      await sql1.end();
      await first.stop();
      expect(postgresProcessesFor(dir)).toEqual([]);

      const second = await startEmbeddedPostgres({ dataDir: dir });
      const sql2 = postgres(second.url, { max: 1 });
      const rows = await sql2<{ v: string }[]>`select v from kept`;
      await sql2.end();
      await second.stop();
      expect(rows.map((r) => r.v)).toEqual(['still here']);
      expect(postgresProcessesFor(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
