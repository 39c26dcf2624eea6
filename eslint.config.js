// Lint for the traps of this field (STYLE.md §12), not for taste: formatting and naming are left to review.
import tseslint from 'typescript-eslint';

const nodeBuiltins = ['assert', 'buffer', 'child_process', 'crypto', 'dgram', 'dns', 'events', 'fs', 'fs/promises', 'http', 'http2', 'https', 'module', 'net', 'os', 'path', 'perf_hooks', 'process', 'readline', 'stream', 'timers', 'timers/promises', 'tls', 'url', 'util', 'worker_threads', 'zlib'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.cache/**', 'demo/**', 'bench/*.mjs', 'scripts/**', 'eslint.config.js'] },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser, parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      // A promise nobody awaits loses its rejection: in a proxy that is a silently dropped connection.
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's describe/it return promises the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      'no-restricted-imports': [
        'error',
        {
          // node: imports say which module is Node's; a bare 'net' could be shadowed by a package.
          paths: nodeBuiltins.map((name) => ({ name, message: `import 'node:${name}' instead` })),
        },
      ],
    },
  },
  {
    // Processes are started through core/child.ts, which logs them and reaps them on exit.
    files: ['src/**/*.ts'],
    ignores: ['src/core/child.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins.map((name) => ({ name, message: `import 'node:${name}' instead` })),
            { name: 'node:child_process', importNames: ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'], message: 'start processes through src/core/child.ts' },
          ],
        },
      ],
    },
  },
  {
    // Only process entry points decide when the process ends.
    files: ['src/**/*.ts'],
    ignores: ['src/cli/main.ts', 'src/cli/program.ts', 'src/cli/demo/demo.ts', 'src/agent/main.ts', 'src/intproxy/main.ts', 'src/fixture/pod-process.ts', 'src/agent/incoming/supervisor-entry.ts', 'src/platform/kubernetes/link-entry.ts', 'src/cli/port-forward/forwarder.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'exit', message: 'only process entry points exit; return or throw instead' }],
    },
  },
);
