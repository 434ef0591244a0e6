/**
 * CI runs `pnpm test` twice: on the embedded PostgreSQL, then with TEST_DATABASE_URL on the machine's
 * PostgreSQL 15. The chaos suite stops and restarts its database and kills its backends, which must never
 * be done to the machine's server, and it never used TEST_DATABASE_URL anyway (it always starts its own
 * embedded PostgreSQL): a second pass would only repeat the first on the same server code, for ~2 more
 * minutes of a 2-core box. So it runs once, in the first pass, and says so in the second.
 */
import { config } from './config';

export const skipReason: string | false = config.testDatabaseUrl
  ? 'chaos suite skipped: TEST_DATABASE_URL is set (second CI pass); it ran in the first pass on its own embedded PostgreSQL, which it may stop and restart — never the machine\'s server'
  : false;

if (skipReason) process.stdout.write(`${skipReason}\n`);
