// Split queues end to end: `remocal exec -t deployment/orders` with `feature.split_queues`, through
// `remocal operator serve` in Kubernetes mode behind the recorded fake API server, with a real RabbitMQ. The fake
// serves the workload's RemocalSplitConfig, the broker Secret and deployment/orders (whose ORDERS_QUEUE names the
// queue), and the fake kubelet runs the operator's real shared agent in the fixture pod. The app under remocal reads
// ORDERS_QUEUE from its environment, as it would in the pod, and consumes that queue: it must get the session's
// messages and only those, while the rest waits for the deployed app in the queue the Deployment is pointed at.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import amqplib from 'amqplib';
import { stopChild } from '../../src/core/child.js';
import type { Pod } from '../../src/fixture/pod.js';
import { SPLIT_ENV_ANNOTATION } from '../../src/operator/queues/workload-env.js';
import { installFakeKubelet, portForwardInto, type FakeKubelet } from '../helpers/fake-kubelet.js';
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { fakeOperatorCluster, writeKubeOperatorConfig, type OperatorCluster } from '../helpers/kube-cluster.js';
import { serveJobs } from '../helpers/kube-jobs.js';
import { servePolicies } from '../helpers/kube-policies.js';
import { serveWorkloadEnv, type FakeWorkloads } from '../helpers/kube-workload-env.js';
import { ordersQueueOf, publishOrders, serveOrdersSplit } from '../helpers/kube-split.js';
import { serveOperator, type ServedOperator } from '../helpers/local-operator.js';
import { waitFor } from '../helpers/processes.js';
import { startRabbitMq, type RabbitMqNode } from '../helpers/rabbitmq.js';
import { runRemocal, startRemocal, startPodWithApp, stopPodWithApp } from '../helpers/remocal.js';

type Json = Record<string, any>;

const AMQPLIB = new URL('../../node_modules/amqplib/channel_api.js', import.meta.url).href;

/** Says which queue its environment names, then consumes it, printing each message's id. */
const APP = String.raw`
import amqplib from '${AMQPLIB}';
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const connection = await amqplib.connect(process.argv[2]);
const channel = await connection.createChannel();
out({ queue: process.env.ORDERS_QUEUE });
await channel.consume(process.env.ORDERS_QUEUE, (message) => {
  out({ got: Number(message.content.toString()), tenant: String(message.properties.headers['x-tenant']) });
  channel.ack(message);
});
process.on('SIGTERM', () => connection.close().then(() => process.exit(0)));
`;

const POD = 'orders-6497447b6f-2d76r';

let pod: Pod;
let app: { dir: string; remove: () => void };
let api: FakeKubeApi;
let kubelet: FakeKubelet;
let cluster: OperatorCluster;
let workloads: FakeWorkloads;
let broker: RabbitMqNode;
let operator: ServedOperator;
const forwards: ChildProcess[] = [];

const deployedQueue = (): string => ordersQueueOf(workloads);
const publish = (messages: { id: number; tenant: string }[]): Promise<void> => publishOrders(broker.url, messages);

async function depth(queue: string): Promise<number | undefined> {
  return (await broker.listQueues()).find((entry) => entry.name === queue)?.messages;
}

before(async () => {
  broker = await startRabbitMq();
  const connection = await amqplib.connect(broker.url);
  await (await connection.createChannel()).assertQueue('orders', { durable: true });
  await connection.close();
  ({ pod, app } = await startPodWithApp({ 'app.mjs': APP }));
  api = await startFakeKubeApi({ log: () => {}, portForward: (namespace, name, port) => portForwardInto(pod, forwards)(namespace, name, port) });
  kubelet = installFakeKubelet(api, pod, POD, forwards);
  servePolicies(api);
  serveJobs(api);
  workloads = serveWorkloadEnv(api);
  serveOrdersSplit(api, workloads, broker.url);
  cluster = fakeOperatorCluster(api, { reviewAllows: ({ verb }) => verb === 'get' });
  const configFile = writeKubeOperatorConfig(app.dir, api);
  operator = await serveOperator(configFile);
  cluster.aggregateTo(operator);
});

after(async () => {
  if (operator !== undefined) await stopChild(operator.child);
  kubelet?.uninstall();
  for (const agent of kubelet?.agents ?? []) if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
  for (const forward of forwards) if (forward.exitCode === null && forward.signalCode === null) forward.kill('SIGKILL');
  await api?.close();
  cluster?.remove();
  await stopPodWithApp(pod, app);
  await broker?.stop();
});

describe('split queues through the operator, end to end', { timeout: 240_000 }, () => {
  it('the app under remocal consumes only its tenant\'s messages from the queue its env names; the rest waits for the deployed app; the end puts everything back', async () => {
    const dir = join(app.dir, 'alice');
    mkdirSync(join(dir, '.remocal'), { recursive: true });
    writeFileSync(
      join(dir, '.remocal', 'config.json'),
      JSON.stringify({ kubeconfig: api.kubeconfig('dev-alice'), agent: { startup_timeout: 30 }, feature: { split_queues: { orders: { queue_type: 'RMQ', message_filter: { 'x-tenant': '^alice$' } } } } }),
    );
    const run = startRemocal(['exec', '-t', 'deployment/orders', '--', process.execPath, join(app.dir, 'app.mjs'), broker.url], { cwd: dir, timeoutMs: 120_000 });
    let stdout = '';
    let stderr = '';
    run.child.stdout!.on('data', (chunk: Buffer | string) => (stdout += chunk.toString()));
    run.child.stderr!.on('data', (chunk: Buffer | string) => (stderr += chunk.toString()));
    const lines = () => stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Json);
    try {
      await waitFor(() => lines().some((line) => line.queue !== undefined) || run.child.exitCode !== null, 'the app to name its queue', 60_000);
      assert.equal(run.child.exitCode, null, stderr);
      const queue = lines().find((line) => line.queue !== undefined)!.queue as string;
      assert.match(queue, /^orders\.remocal\.[0-9a-f]{8}$/, 'the app\'s ORDERS_QUEUE is its session\'s own queue');
      assert.equal(deployedQueue(), 'orders.remocal.deployed', 'the Deployment reads the deployed app\'s queue');
      assert.ok(workloads.get('deployments', 'orders').metadata.annotations[SPLIT_ENV_ANNOTATION] !== undefined);

      await publish(Array.from({ length: 40 }, (_, id) => ({ id, tenant: id % 2 === 0 ? 'alice' : 'bob' })));
      await waitFor(() => lines().filter((line) => line.got !== undefined).length === 20, 'alice\'s 20 messages', 20_000);
      await waitFor(async () => (await depth('orders.remocal.deployed')) === 20, 'bob\'s 20 waiting for the deployed app', 20_000);
      const got = lines().filter((line) => line.got !== undefined);
      assert.deepEqual(got.map((line) => line.got), Array.from({ length: 20 }, (_, index) => index * 2), 'only alice\'s, in order');
      assert.ok(got.every((line) => line.tenant === 'alice'));

      const listed = await runRemocal(['session', 'list', '--json'], { cwd: dir });
      assert.equal(listed.code, 0, listed.stderr);
      const [item] = JSON.parse(listed.stdout) as { status: { splitQueues?: { queueId: string; sessionQueue: string; forwarded: number }[] } }[];
      assert.deepEqual(item!.status.splitQueues?.map(({ queueId, sessionQueue, forwarded }) => ({ queueId, sessionQueue, forwarded })), [{ queueId: 'orders', sessionQueue: queue, forwarded: 20 }]);

      const status = await runRemocal(['queues', 'status', '--json'], { cwd: dir });
      assert.equal(status.code, 0, status.stderr);
      const [split] = JSON.parse(status.stdout) as { spec: { workload: string; queueId: string; queue: string }; status: { destinations: { id: string; forwarded: number; active: boolean }[] } }[];
      assert.deepEqual(split!.spec, { workload: 'deployment/orders', queueId: 'orders', queue: 'orders' });
      assert.deepEqual(split!.status.destinations.map(({ id, forwarded, active }) => ({ id, forwarded, active })), [
        { id: 'deployed', forwarded: 20, active: true },
        { id: queue.split('.').at(-1)!, forwarded: 20, active: true },
      ]);
      const shown = await runRemocal(['queues', 'status'], { cwd: dir });
      assert.match(shown.stdout, /deployment\/orders +orders \(orders\) +deployed app +20 +0 +0 +yes/);
    } finally {
      run.child.kill('SIGTERM');
    }
    const result = await run.done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^remocal: queue orders \(orders\): 20 message\(s\) came to this session's orders\.remocal\.[0-9a-f]{8}$/m, 'the CLI says what the session received');
    // The session gone: the Deployment reads its own queue again, and the deployed app's 20 are back on it.
    await waitFor(() => deployedQueue() === 'orders', 'the Deployment pointed back', 15_000);
    await waitFor(async () => (await broker.listQueues()).length === 1, 'the temporary queues deleted', 15_000);
    assert.equal(await depth('orders'), 20, 'what the deployed app had not read is back on the original queue');
    assert.equal(workloads.get('deployments', 'orders').metadata.annotations?.[SPLIT_ENV_ANNOTATION], undefined);
    assert.deepEqual(workloads.problems, []);
    assert.deepEqual(api.unmatched.map((request) => `${request.method} ${request.path}`), []);
  });
});
