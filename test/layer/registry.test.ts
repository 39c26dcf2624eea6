// Runs the layer's "registry" scenarios (test/layer/fixtures/registry-scenarios.ts) in a child process per scenario, on
// Node 20, 22 and 24.

import { describe, it } from 'node:test';
import { scenarioSuites } from './fixtures/main.js';
import { nodeBinaries, runScenario } from './helpers.js';

const suite = 'registry';

for (const node of nodeBinaries()) {
  describe(`layer registry on Node ${node.version}`, () => {
    for (const name of Object.keys(scenarioSuites[suite]!)) {
      it(name, () => runScenario(node, suite, name));
    }
  });
}
