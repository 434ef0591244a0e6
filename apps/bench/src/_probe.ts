import { openBenchDatabase } from './bench-db';
import { spawnChild, stopChild, waitUntilOk } from './children';
import { freePort } from '@asyncscope/db';
import { execFileSync } from 'node:child_process';
const signal = new AbortController().signal;
const db = await openBenchDatabase({ users: 10000, signal });
const port = await freePort();
const token = 'x'.repeat(20);
const child = spawnChild({ name: 'trpc', args: ['--import', 'tsx', 'src/main.ts'], cwd: '/work/main/apps/server', env: { ...process.env, PORT: String(port), DATABASE_URL: db.url, API_TOKEN: token, LOG_LEVEL: process.argv[2] ?? 'warn' } });
try {
await waitUntilOk(child, `http://127.0.0.1:${port}/readyz`, { timeoutMs: 60000, signal });
const q = (p: string) => execFileSync('curl', ['-sS', '-i', '-H', `Authorization: Bearer ${token}`, `http://127.0.0.1:${port}${p}`], { encoding: 'utf8' });
console.log(q('/trpc/users.byId?input=' + encodeURIComponent('{"id":5}')));
console.log(q('/trpc/users.list?input=' + encodeURIComponent('{"limit":2,"offset":0}')));
console.log(q('/trpc/users.byId?input=' + encodeURIComponent('{"id":50000}')));
console.log(q('/trpc/users.list'));
console.log(q('/readyz'));
} finally {
await stopChild(child);
await db.close();
}
