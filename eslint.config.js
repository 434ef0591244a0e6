// One lint config for the whole workspace: type-aware rules, so floating and misused promises are errors.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/.turbo/**', '**/migrations/**', '**/*.config.*', '**/test-artifacts/**', '**/test-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Only apps/server reads the environment (see its env.ts); libraries take config as arguments.
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read configuration in apps/server/src/env.ts and pass it in.' }],
      // Signals and scopes are passed, never found: one AsyncLocalStorage anywhere in the process turns on
      // Node 20's promise hook for every promise (~15 % of a users.byId call's CPU, README *What the profiles taught*).
      'no-restricted-imports': ['error', { paths: [{ name: 'node:async_hooks', importNames: ['AsyncLocalStorage', 'AsyncResource', 'createHook'], message: 'Pass the scope or signal as an argument (packages/db scope.ts: DbClient.bind).' }] }],
    },
  },
  { files: ['**/*.mjs', '**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['apps/server/src/env.ts', '**/*.test.ts', '**/test/**', '**/vitest.*', '**/global-setup.ts', '**/e2e/**', 'apps/bench/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
