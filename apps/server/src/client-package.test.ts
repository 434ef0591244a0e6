/**
 * The client as a program outside this repository gets it: packs @asyncscope/client (its build runs as
 * prepack), installs the tarball with plain npm into a temporary folder outside the workspace, typechecks
 * packages/client/examples/outside-program.ts there (strict, with the package's own declarations checked too),
 * and runs it against a live server: CRUD, a BAD_REQUEST with field errors, an aborted lab.sleep whose
 * statement leaves pg_stat_activity, a call cancelled by id, a stream read to the end and one stopped midway.
 * Skips, saying so, only when the npm registry cannot be reached.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './test/pnpm-process';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

const run = promisify(execFile);
const CLIENT_DIR = join(REPO_ROOT, 'packages/client');
const PNPM = join(REPO_ROOT, 'node_modules/pnpm/bin/pnpm.cjs');
// What the outside program installs besides the tarball, pinned like the workspace's catalog.
const OUTSIDE_DEPS = ['eventsource@4.1.1', '@types/node@20.19.43', 'typescript@5.9.3'];

/** The environment without what pnpm/npm/vitest set for this run, so npm behaves as in a fresh shell. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^(npm_|pnpm_|PNPM_|VITEST|NODE_OPTIONS|TEST_)/i.test(key)) env[key] = value;
  return { ...env, ...extra };
}

async function registryUnreachable(): Promise<string | undefined> {
  const registry = (await run('npm', ['config', 'get', 'registry'], { env: cleanEnv(), cwd: tmpdir() })).stdout.trim() || 'https://registry.npmjs.org/';
  try {
    const res = await fetch(new URL('typescript/5.9.3', registry), { signal: AbortSignal.timeout(8000) });
    return res.ok ? undefined : `the npm registry (${registry}) answered ${res.status}`;
  } catch (error) {
    return `the npm registry (${registry}) is unreachable: ${(error as Error).message}`;
  }
}

let t: TestServer;
let observer: postgres.Sql;
let outside: string;
beforeAll(async () => {
  t = await startTestServer({ lab: true });
  observer = postgres(t.database.url, { max: 1, onnotice: () => undefined });
  // Under the system's temporary folder, far from the workspace: nothing resolves through its node_modules.
  outside = mkdtempSync(join(tmpdir(), 'asyncscope-outside-'));
});
afterAll(async () => {
  await observer.end();
  await t.close();
  rmSync(outside, { recursive: true, force: true });
});

describe('the packed client, installed outside the workspace', () => {
  it('installs with npm, typechecks strictly and runs every procedure against a live server', async (ctx) => {
    const started = performance.now();
    const elapsed = () => `${Math.round((performance.now() - started) / 1000)} s`;
    const unreachable = await registryUnreachable();
    if (unreachable) {
      ctx.skip(`${unreachable}; npm cannot install the tarball's dependencies`);
      return;
    }

    // Pack (prepack builds dist/); the pnpmfile drops devDependencies and scripts from the packed manifest.
    const tgzDir = join(outside, 'tgz');
    await run(process.execPath, [PNPM, 'pack', '--pack-destination', tgzDir], {
      cwd: CLIENT_DIR, env: cleanEnv({ npm_config_pnpmfile: join(CLIENT_DIR, 'pnpm-pack.config.cjs') }), timeout: 120_000,
    });
    const tarball = join(tgzDir, readdirSync(tgzDir).find((f) => f.endsWith('.tgz')) ?? 'missing.tgz');
    console.log(`packed in ${elapsed()}`);

    // The tarball as npm sees it: the manifest, and no workspace-only package anywhere in the code or types.
    const app = join(outside, 'app');
    await run('mkdir', ['-p', join(app, 'src'), join(outside, 'unpacked')]);
    await run('tar', ['xzf', tarball, '-C', join(outside, 'unpacked')]);
    const manifestText = readFileSync(join(outside, 'unpacked/package/package.json'), 'utf8');
    const manifest = JSON.parse(manifestText) as Record<string, unknown>;
    expect(manifestText).not.toMatch(/workspace:|catalog:/);
    expect(manifest).toMatchObject({
      name: '@asyncscope/client', type: 'module', types: './dist/index.d.ts', engines: { node: '>=20' },
      exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } },
      files: expect.arrayContaining(['dist/index.js', 'dist/index.d.ts']) as unknown,
    });
    expect(manifest).not.toHaveProperty('devDependencies');
    expect(Object.keys(manifest.dependencies as object).sort()).toEqual(['@trpc/client', '@trpc/server', 'zod']);
    expect(readdirSync(join(outside, 'unpacked/package/dist')).sort()).toEqual(['index.d.ts', 'index.js', 'index.js.map']);
    for (const file of ['index.js', 'index.d.ts']) {
      expect(readFileSync(join(outside, 'unpacked/package/dist', file), 'utf8')).not.toMatch(/from\s*["']@asyncscope\/|import\(["']@asyncscope\//);
    }

    // Plain npm, as anyone would; --prefer-offline reuses npm's cache when it can.
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'asyncscope-outside', private: true, type: 'module' }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball, ...OUTSIDE_DEPS], {
      cwd: app, env: cleanEnv(), timeout: 90_000,
    });
    console.log(`installed in ${elapsed()}`);

    // Strict, NodeNext resolution (what a Node program uses). The program's @ts-expect-error lines prove the
    // types are real: were anything `any`, those lines would compile and tsc would fail on the unused directive.
    copyFileSync(join(CLIENT_DIR, 'examples/outside-program.ts'), join(app, 'src/main.ts'));
    copyFileSync(join(CLIENT_DIR, 'examples/outside-quickstart.ts'), join(app, 'src/readme-snippet.ts')); // compiled, not run
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, skipLibCheck: true,
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', types: ['node'], outDir: 'dist', lib: ['ES2023'],
      },
      include: ['src'],
    }));
    const tscBin = join(app, 'node_modules/typescript/bin/tsc');
    const failure = (error: unknown) => `${(error as { stdout?: string }).stdout ?? ''}${String(error)}`;
    expect(await run(process.execPath, [tscBin, '-p', app], { cwd: app, timeout: 60_000 }).then(() => '', failure)).toBe('');
    // Our declarations checked too (skipLibCheck off): only their own errors count — tRPC's need DOM and ws types.
    const libCheck = await run(process.execPath, [tscBin, '-p', app, '--noEmit', '--skipLibCheck', 'false', '--lib', 'ES2023,DOM'], { cwd: app, timeout: 60_000 })
      .then(() => '', failure);
    expect(libCheck.split('\n').filter((line) => line.includes('@asyncscope/client'))).toEqual([]);
    console.log(`typechecked in ${elapsed()}`);

    const { stdout } = await run(process.execPath, [join(app, 'dist/main.js')], {
      cwd: app, env: cleanEnv({ ASYNCSCOPE_URL: `${t.url}/trpc`, ASYNCSCOPE_TOKEN: TEST_TOKEN }), timeout: 30_000,
    });
    const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expect(report).toMatchObject({ ok: true, streamed: 5, firstPage: 1, afterDelete: 'NOT_FOUND', fieldErrors: { email: expect.any(Array) as unknown } });
    // The server's own word was the program's evidence; the database's is ours: no statement left behind.
    const left = await observer`select pid, query from pg_stat_activity where datname = current_database() and application_name = 'test-server' and state = 'active'`;
    expect(left).toEqual([]);
    console.log(`ran in ${elapsed()}: ${JSON.stringify(report)}`);
  }, 150_000);
});
