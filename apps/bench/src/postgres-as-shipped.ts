/**
 * postgres.js exactly as published, for the "as shipped" baseline.
 *
 * The workspace installs postgres@3.4.9 with patches/postgres@3.4.9.patch, and pnpm applies
 * `patchedDependencies` by package name and version wherever that package lands: an npm alias
 * (`"postgres-as-shipped": "npm:postgres@3.4.9"`) resolves to the same patched folder (checked with
 * pnpm 10.34.8: both links point at `postgres@3.4.9_patch_hash=…`). So the bench fetches the published
 * tarball itself (`npm pack`, the registry as configured for npm), checks it against the integrity that
 * pnpm-lock.yaml pins for that version, and unpacks it into a cache folder: later runs need no network.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const workspaceRoot = fileURLToPath(new URL('../../../', import.meta.url));
const cacheRoot = fileURLToPath(new URL('../node_modules/.cache/asyncscope-bench/', import.meta.url));
/** Every hunk of our patch is marked so in the source (patches/README.md). */
const PATCH_MARK = 'asyncscope patch';

/** The installed (patched) driver's folder and version: the workspace's own copy. */
export function installedPostgres(): { dir: string; version: string } {
  // Its `exports` hide package.json: resolve the entry point and walk up to the package's folder.
  let dir = dirname(createRequire(import.meta.url).resolve('postgres'));
  for (;;) {
    const pkgJson = join(dir, 'package.json');
    if (existsSync(pkgJson)) {
      const { name, version } = JSON.parse(readFileSync(pkgJson, 'utf8')) as { name?: string; version: string };
      if (name === 'postgres') return { dir, version };
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the installed postgres package');
    dir = up;
  }
}

/** The integrity pnpm-lock.yaml records for postgres@<version>: what the registry published. */
export function lockedIntegrity(version: string): string {
  const lock = readFileSync(join(workspaceRoot, 'pnpm-lock.yaml'), 'utf8');
  const escaped = version.replace(/\./g, '\\.');
  const match = new RegExp(`^  postgres@${escaped}:\\n    resolution: \\{integrity: (sha512-[A-Za-z0-9+/=]+)\\}`, 'm').exec(lock);
  if (!match?.[1]) throw new Error(`pnpm-lock.yaml has no integrity for postgres@${version}`);
  return match[1];
}

export interface ShippedPostgres {
  version: string;
  integrity: string;
  /** The package folder (with package.json, src/, cjs/). */
  dir: string;
  /** The ESM entry point, for `import()`. */
  entry: string;
}

/** Whether the driver's queue carries our patch (row 9 of patches/README.md). */
export function hasOurPatch(packageDir: string): boolean {
  return readFileSync(join(packageDir, 'src', 'queue.js'), 'utf8').includes(PATCH_MARK);
}

/** Fetches (once) and returns the published postgres.js of the installed version, verified and patch-free. */
export async function shippedPostgres(signal: AbortSignal): Promise<ShippedPostgres> {
  const { version } = installedPostgres();
  const integrity = lockedIntegrity(version);
  // The folder's name carries the checksum, so a new pin never reuses an old copy.
  const dir = join(cacheRoot, `postgres-${version}-${createHash('sha256').update(integrity).digest('hex').slice(0, 16)}`);
  const pkgDir = join(dir, 'package');
  const entry = join(pkgDir, 'src', 'index.js');
  if (!existsSync(join(dir, 'verified'))) {
    await mkdir(cacheRoot, { recursive: true });
    const tmp = `${dir}.tmp-${randomBytes(4).toString('hex')}`;
    await mkdir(tmp, { recursive: true });
    try {
      const { stdout } = await run('npm', ['pack', `postgres@${version}`, '--pack-destination', tmp, '--json', '--silent'], { signal, maxBuffer: 16 * 2 ** 20 });
      const [packed] = JSON.parse(stdout) as { filename: string }[];
      if (!packed) throw new Error('npm pack printed no file');
      const tarball = join(tmp, packed.filename);
      const actual = `sha512-${createHash('sha512').update(await readFile(tarball)).digest('base64')}`;
      if (actual !== integrity) throw new Error(`postgres@${version} from the registry has integrity ${actual}, pnpm-lock.yaml pins ${integrity}`);
      await run('tar', ['-xzf', tarball, '-C', tmp], { signal });
      await rm(tarball);
      await writeFile(join(tmp, 'verified'), `${integrity}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  if (hasOurPatch(pkgDir)) throw new Error(`${pkgDir} carries our patch: it is not the driver as shipped`);
  return { version, integrity, dir: pkgDir, entry };
}
