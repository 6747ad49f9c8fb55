// ESLint with typescript-eslint's type-aware rules. The library (plugins/, cli/) is held to more
// than the tests and scripts: no non-null assertions and no casts through unknown or never there.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const noEscapeHatches = [
  'error',
  {
    selector: "TSAsExpression[expression.type='TSAsExpression'][expression.typeAnnotation.type='TSUnknownKeyword']",
    message: 'no `as unknown as`: type the seam instead',
  },
  { selector: "TSAsExpression[typeAnnotation.type='TSNeverKeyword']", message: 'no `as never`: type the seam instead' },
]

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Fakes of async interfaces answer at once; requires keep a heavy module out of a suite's load.
    files: ['test/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
    },
  },
  {
    files: ['plugins/**/*.ts', 'cli/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'error',
      'no-restricted-syntax': noEscapeHatches,
    },
  },
)
