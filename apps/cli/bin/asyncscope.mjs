#!/usr/bin/env node
// Runs the build (dist/asyncscope.mjs: fast to start) when it is up to date, else the TypeScript sources
// through tsx, so that a checkout runs without a build and an edit is never hidden by a stale one.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(appDir, 'dist', 'asyncscope.mjs');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

let useBuild = false;
try {
  useBuild = statSync(built).mtimeMs >= newestSource(join(appDir, 'src'));
} catch {
  // No build: run the sources.
}
if (useBuild) {
  await import(built);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
