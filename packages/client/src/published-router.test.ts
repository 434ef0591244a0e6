import { describe, expect, it } from 'vitest';
// @ts-expect-error -- a build script in plain JavaScript, without declarations
import { routerTypes } from '../scripts/router-types.mjs';

describe('the router type the package carries', () => {
  it('agrees with the server router on every input, output and error, and names no workspace package', () => {
    // routerTypes throws, with tsc's diagnostics, when the two differ either way.
    const text = (routerTypes as (options: { check: boolean }) => string)({ check: true });
    expect(text).toMatch(/export type AppRouter = TRPCBuiltRouter</);
    expect(text).not.toMatch(/["']@asyncscope\//); // imports none
    expect(text).not.toMatch(/import\("\//); // no absolute path left in
  }, 120_000);
});
