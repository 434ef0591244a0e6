// Sums the JSON results every package's vitest run wrote, and prints one closing line for the whole suite.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
let passed = 0, failed = 0, skipped = 0;
const missing = [];
// CI keeps only the tail of the log: name each failed test here, at the end, with its first message lines.
const failures = [];
for (const group of ['apps', 'packages']) {
  for (const name of (await import('node:fs')).readdirSync(join(root, group))) {
    const pkg = join(root, group, name);
    if (!existsSync(join(pkg, 'package.json'))) continue;
    const scripts = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).scripts ?? {};
    if (!scripts.test) continue;
    const file = join(pkg, 'test-results', 'vitest.json');
    if (!existsSync(file)) { missing.push(`${group}/${name}`); continue; }
    const r = JSON.parse(readFileSync(file, 'utf8'));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    skipped += r.numPendingTests + (r.numTodoTests ?? 0);
    for (const file of r.testResults ?? []) {
      for (const t of file.assertionResults ?? []) {
        if (t.status !== 'failed') continue;
        const message = (t.failureMessages ?? []).join('\n').split('\n').slice(0, 6).join('\n    ');
        failures.push(`${group}/${name} ${file.name.slice(pkg.length + 1)} > ${t.fullName}\n    ${message}`);
      }
      if (file.status === 'failed' && !(file.assertionResults ?? []).some((t) => t.status === 'failed')) {
        failures.push(`${group}/${name} ${file.name.slice(pkg.length + 1)}: ${String(file.message ?? 'failed to run').split('\n').slice(0, 6).join('\n    ')}`);
      }
    }
  }
}
if (failures.length) console.log(`failed:\n${failures.map((f) => `  ${f}`).join('\n')}`);
if (missing.length) console.log(`no test results from: ${missing.join(', ')}`);
console.log(`${passed} passed, ${failed + missing.length} failed, ${skipped} skipped`);
process.exit(failed + missing.length > 0 ? 1 : 0);
