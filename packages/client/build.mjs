/**
 * Builds the installable package: dist/index.js (ESM, with a source map) and dist/index.d.ts, both
 * self-contained — our workspace packages (@asyncscope/concurrency, contract, api's types) are bundled in,
 * npm packages stay imports and must be dependencies here (the build names any that is not).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import process from 'node:process';
import { fileURLToPath, URL } from 'node:url';
import { build } from 'esbuild';
import { rollup } from 'rollup';
import { dts } from 'rollup-plugin-dts';
import { isWorkspacePackage as isOurs, nodeBundleOptions, npmPackagesExternal } from '../../scripts/bundle.mjs';
import { routerTypes } from './scripts/router-types.mjs';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const dependencies = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
const missing = new Map(); // package → a file that imports it

rmSync(new URL('./dist', import.meta.url), { recursive: true, force: true });

await build({
  entryPoints: ['src/index.ts'],
  outfile: 'dist/index.js',
  ...nodeBundleOptions,
  platform: 'neutral', // browsers and Node alike: nothing Node-only may slip in
  target: 'es2022',
  plugins: [npmPackagesExternal({ dependencies, missing, nodeBuiltins: 'forbid' })],
});

// Declarations: everything of ours inlined, with `@asyncscope/api` (the server) replaced by the router type
// clients need (scripts/router-types.mjs); npm packages stay imports.
const publishedRouter = fileURLToPath(new URL('./node_modules/.cache/asyncscope-client/app-router.ts', import.meta.url));
mkdirSync(new URL('./node_modules/.cache/asyncscope-client', import.meta.url), { recursive: true });
writeFileSync(publishedRouter, routerTypes({ check: false })); // src/published-router.test.ts checks it
const bundle = await rollup({
  input: 'src/index.ts',
  plugins: [
    {
      name: 'published-router',
      resolveId(source) {
        if (source === '@asyncscope/api') return publishedRouter;
        return null;
      },
    },
    dts({ respectExternal: true, tsconfig: 'tsconfig.build.json' }),
  ],
  external: (id) => /^[^./]/.test(id) && !isOurs(id) && !id.startsWith('/'),
  onwarn(warning, warn) {
    if (warning.code === 'UNRESOLVED_IMPORT' && isOurs(warning.exporter ?? '')) missing.set(warning.exporter, warning.id);
    warn(warning);
  },
});
await bundle.write({ file: 'dist/index.d.ts', format: 'es' });
await bundle.close();

for (const [name, importer] of missing) process.stderr.write(`${name} (imported by ${importer}) must be a dependency of @asyncscope/client, or bundled\n`);
if (missing.size > 0) process.exit(1);
