// Split sessions: the pieces of queue splitting joined as the operator joins them, on a real RabbitMQ and the
// recorded fake API server. The workload's RemocalSplitConfig and its broker Secret come from the fake, and so does
// deployment/orders, whose ORDERS_QUEUE names the queue; the deployed app is played by a consumer that reads
// whatever queue the Deployment's variable names, as a rolled-out pod would.

import assert from 'node:assert/strict';
import amqplib from 'amqplib';
import { after, before, describe, it } from 'node:test';
import { SplitConfigError } from '../../src/core/errors.js';
import { createLogger } from '../../src/core/log.js';
import { connectKube } from '../../src/platform/kubernetes/api.js';
import { connectRabbitMq } from '../../src/operator/queues/rabbitmq.js';
import type { QueueDriver } from '../../src/operator/queues/driver.js';
import { SPLIT_SESSIONS_ANNOTATION, SplitSessions } from '../../src/operator/queues/split-sessions.js';
import { SPLIT_ENV_ANNOTATION, WorkloadEnv } from '../../src/operator/queues/workload-env.js';
import type { SplitQueuesRequest } from '../../src/protocol/split-queues.js';
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { serveWorkloadEnv, type FakeWorkloads } from '../helpers/kube-workload-env.js';
import { ordersQueueOf, publishOrders, serveOrdersSplit } from '../helpers/kube-split.js';
import { startRabbitMq, type RabbitMqNode } from '../helpers/rabbitmq.js';
import { waitFor } from '../helpers/processes.js';

type Json = Record<string, any>;

const log = createLogger('test', { level: 'silent' });
const workload = { namespace: 'shop', kind: 'Deployment' as const, name: 'orders' };
const ask = (tenant: string): SplitQueuesRequest => ({ orders: { queueType: 'RMQ', messageFilter: { 'x-tenant': `^${tenant}$` } } });

let broker: RabbitMqNode;
let api: FakeKubeApi;
let workloads: FakeWorkloads;
let splits: SplitSessions;
const live = new Set<string>();

const deployedQueue = (): string => ordersQueueOf(workloads);
const publish = (messages: { id: number; tenant: string }[]): Promise<void> => publishOrders(broker.url, messages);

/** Takes every message waiting in `queue` (acked), by id. */
async function take(queue: string): Promise<number[]> {
  const connection = await amqplib.connect(broker.url);
  const channel = await connection.createChannel();
  const ids: number[] = [];
  for (;;) {
    const message = await channel.get(queue, { noAck: true });
    if (message === false) break;
    ids.push(Number(message.content.toString()));
  }
  await connection.close();
  return ids.sort((a, b) => a - b);
}

async function depth(queue: string): Promise<number> {
  return (await broker.listQueues()).find((entry) => entry.name === queue)?.messages ?? 0;
}

before(async () => {
  broker = await startRabbitMq();
  api = await startFakeKubeApi({ log: () => {} });
  workloads = serveWorkloadEnv(api);
  serveOrdersSplit(api, workloads, broker.url);
  const kube = connectKube({ kubeconfig: api.kubeconfig('admin') });
  splits = new SplitSessions(kube, new WorkloadEnv(kube, log, (session) => live.has(session)), (_type, url) => connectRabbitMq({ url }), log);
  const connection = await amqplib.connect(broker.url);
  const channel = await connection.createChannel();
  await channel.assertQueue('orders', { durable: true });
  await connection.close();
});

after(async () => {
  await api?.close();
  await broker?.stop();
});

describe('split sessions on a real RabbitMQ', { timeout: 120_000 }, () => {
  it('two sessions each get their tenant\'s messages in their own queue, the rest goes to the deployed app\'s; the last one out restores the Deployment, drains back and leaves no queue', async () => {
    live.add('s-alice').add('s-bob');
    const alice = await splits.join({ id: 's-alice', owner: 'alice' }, workload, ask('alice'));
    assert.deepEqual(alice.env, { ORDERS_QUEUE: 'orders.remocal.s-alice' });
    assert.equal(deployedQueue(), 'orders.remocal.deployed', 'the deployed app now reads its own temporary queue');
    const record = JSON.parse(workloads.get('deployments', 'orders').metadata.annotations[SPLIT_ENV_ANNOTATION]) as { session: string; vars: { original: { value: string } }[] };
    assert.equal(record.vars[0]!.original.value, 'orders', 'the original is recorded in the cluster');
    const bob = await splits.join({ id: 's-bob', owner: 'bob' }, workload, ask('bob'));
    assert.deepEqual(bob.env, { ORDERS_QUEUE: 'orders.remocal.s-bob' });
    const patchesAfterJoins = workloads.patches.length;

    await publish(Array.from({ length: 300 }, (_, id) => ({ id, tenant: ['alice', 'bob', 'carol'][id % 3]! })));
    await waitFor(async () => (await depth('orders.remocal.s-alice')) + (await depth('orders.remocal.s-bob')) + (await depth('orders.remocal.deployed')) === 300, 'all 300 forwarded');
    const aliceGot = await take('orders.remocal.s-alice');
    assert.deepEqual(aliceGot, Array.from({ length: 100 }, (_, index) => index * 3));
    assert.equal(alice.queues[0]!.counts.forwarded, 100, 'the session\'s count, as session list shows it');

    // bob leaves with his 100 unread: they go back to the original queue and, split again, to the deployed app.
    await bob.leave();
    assert.equal(deployedQueue(), 'orders.remocal.deployed', 'a session that is not the last leaves the Deployment pointed');
    assert.ok(workloads.patches.slice(patchesAfterJoins).every((patch) => patch.body.spec === undefined), 'and its pod template alone: only the record of sessions changed');
    assert.deepEqual(JSON.parse(workloads.get('deployments', 'orders').metadata.annotations[SPLIT_SESSIONS_ANNOTATION]), { sessions: ['s-alice'], queues: { orders: 'RMQ' } });
    await waitFor(async () => (await depth('orders.remocal.deployed')) === 200, 'bob\'s unread messages to reach the deployed app');
    const deployedGot = await take('orders.remocal.deployed');
    assert.deepEqual(deployedGot, Array.from({ length: 300 }, (_, id) => id).filter((id) => id % 3 !== 0));

    await publish([{ id: 1000, tenant: 'alice' }]);
    await waitFor(async () => (await depth('orders.remocal.s-alice')) === 1, 'a late message for alice');
    await alice.leave();
    assert.equal(deployedQueue(), 'orders', 'the Deployment reads its own queue again');
    assert.equal(workloads.get('deployments', 'orders').metadata.annotations?.[SPLIT_ENV_ANNOTATION], undefined);
    assert.deepEqual(workloads.problems, []);
    const queues = await broker.listQueues();
    assert.deepEqual(queues.map((entry) => entry.name), ['orders'], 'no temporary queue is left');
    assert.deepEqual(await take('orders'), [1000], 'what alice had not read is back on the original queue');
    assert.deepEqual(api.unmatched.map((request) => `${request.method} ${request.path}`), []);
  });

  it('an operator that dies mid-split: the next one points the Deployment back and drains every temporary queue back, 0 lost', async () => {
    // The dying operator's broker links, to drop them as its death would.
    const links: QueueDriver[] = [];
    const kube = connectKube({ kubeconfig: api.kubeconfig('admin') });
    const dying = new SplitSessions(kube, new WorkloadEnv(kube, log, (session) => live.has(session)), async (_type, url) => {
      const driver = await connectRabbitMq({ url });
      links.push(driver);
      return driver;
    }, log);
    live.clear();
    live.add('s-dan').add('s-erin');
    await dying.join({ id: 's-dan', owner: 'dan' }, workload, ask('dan'));
    await dying.join({ id: 's-erin', owner: 'erin' }, workload, ask('erin'));
    await publish(Array.from({ length: 90 }, (_, index) => ({ id: 2000 + index, tenant: ['dan', 'erin', 'frank'][index % 3]! })));
    await waitFor(async () => (await depth('orders.remocal.s-dan')) + (await depth('orders.remocal.s-erin')) + (await depth('orders.remocal.deployed')) === 90, 'all 90 forwarded');
    for (const link of links) await link.close();
    live.clear();

    const restarted = new SplitSessions(kube, new WorkloadEnv(kube, log, (session) => live.has(session)), (_type, url) => connectRabbitMq({ url }), log);
    assert.deepEqual(await restarted.recover(), ['shop/Deployment/orders']);
    assert.equal(deployedQueue(), 'orders');
    const annotations = workloads.get('deployments', 'orders').metadata.annotations ?? {};
    assert.equal(annotations[SPLIT_ENV_ANNOTATION], undefined);
    assert.equal(annotations[SPLIT_SESSIONS_ANNOTATION], undefined);
    assert.deepEqual((await broker.listQueues()).map((entry) => entry.name), ['orders'], 'no temporary queue is left');
    assert.deepEqual(await take('orders'), Array.from({ length: 90 }, (_, index) => 2000 + index), 'every message is back on the original queue');
    assert.deepEqual(await restarted.recover(), [], 'nothing is left to recover');
  });

  it('a split whose broker link drops: its sessions\' end still points the Deployment back and drains their queues back over a new link, 0 lost', async () => {
    live.clear();
    live.add('s-gil');
    const gil = await splits.join({ id: 's-gil', owner: 'gil' }, workload, ask('gil'));
    await publish(Array.from({ length: 30 }, (_, index) => ({ id: 3000 + index, tenant: index % 2 === 0 ? 'gil' : 'hal' })));
    await waitFor(async () => (await depth('orders.remocal.s-gil')) === 15 && (await depth('orders.remocal.deployed')) === 15, 'the 30 forwarded');
    await broker.closeConnections();
    await gil.leave();
    live.clear();
    assert.equal(deployedQueue(), 'orders');
    await waitFor(async () => (await broker.listQueues()).length === 1, 'the temporary queues drained and deleted');
    assert.deepEqual(await take('orders'), Array.from({ length: 30 }, (_, index) => 3000 + index), 'every message is back on the original queue');
  });

  it('a split whose broker link drops goes on over a new one: the session keeps getting its messages, counted on', async () => {
    live.clear();
    live.add('s-ivy');
    const ivy = await splits.join({ id: 's-ivy', owner: 'ivy' }, workload, ask('ivy'));
    await publish([{ id: 4000, tenant: 'ivy' }]);
    await waitFor(async () => (await depth('orders.remocal.s-ivy')) === 1, 'the first message');
    await broker.closeConnections();
    await publish(Array.from({ length: 20 }, (_, index) => ({ id: 4001 + index, tenant: index % 2 === 0 ? 'ivy' : 'jo' })));
    await waitFor(async () => (await depth('orders.remocal.s-ivy')) === 11 && (await depth('orders.remocal.deployed')) === 10, 'the split to go on over a new link', 30_000);
    assert.equal(ivy.queues[0]!.counts.forwarded, 11, 'the count goes on from before the drop');
    assert.deepEqual(await take('orders.remocal.s-ivy'), [4000, ...Array.from({ length: 10 }, (_, index) => 4001 + index * 2)]);
    await ivy.leave();
    live.clear();
    assert.equal(deployedQueue(), 'orders');
    assert.deepEqual((await broker.listQueues()).map((entry) => entry.name), ['orders']);
    assert.deepEqual(await take('orders'), Array.from({ length: 10 }, (_, index) => 4002 + index * 2), 'the deployed app\'s unread ten are back on the original queue');
  });

  it('a workload whose queue name is not a plain value is refused in words, and nothing is split', async () => {
    workloads.edit('deployments', 'orders', (object) => {
      const env = (object.spec.template.spec.containers[0] as Json).env as Json[];
      env.find((entry) => entry.name === 'ORDERS_QUEUE')!.value = '';
    });
    try {
      await assert.rejects(splits.join({ id: 's-carol', owner: 'carol' }, workload, ask('carol')), (error: Error) => error instanceof SplitConfigError && /holds no queue name in ORDERS_QUEUE of container app/.test(error.message));
      assert.deepEqual((await broker.listQueues()).map((entry) => entry.name), ['orders']);
    } finally {
      workloads.edit('deployments', 'orders', (object) => {
        ((object.spec.template.spec.containers[0] as Json).env as Json[]).find((entry) => entry.name === 'ORDERS_QUEUE')!.value = 'orders';
      });
    }
  });
});
