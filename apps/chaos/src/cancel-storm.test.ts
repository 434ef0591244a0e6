import { describe, it } from 'vitest';
import { stormScenario, STORM_SERVER_ENV } from './cancel-storm';
import { assertChecksPass, printReport } from './figures';
import { withChaos } from './harness';
import { skipReason } from './skip';

describe.skipIf(skipReason)('chaos 3: cancel storm', () => {
  it('2,000 aborted lab.sleep calls: 0 lost cancels, 0 fired-yet-OK, every aborted call’s signal fired (abort → signal p99 printed)', async () => {
    const report = await withChaos(90_000, async ({ pg, signal, start }) => stormScenario(pg, await start(STORM_SERVER_ENV), signal));
    printReport(report);
    assertChecksPass(report);
  });
});
