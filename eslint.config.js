// Lint for the traps of this field (STYLE.md §12), not for taste: formatting and naming are left to review.
import tseslint from 'typescript-eslint';

const nodeBuiltins = ['assert', 'buffer', 'child_process', 'crypto', 'dgram', 'dns', 'events', 'fs', 'fs/promises', 'http', 'http2', 'https', 'module', 'net', 'os', 'path', 'perf_hooks', 'process', 'readline', 'stream', 'timers', 'timers/promises', 'tls', 'url', 'util', 'worker_threads', 'zlib'];
// node: imports say which module is Node's; a bare 'net' could be shadowed by a package.
const builtinPaths = nodeBuiltins.map((name) => ({ name, message: `import 'node:${name}' instead` }));
// Processes are started through core/child.ts, which logs them and reaps them on exit.
const childProcessPath = { name: 'node:child_process', importNames: ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'], message: 'start processes through src/core/child.ts' };

// The folder rule of docs/DESIGN.md §2, as the code stands: what each folder of src/ may import of the other
// folders (its own files and node: builtins always; a folder not named is forbidden). A folder/file entry allows
// that file alone, where the rest of its folder would bring in what must stay out: the layer is loaded into every
// process of the app and the agent is one self-contained file copied next to targets, so neither takes config's
// schema library; the protocol, which both load, takes no more of core than the error catalog.
const folderImports = {
  // The link throws the catalog's errors. contracts.ts and messages.ts, the shapes every process shares,
  // import nothing of the project but each other (protocolLeafPatterns).
  protocol: ['core/errors.ts'],
  core: [],
  config: ['protocol', 'core'],
  layer: ['protocol', 'config/address-pattern.ts', 'config/regex.ts'],
  intproxy: ['protocol', 'core'],
  agent: ['protocol', 'core', 'config/regex.ts'],
  platform: ['protocol', 'core', 'config'],
  operator: ['protocol', 'core', 'config', 'platform'],
  fixture: ['protocol', 'core'],
  // Anything: the CLI starts the other processes and puts the pieces together.
  cli: null,
};
const folders = Object.keys(folderImports);
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The patterns that forbid what `folder` may not import. Imports are relative, so a target folder is any number of ../ up. */
function folderPatterns(folder) {
  const allowed = folderImports[folder];
  if (allowed === null) return [];
  const message = `src/${folder} may import ${allowed.length === 0 ? 'nothing' : `only ${allowed.join(', ')}`} from the other folders of src (docs/DESIGN.md §2)`;
  return folders
    .filter((other) => other !== folder && !allowed.includes(other))
    .map((other) => {
      const files = allowed.filter((entry) => entry.startsWith(`${other}/`)).map((entry) => escape(entry.slice(other.length + 1).replace(/\.ts$/, '.js')));
      const rest = files.length === 0 ? '(/|$)' : `/(?!(${files.join('|')})$)`;
      return { regex: `^(\\.\\./)+${other}${rest}`, message };
    });
}

/** The shapes every process shares stay a leaf, so that taking one never brings another process's code along. */
const leafMessage = 'protocol/contracts.ts and protocol/messages.ts import nothing of the project but each other (docs/DESIGN.md §2)';
const protocolLeafPatterns = [
  { regex: '^\\.\\./', message: leafMessage },
  { regex: '^\\./(?!(contracts|messages)\\.js$)', message: leafMessage },
];

const importRule = ({ childProcess, patterns }) => ({
  'no-restricted-imports': ['error', { paths: childProcess ? [...builtinPaths, childProcessPath] : builtinPaths, patterns }],
});

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
      ...importRule({ childProcess: false, patterns: [] }),
    },
  },
  // In src/ processes start only in core/child.ts, and each folder keeps to the folder rule. A later block's
  // options for a rule replace an earlier one's, so each block carries all of them.
  { files: ['src/**/*.ts'], ignores: ['src/core/child.ts'], rules: importRule({ childProcess: true, patterns: [] }) },
  ...folders.map((folder) => ({
    files: [`src/${folder}/**/*.ts`],
    ignores: ['src/core/child.ts'],
    rules: importRule({ childProcess: true, patterns: folderPatterns(folder) }),
  })),
  { files: ['src/core/child.ts'], rules: importRule({ childProcess: false, patterns: folderPatterns('core') }) },
  { files: ['src/protocol/contracts.ts', 'src/protocol/messages.ts'], rules: importRule({ childProcess: true, patterns: protocolLeafPatterns }) },
  {
    // Only process entry points decide when the process ends.
    files: ['src/**/*.ts'],
    ignores: ['src/cli/main.ts', 'src/cli/program.ts', 'src/cli/demo/demo.ts', 'src/agent/main.ts', 'src/intproxy/main.ts', 'src/fixture/pod-process.ts', 'src/agent/incoming/supervisor-entry.ts', 'src/platform/kubernetes/link-entry.ts', 'src/platform/operator/link-entry.ts', 'src/cli/port-forward/forwarder.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'exit', message: 'only process entry points exit; return or throw instead' }],
    },
  },
);
