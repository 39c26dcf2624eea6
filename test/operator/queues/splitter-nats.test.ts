// The split scenarios (test/helpers/split-scenario.ts) on a real NATS server with JetStream, built from Debian's
// source by scripts/nats-server.sh and run on loopback.

import { describeSplitScenarios } from '../../helpers/split-scenario.js';

describeSplitScenarios('NATS');
