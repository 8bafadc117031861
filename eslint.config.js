// Lint rules that carry project policy, not taste:
// - the seed is the only source of randomness and time never enters a verdict,
//   so Math.random and Date.now are banned in model/, impl/ and properties/;
// - model/ is the specification: it imports nothing from impl/, oracle/,
//   properties/ or node: modules.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const bannedNondeterminism = [
  { object: 'Math', property: 'random', message: 'Randomness comes from the seed (fast-check), never Math.random.' },
  { object: 'Date', property: 'now', message: 'Time must not decide behaviour here; pass it in.' },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'reports/**', '.stryker-tmp/**', 'corpus/**/*.json'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['model/**/*.ts', 'impl/**/*.ts', 'properties/**/*.ts'],
    rules: { 'no-restricted-properties': ['error', ...bannedNondeterminism] },
  },
  {
    files: ['model/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*', 'fs', 'path', 'os', 'zlib', 'crypto'], message: 'model/ is pure: no I/O modules.' },
          { group: ['**/impl/**', '**/oracle/**', '**/properties/**', '**/cli/**'], message: 'model/ depends on nothing.' },
        ],
      }],
    },
  },
);
