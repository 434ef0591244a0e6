import { describe, it } from 'vitest';
import { assertChecksPass, printReport } from './figures';
import { withChaos } from './harness';
import { restartPostgres } from './pg-restart';
import { skipReason } from './skip';

describe.skipIf(skipReason)('chaos 2: PostgreSQL stop / start under load', () => {
  it('5 runs: 0 crashes, 0 wedges, readyz follows, serving resumes within ~1 s', async () => {
    const report = await withChaos(140_000, async ({ pg, signal, start }) => restartPostgres(pg, () => start(), { runs: 5, outageMs: 1500, signal }));
    printReport(report);
    assertChecksPass(report);
  });
});
