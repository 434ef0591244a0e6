/**
 * Which way imports may point (run by `pnpm lint`, `depcruise apps packages`).
 *
 * apps → packages, never back and never sideways; within packages, a layering with no cycle; the dashboard and
 * the client package take only the router's *type* from the API (their bundles must not pull the server in).
 * Test code (`*.test.ts`, `test/`, `e2e/`) may use test infrastructure production code may not.
 */
const TEST = '(\\.test\\.tsx?$|/test/|/e2e/|/test-[^/]*\\.ts$|/testing\\.ts$|/global-setup\\.ts$)';

/** Each package and the workspace packages it may import (everything else under packages/ is forbidden). */
const layers = {
  contract: [],
  cluster: [],
  concurrency: [],
  db: [],
  api: ['contract', 'db', 'concurrency'],
  client: ['contract', 'concurrency', 'api'],
  harness: ['client', 'concurrency', 'db'],
};

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: modules that cannot be understood, loaded or tested one without the other.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'packages-not-to-apps',
      severity: 'error',
      comment: 'Packages are libraries the apps use; a package importing an app inverts the dependency.',
      from: { path: '^packages/' },
      to: { path: '^apps/' },
    },
    {
      name: 'apps-not-to-other-apps',
      severity: 'error',
      comment: 'An app imports packages, never another app: move what two apps share into a package.',
      from: { path: '^apps/([^/]+)/' },
      to: { path: '^apps/', pathNot: '^apps/$1/' },
    },
    ...Object.entries(layers).map(([name, allowed]) => ({
      name: `package-layering-${name}`,
      severity: 'error',
      comment: `packages/${name} may import only ${allowed.length ? allowed.map((a) => `packages/${a}`).join(', ') : 'no other workspace package'}.`,
      from: { path: `^packages/${name}/` },
      to: { path: '^packages/', pathNot: [`^packages/${name}/`, ...allowed.map((a) => `^packages/${a}/`)] },
    })),
    {
      name: 'dashboard-takes-only-the-router-type',
      severity: 'error',
      comment: 'The dashboard imports only types from the API (import type): its bundle must not contain server code.',
      from: { path: '^apps/dashboard/src/' },
      to: { path: '^packages/api/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'dashboard-not-to-server-packages',
      severity: 'error',
      comment: 'The dashboard runs in a browser: no database package in its sources (its E2E tests may use it).',
      from: { path: '^apps/dashboard/src/', pathNot: TEST },
      to: { path: '^packages/db/' },
    },
    {
      name: 'dashboard-components-reach-the-api-through-hooks',
      severity: 'error',
      comment: "A component reaches the API through its feature's hooks (lab/api.ts, users/api.ts, …) or the stores in services.ts, not tRPC's context itself; only the shell (app/App.tsx) provides it.",
      from: { path: '^apps/dashboard/src/.+\\.tsx$', pathNot: '^apps/dashboard/src/app/App\\.tsx$' },
      to: { path: '^apps/dashboard/src/trpc\\.ts$' },
    },
    {
      name: 'client-takes-only-the-router-type',
      severity: 'error',
      comment: 'The installable client carries the router as a type only; importing API code would ship the server.',
      from: { path: '^packages/client/src/', pathNot: TEST },
      to: { path: '^packages/api/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'production-not-to-tests',
      severity: 'error',
      comment: 'Production code must not import test files or test helpers.',
      from: { pathNot: TEST },
      to: { path: TEST },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist|coverage|test-results)/' },
    // Type-only imports are dependencies too (a type cycle is still a cycle), and are what the type-only rules see.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.tsx', '.mts', '.js', '.mjs', '.cjs', '.json'],
      mainFields: ['module', 'main', 'types'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
