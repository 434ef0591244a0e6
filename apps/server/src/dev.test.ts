/**
 * `pnpm dev` honours the configuration as `pnpm start` does (turbo would drop the variables), the
 * dashboard's dev server forwards to that server, and Ctrl+C drains the server's calls before it stops.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { freePort } from '@asyncscope/db';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { runPnpm, waitFor, type PnpmProcess } from './test/pnpm-process';

let running: PnpmProcess | undefined;
let db: TestDatabase | undefined;
afterEach(async () => {
  await running?.kill();
  running = undefined;
  await db?.[Symbol.asyncDispose]();
  db = undefined;
});

describe('pnpm dev', () => {
  it('serves on PORT with API_TOKEN, its dashboard proxy follows, and Ctrl+C drains', async () => {
    db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 1 });
    const port = await freePort();
    const token = 'dev-token-0123456789abcdef';
    const dev = (running = runPnpm(['dev'], { PORT: String(port), API_TOKEN: token, DATABASE_URL: db.url, DATA_DIR: '/nonexistent', LOG_LEVEL: 'info' }));
    await waitFor('the banner', () => dev.output().includes('asyncscope is running'), dev, 90_000);
    expect(dev.output()).toContain(`API       http://127.0.0.1:${port}/trpc`);
    const auth = { authorization: `Bearer ${token}` };
    expect((await fetch(`http://127.0.0.1:${port}/trpc/users.list`, { headers: auth })).status).toBe(200);

    // The dashboard's dev server forwards /trpc to this server, not to the default port.
    // eslint-disable-next-line no-control-regex -- Vite colours its URL
    const vite = await waitFor('the dashboard dev server', () => /Local:\s+(http:\/\/\S+?)\/?(?:\s|\x1b)/.exec(dev.output())?.[1], dev, 60_000);
    expect((await fetch(`${vite}/trpc/users.list`, { headers: auth })).status).toBe(200);

    // A call in flight at Ctrl+C finishes: the server drains instead of being killed.
    const sleeping = fetch(`http://127.0.0.1:${port}/trpc/lab.sleep?input=${encodeURIComponent(JSON.stringify({ ms: 2500 }))}`, { headers: auth });
    await new Promise((r) => setTimeout(r, 500));
    dev.interrupt();
    expect((await sleeping).status).toBe(200);
    const { code } = await dev.exited;
    expect(dev.output()).toContain('"msg":"stopped"');
    expect(dev.output()).not.toContain('second signal');
    expect(dev.output()).not.toMatch(/Force killed/);
    expect(dev.output()).not.toMatch(/ELIFECYCLE|ERR_PNPM/); // a clean stop does not read as a failure
    expect(code).toBe(0);
  }, 150_000);
});
