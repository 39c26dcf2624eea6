// Runs the layer's "net" scenarios (test/layer/fixtures/net-scenarios.ts) in a child process per scenario, on
// Node 20, 22 and 24.

import { describe, it } from 'node:test';
import { scenarioSuites } from './fixtures/main.js';
import { nodeBinaries, runScenario } from './helpers.js';

const suite = 'net';

for (const node of nodeBinaries()) {
  describe(`layer net on Node ${node.version}`, () => {
    for (const name of Object.keys(scenarioSuites[suite]!)) {
      it(name, () => runScenario(node, suite, name));
    }
  });
}
