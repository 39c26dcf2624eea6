// The folder rule of docs/DESIGN.md §2 is lint (eslint.config.js): a wrong import must fail `npm run lint`.
// These run the project's own ESLint config on a line of code put at a path that does not exist, so that the
// rule cannot quietly stop matching (a renamed folder, a regex that no longer fits relative paths).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';
import { repoRoot } from '../helpers/remocal.js';

// The probes are not files of the TypeScript project, and the rule needs no types: parse them alone, and run
// only the import rule (the type-aware ones would need the project).
const eslint = new ESLint({
  cwd: repoRoot,
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
});

/** The no-restricted-imports messages for one import line in a file at `path` (relative to the repository). */
async function importProblems(path: string, line: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${line}\nexport {};\n`, { filePath: `${repoRoot}/${path}` });
  assert.ok(result, `no lint result for ${path}`);
  assert.deepEqual(result.messages.filter((message) => message.ruleId !== 'no-restricted-imports'), [], `${path}: other messages`);
  return result.messages.map((message) => message.message);
}

describe('the folder rule', () => {
  const forbidden: [path: string, line: string, rule: RegExp][] = [
    // The import that config had before the process contracts moved to protocol.
    ['src/config/lint-probe.ts', "import type { LayerSettings } from '../layer/settings.js';", /src\/config may import only protocol, core /],
    ['src/layer/fs/lint-probe.ts', "import { resolveConfig } from '../../config/resolve.js';", /src\/layer may import only protocol, config\/address-pattern\.ts, config\/regex\.ts /],
    ['src/layer/lint-probe.ts', "import { createLogger } from '../core/log.js';", /src\/layer may import only/],
    ['src/core/lint-probe.ts', "import type { Result } from '../protocol/messages.js';", /src\/core may import nothing /],
    ['src/protocol/lint-probe.ts', "import { createLogger } from '../core/log.js';", /src\/protocol may import only core\/errors\.ts /],
    ['src/protocol/contracts.ts', "import { ProtocolError } from '../core/errors.js';", /protocol\/contracts\.ts and protocol\/messages\.ts import nothing of the project but each other/],
    ['src/protocol/contracts.ts', "import type { Link } from './link.js';", /import nothing of the project but each other/],
    ['src/platform/kubernetes/lint-probe.ts', "import type { AgentConnection } from '../../intproxy/agent-link.js';", /src\/platform may import only protocol, core, config /],
    ['src/agent/lint-probe.ts', "import { toLayerSettings } from '../config/layer-settings.js';", /src\/agent may import only protocol, core, config\/regex\.ts /],
    ['src/intproxy/lint-probe.ts', "import { exec } from '../cli/exec.js';", /src\/intproxy may import only protocol, core /],
    ['src/operator/lint-probe.ts', "import { TargetFiles } from '../agent/files/service.js';", /src\/operator may import only protocol, core, config, platform /],
    ['src/fixture/lint-probe.ts', "import { agentLaunch } from '../platform/local.js';", /src\/fixture may import only protocol, core /],
  ];
  for (const [path, line, rule] of forbidden) {
    it(`reports ${line} in ${path}`, async () => {
      const problems = await importProblems(path, line);
      assert.equal(problems.length, 1, `expected one report, got ${JSON.stringify(problems)}`);
      assert.match(problems[0]!, rule);
    });
  }

  const allowed: [path: string, line: string][] = [
    ['src/layer/fs/lint-probe.ts', "import { compileConfigRegex } from '../../config/regex.js';"],
    ['src/layer/lint-probe.ts', "import type { LayerSettings } from '../protocol/contracts.js';"],
    ['src/protocol/lint-probe.ts', "import { ProtocolError } from '../core/errors.js';"],
    ['src/protocol/contracts.ts', "import type { Result } from './messages.js';"],
    ['src/platform/lint-probe.ts', "import type { AgentLaunch } from '../protocol/contracts.js';"],
    ['src/cli/lint-probe.ts', "import { installLayer } from '../layer/install.js';"],
  ];
  for (const [path, line] of allowed) {
    it(`allows ${line} in ${path}`, async () => {
      assert.deepEqual(await importProblems(path, line), []);
    });
  }

  it('still carries the node: and child_process rules in every folder block', async () => {
    assert.match((await importProblems('src/layer/lint-probe.ts', "import net from 'net';"))[0] ?? '', /import 'node:net' instead/);
    assert.match((await importProblems('src/intproxy/lint-probe.ts', "import { spawn } from 'node:child_process';"))[0] ?? '', /start processes through src\/core\/child\.ts/);
  });
});
