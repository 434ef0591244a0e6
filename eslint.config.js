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
      // V8 allocates a function literal assigned straight to a property in the old generation (it takes it for
      // a method), and a closure there keeps what it captures past every young-generation collection: per call,
      // the call's objects (and a query's rows) reached the old generation and waited for a full collection.
      // Node's EventTarget does that itself for an object listener (`handleEvent`). README *What the profiles taught*.
      'no-restricted-syntax': [
        'error',
        {
          selector: "AssignmentExpression[left.type='MemberExpression'][right.type=/^(ArrowFunctionExpression|FunctionExpression)$/]",
          message: 'Make the function a local (const) and assign that, or a class field: a function literal assigned to a property is pretenured by V8.',
        },
        {
          selector: "CallExpression[callee.property.name=/^(add|remove)EventListener$/][arguments.1.type='ThisExpression']",
          message: "Pass a function listener (a class field arrow): for an object listener, Node's EventTarget makes an old-generation closure that holds the object.",
        },
      ],
    },
  },
  { files: ['**/*.mjs', '**/*.js'], ...tseslint.configs.disableTypeChecked },
  // Tests stub and wrap freely; the rule is about what runs per call.
  { files: ['**/*.test.ts', '**/*.test.tsx', '**/e2e/**', '**/test/**'], rules: { 'no-restricted-syntax': 'off' } },
  {
    files: ['apps/server/src/env.ts', '**/*.test.ts', '**/test/**', '**/vitest.*', '**/global-setup.ts', '**/e2e/**', 'apps/bench/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
