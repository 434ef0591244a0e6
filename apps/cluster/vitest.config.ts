import { defineConfig } from 'vitest/config';
import { testConfig } from '../../vitest.shared.ts';

// One file at a time: each runs its own cluster (nats-server, HAProxy, 3 servers) on a 2-core machine. The
// shared global setup gives one PostgreSQL (TEST_DATABASE_URL or an embedded one) with a migrated template.
export default defineConfig({ test: { ...testConfig({ database: true, timeoutMs: 60_000 }), fileParallelism: false } });
