import { describe, it } from 'vitest';
import { assertChecksPass, printReport } from './figures';
import { withChaos } from './harness';
import { skipReason } from './skip';
import { slowBodies } from './slow-bodies';

describe.skipIf(skipReason)('chaos 4: slow bodies', () => {
  it('120 trickling bodies: the normal client gets ≥ 95% through, the slow ones get 408', async () => {
    const report = await withChaos(60_000, async ({ signal, start }) => slowBodies(await start(), { connections: 120, signal }));
    printReport(report);
    assertChecksPass(report);
  });
});
