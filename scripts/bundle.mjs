/**
 * What the three esbuild bundles (apps/server, apps/cli, packages/client) share: one set of output options,
 * and the plugin that keeps npm packages as imports while our workspace packages are bundled in.
 */
import { builtinModules } from 'node:module';

/** An ES module for Node 20 with a linked source map. */
export const nodeBundleOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
};

const builtins = new Set(builtinModules);
const packageName = (path) => path.split('/').slice(0, path.startsWith('@') ? 2 : 1).join('/');

/** Ours (`@asyncscope/*`): TypeScript sources, bundled rather than imported. */
export const isWorkspacePackage = (path) => path.startsWith('@asyncscope/');

/**
 * Keeps every npm package an import (loaded at run time from the package's node_modules) and records in
 * `missing` (package → importer) each one that is not among `dependencies`, so the build can name it.
 * Node's own modules are external too, unless `nodeBuiltins: 'forbid'` (a bundle for browsers as well).
 */
export function npmPackagesExternal({ dependencies, missing, nodeBuiltins = 'allow' }) {
  return {
    name: 'npm-packages-external',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, ({ path, importer }) => {
        if (isWorkspacePackage(path)) return undefined;
        const name = packageName(path);
        const builtin = path.startsWith('node:') || builtins.has(name);
        if (builtin && nodeBuiltins === 'forbid') missing.set(path, importer);
        else if (!builtin && !dependencies.has(name) && !missing.has(name)) missing.set(name, importer);
        return { external: true };
      });
    },
  };
}
