// The split scenarios (test/helpers/split-scenario.ts) on a real RabbitMQ, Debian's rabbitmq-server on loopback.

import { describeSplitScenarios } from '../../helpers/split-scenario.js';

describeSplitScenarios('RMQ');
