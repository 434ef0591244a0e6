/**
 * Builds dist/asyncscope.mjs: the CLI and everything it imports in one file, so it starts in a fraction of
 * the time tsx takes to compile the sources on each run (a command-line tool is started over and over).
 * bin/asyncscope.mjs runs it when it is newer than every source, and the sources through tsx otherwise.
 */
import { build } from 'esbuild';
import { nodeBundleOptions } from '../../scripts/bundle.mjs';

await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/asyncscope.mjs',
  ...nodeBundleOptions,
  // ws loads these optional native speed-ups only if installed.
  external: ['bufferutil', 'utf-8-validate'],
  // Bundled CommonJS (commander, ws, cli-progress) calls require() for Node's own modules.
  // The shebang makes the bundle itself the packed package's bin.
  banner: { js: "#!/usr/bin/env node\nimport { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
});
