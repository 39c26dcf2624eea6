// Runs the layer's "dns" scenarios (test/layer/fixtures/dns-scenarios.ts) in a child process per scenario, on
// Node 20, 22 and 24.

import { describe, it } from 'node:test';
import { scenarioSuites } from './fixtures/main.js';
import { nodeBinaries, runScenario } from './helpers.js';

const suite = 'dns';

for (const node of nodeBinaries()) {
  describe(`layer dns on Node ${node.version}`, () => {
    for (const name of Object.keys(scenarioSuites[suite]!)) {
      it(name, () => runScenario(node, suite, name));
    }
  });
}
