import { defineConfig } from 'drizzle-kit';

// Only used by `pnpm --filter @asyncscope/db generate` to write SQL migrations, which are committed.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/schema.ts',
  out: './migrations',
});
