import { describe, it } from 'vitest';
import { assertChecksPass, printReport } from './figures';
import { withChaos } from './harness';
import { shedLatency } from './shed-latency';
import { skipReason } from './skip';

describe.skipIf(skipReason)('chaos 6: shed latency', () => {
  it('5,000 calls beyond 100 running + 1,000 waiting: every call beyond the admitted ones gets its 429 within 5 s, answered inside the server with p99 < 50 ms', async () => {
    const report = await withChaos(60_000, async ({ signal, start }) => shedLatency(await start(), { calls: 5000, signal }));
    printReport(report);
    assertChecksPass(report);
  });
});
