// The operator killed with -9 in the middle of a split, under a steady stream of 10,000 messages, on a real
// RabbitMQ: the operator's split sessions run in a process of their own (split-sessions-process.ts), joined as two
// sessions open, with deployment/orders and its split config from the fake API server. Its death ends the sessions
// (their apps go away) and leaves the Deployment pointed at the deployed app's temporary queue; the next operator's
// start must put the Deployment back and drain every temporary queue back, so that the deployed app, reading its
// own queue again, gets everything the sessions did not: 0 lost.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import amqplib from 'amqplib';
import { startChild, childExited } from '../../src/core/child.js';
import { createLogger } from '../../src/core/log.js';
import { connectKube } from '../../src/platform/kubernetes/api.js';
import { connectRabbitMq } from '../../src/operator/queues/rabbitmq.js';
import { SplitSessions } from '../../src/operator/queues/split-sessions.js';
import { WorkloadEnv } from '../../src/operator/queues/workload-env.js';
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { ordersQueueOf, serveOrdersSplit } from '../helpers/kube-split.js';
import { serveWorkloadEnv, type FakeWorkloads } from '../helpers/kube-workload-env.js';
import { waitFor } from '../helpers/processes.js';
import { allConsumed, consumeAs, recorder, summary, type AppConsumer } from '../helpers/queue-traffic.js';
import { rabbitMqTraffic } from '../helpers/rabbitmq-traffic.js';
import { startRabbitMq, type RabbitMqNode } from '../helpers/rabbitmq.js';

const TOTAL = 10_000;
const PER_SECOND = 2_500;
const log = createLogger('test', { level: 'silent' });

let broker: RabbitMqNode;
let api: FakeKubeApi;
let workloads: FakeWorkloads;

before(async () => {
  broker = await startRabbitMq();
  api = await startFakeKubeApi({ log: () => {} });
  workloads = serveWorkloadEnv(api);
  serveOrdersSplit(api, workloads, broker.url);
  const connection = await amqplib.connect(broker.url);
  await (await connection.createChannel()).assertQueue('orders', { durable: true });
  await connection.close();
});

after(async () => {
  await api?.close();
  await broker?.stop();
});

describe('the operator killed with -9 mid-split', { timeout: 180_000 }, () => {
  it('10,000 messages at a steady rate: the next operator points the Deployment back and drains the temporary queues back; 0 lost, no temporary queue left', async (t) => {
    const script = fileURLToPath(new URL('../helpers/split-sessions-process.ts', import.meta.url));
    const operator = startChild(process.execPath, ['--import', 'tsx', script, api.kubeconfig('admin'), 'a=^a$', 'b=^b$'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let said = '';
    operator.stdout!.on('data', (chunk: Buffer) => (said += chunk.toString()));
    await waitFor(() => said.includes('joined') || operator.exitCode !== null, 'the two sessions to join', 60_000);
    assert.equal(operator.exitCode, null, 'the operator runs');
    assert.equal(ordersQueueOf(workloads), 'orders.remocal.deployed');

    const traffic = rabbitMqTraffic(broker.url);
    const record = recorder();
    let apps: AppConsumer[] = [
      await consumeAs(traffic, 'orders.remocal.a', 'a', record),
      await consumeAs(traffic, 'orders.remocal.b', 'b', record),
      await consumeAs(traffic, ordersQueueOf(workloads), 'deployed', record),
    ];
    let recovered: Promise<string[]> | undefined;
    const recover = async (): Promise<string[]> => {
      operator.kill('SIGKILL');
      await childExited(operator);
      // The sessions ended with the operator, and the deployed app's pods roll over to the restored variable.
      for (const app of apps) await app.stop();
      const kube = connectKube({ kubeconfig: api.kubeconfig('admin') });
      const done = await new SplitSessions(kube, new WorkloadEnv(kube, log, () => false), (_type, url) => connectRabbitMq({ url }), log).recover();
      apps = [await consumeAs(traffic, ordersQueueOf(workloads), 'deployed', record)];
      return done;
    };
    await traffic.produce({
      queue: 'orders',
      total: TOTAL,
      perSecond: PER_SECOND,
      onSent: (sent) => {
        if (sent >= TOTAL * 0.4 && recovered === undefined) recovered = recover();
      },
    });
    assert.ok(recovered !== undefined, 'the operator was killed mid-stream');
    assert.deepEqual(await recovered, ['shop/Deployment/orders']);
    assert.equal(ordersQueueOf(workloads), 'orders', 'the Deployment reads its own queue again');
    await allConsumed(record, TOTAL, 60_000);
    for (const app of apps) await app.stop();

    const { lost, duplicates, byConsumer } = summary(record, TOTAL);
    t.diagnostic(`consumed ${JSON.stringify(byConsumer)}; lost ${lost}; duplicates ${duplicates}`);
    assert.equal(lost, 0);
    assert.ok(record.consumed.every((entry) => entry.by === 'deployed' || entry.dest === entry.by), 'a session got only its own messages');
    assert.deepEqual((await broker.listQueues()).map((entry) => entry.name), ['orders'], 'no temporary queue is left');
    assert.deepEqual(api.unmatched.map((request) => `${request.method} ${request.path}`), []);
  });
});
