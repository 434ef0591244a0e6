/**
 * Builds the server that `pnpm start` runs: src/main.ts and our workspace packages (TypeScript sources)
 * bundled into dist/main.mjs; every npm package stays external and loads from this package's
 * node_modules, so each one the bundle imports must be a dependency here (the build names any that is not).
 *
 * Why a bundle rather than tsx at run time: tsx compiles in a loader thread with its own V8 heap (about
 * 40 MB of RSS) and keeps every function's name with a helper that gives each closure a property
 * dictionary of its own. With 10,000 calls in flight both show in the server's peak memory.
 */
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';
import { build } from 'esbuild';
import { nodeBundleOptions, npmPackagesExternal } from '../../scripts/bundle.mjs';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const dependencies = new Set(Object.keys(pkg.dependencies ?? {}));
const missing = new Map(); // package → a file that imports it

await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/main.mjs',
  ...nodeBundleOptions,
  plugins: [npmPackagesExternal({ dependencies, missing })],
});

if (missing.size > 0) {
  const lines = [...missing].map(([name, importer]) => `${name} (imported by ${importer})`);
  process.stderr.write(`The bundle loads these at run time; add them to apps/server/package.json dependencies:\n  ${lines.join('\n  ')}\n`);
  process.exit(1);
}
