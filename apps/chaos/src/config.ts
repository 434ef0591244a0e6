/** The chaos suite's settings, read from the environment in one place (like apps/bench, a tool, not a library). */
// eslint-disable-next-line no-restricted-properties -- the suite's only environment read
const env = process.env;

export const config = {
  /** An apps/server folder whose dist/ is under test (e.g. another worktree's); this checkout's when unset. */
  serverDir: env.CHAOS_SERVER_DIR || undefined,
  /** Set in CI's second `pnpm test` pass (the machine's PostgreSQL): the suite skips itself then. */
  testDatabaseUrl: env.TEST_DATABASE_URL || undefined,
  /** Comma-separated scenario numbers for the standalone runner (default: all). */
  scenarios: env.CHAOS_SCENARIOS || undefined,
};
