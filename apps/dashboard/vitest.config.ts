import { defineConfig } from 'vitest/config';
import { testConfig } from '../../vitest.shared.ts';

// Unit tests (src/**/*.test.ts, node environment) and end-to-end tests (e2e/*.test.ts: the real server,
// a real PostgreSQL and Chromium) in one run. The e2e tests use dist/, which turbo builds before `test`.
export default defineConfig({
  test: {
    ...testConfig({ database: true, timeoutMs: 60_000 }),
    include: ['src/**/*.test.ts', 'e2e/**/*.test.ts'],
    environment: 'node',
  },
});
