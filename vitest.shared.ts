/** Settings every package's vitest config shares: results also go to JSON, which `pnpm test` sums up. */
import { fileURLToPath } from 'node:url';
import type { ViteUserConfig } from 'vitest/config';

export const dbGlobalSetup = fileURLToPath(new URL('./packages/db/src/global-setup.ts', import.meta.url));

export function testConfig(options: { database?: boolean; timeoutMs?: number } = {}): ViteUserConfig['test'] {
  return {
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
    globalSetup: options.database ? [dbGlobalSetup] : [],
    testTimeout: options.timeoutMs ?? 20_000,
    hookTimeout: 90_000,
  };
}
