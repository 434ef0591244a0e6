import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { startEmbeddedPostgres } from './embedded';

function postgresProcessesFor(dir: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(dir) && l.includes('postgres'));
}

describe('startEmbeddedPostgres', () => {
  it('keeps data and its port across restarts, and leaves no process behind', async () => {
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
      expect(second.port).toBe(first.port); // the port of the last start, which is free
      expect(postgresProcessesFor(dir)).toEqual([]);

      // Taken by someone else meanwhile: another port, kept from then on.
      const squatter = createServer();
      squatter.listen(first.port, '127.0.0.1');
      await once(squatter, 'listening');
      try {
        const third = await startEmbeddedPostgres({ dataDir: dir });
        await third.stop();
        expect(third.port).not.toBe(first.port);
        expect((JSON.parse(readFileSync(join(dir, 'credentials.json'), 'utf8')) as { port: number }).port).toBe(third.port);
      } finally {
        await new Promise((r) => squatter.close(r));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
