import { describe, it } from 'vitest';
import { assertChecksPass, printReport } from './figures';
import { withChaos } from './harness';
import { killConnections } from './kill-connections';
import { skipReason } from './skip';

describe.skipIf(skipReason)('chaos 1: killing every pool connection under load', () => {
  it('20 rounds: no exit, no wedge, 503s only, no acknowledged write lost', async () => {
    const report = await withChaos(140_000, async ({ pg, signal, start }) => killConnections(pg, () => start(), { rounds: 20, signal }));
    printReport(report);
    assertChecksPass(report);
  });
});
