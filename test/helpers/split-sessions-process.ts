// The operator's split sessions alone in a process, for the test that kills the operator with -9 in the middle of a
// split: `node --import tsx split-sessions-process.ts <kubeconfig> <session>=<x-dest regex>…`. Joins each session
// to deployment/orders' queue `orders`, as the operator does when a session opens, prints `joined`, and waits to
// be killed.

import { createLogger } from '../../src/core/log.js';
import { connectKube } from '../../src/platform/kubernetes/api.js';
import { connectRabbitMq } from '../../src/operator/queues/rabbitmq.js';
import { SplitSessions } from '../../src/operator/queues/split-sessions.js';
import { WorkloadEnv } from '../../src/operator/queues/workload-env.js';

const [kubeconfig, ...asked] = process.argv.slice(2);
if (kubeconfig === undefined || asked.length === 0) throw new Error('usage: split-sessions-process.ts <kubeconfig> <session>=<regex>…');
const log = createLogger('split-sessions', { level: 'warn' });
const kube = connectKube({ kubeconfig });
const live = new Set<string>();
const splits = new SplitSessions(kube, new WorkloadEnv(kube, log, (session) => live.has(session)), (_type, url) => connectRabbitMq({ url }), log);
for (const entry of asked) {
  const [id, pattern] = entry.split('=') as [string, string];
  live.add(id);
  await splits.join({ id, owner: id }, { namespace: 'shop', kind: 'Deployment', name: 'orders' }, { orders: { queueType: 'RMQ', messageFilter: { 'x-dest': pattern } } });
}
process.stdout.write('joined\n');
setInterval(() => undefined, 1 << 30);
