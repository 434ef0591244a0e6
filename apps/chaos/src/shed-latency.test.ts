import { describe, expect, it } from 'vitest';
import { printReport } from './figures';
import { withChaos } from './harness';
import { shedLatency } from './shed-latency';
import { skipReason } from './skip';

describe.skipIf(skipReason)('chaos 6: shed latency', () => {
  it('5,000 calls beyond 100 running + 1,000 waiting: 429s answered inside the server with p99 < 50 ms, at the client within 1.5 s', async () => {
    const report = await withChaos(60_000, async ({ signal, start }) => shedLatency(await start(), { calls: 5000, signal }));
    printReport(report);
    expect(report.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual([]);
  });
});
