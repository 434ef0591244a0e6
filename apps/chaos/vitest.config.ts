import { defineConfig } from 'vitest/config';
import { testConfig } from '../../vitest.shared.ts';

// One scenario file at a time: each starts its own PostgreSQL and server and loads the 2 cores on purpose.
export default defineConfig({ test: { ...testConfig({ timeoutMs: 150_000 }), fileParallelism: false } });
