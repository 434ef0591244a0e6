import { defineConfig } from 'vitest/config';
import { testConfig } from '../../vitest.shared.ts';

// The tests drive the real binary against the built server (dist/main.mjs: turbo builds it first, see
// turbo.json) on a database cloned from the migrated template of the shared global setup.
export default defineConfig({ test: { ...testConfig({ database: true, timeoutMs: 30_000 }), include: ['test/**/*.test.ts'] } });
