import { describe, it } from 'vitest';
import { assertChecksPass, printReport } from './figures';
import { greedyBatch } from './greedy-batch';
import { withChaos } from './harness';
import { skipReason } from './skip';

describe.skipIf(skipReason)('chaos 5: greedy batch', () => {
  it('1,000 lab.slowWrite in one batch: the normal client gets ≥ 95% through, the batch runs whole or gets a typed refusal', async () => {
    const report = await withChaos(60_000, async ({ signal, start }) => greedyBatch(await start(), { calls: 1000, slowWriteMs: 200, signal }));
    printReport(report);
    assertChecksPass(report);
  });
});
