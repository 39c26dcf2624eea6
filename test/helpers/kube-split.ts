// deployment/orders split on a RabbitMQ queue, as the split tests need the cluster: the workload (served by
// kube-workload-env.ts) gets ORDERS_QUEUE=orders, and the fake API serves its RemocalSplitConfig and the broker
// Secret, shaped as the API server answers them. Also what those tests ask of the broker and the workload.

import amqplib from 'amqplib';
import type { FakeKubeApi } from './kube-api.js';
import type { FakeWorkloads } from './kube-workload-env.js';

type Json = Record<string, any>;

/** The split of deployment/orders' queue `orders`, whose broker is at `brokerUrl`. */
export function serveOrdersSplit(api: FakeKubeApi, workloads: FakeWorkloads, brokerUrl: string): void {
  workloads.edit('deployments', 'orders', (object) => {
    ((object.spec.template.spec.containers[0] as Json).env as Json[]).push({ name: 'ORDERS_QUEUE', value: 'orders' });
  });
  const spec = { targetRef: { kind: 'Deployment', name: 'orders' }, queues: { orders: { queueType: 'RMQ', queueName: { env: { container: 'app', name: 'ORDERS_QUEUE' } }, connection: { secretRef: { name: 'rabbitmq', key: 'url' } } } } };
  api.override('GET', '/apis/queues.remocal.dev/v1alpha1/namespaces/shop/remocalsplitconfigs', () => ({
    status: 200,
    body: { apiVersion: 'queues.remocal.dev/v1alpha1', kind: 'RemocalSplitConfigList', metadata: { continue: '', resourceVersion: '7000' }, items: [{ apiVersion: 'queues.remocal.dev/v1alpha1', kind: 'RemocalSplitConfig', metadata: { name: 'orders', namespace: 'shop' }, spec }] },
  }));
  api.override('GET', '/api/v1/namespaces/shop/secrets/rabbitmq', () => ({
    status: 200,
    body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'rabbitmq', namespace: 'shop', resourceVersion: '7001' }, type: 'Opaque', data: { url: Buffer.from(brokerUrl).toString('base64') } },
  }));
}

/** The queue deployment/orders' app reads now. */
export function ordersQueueOf(workloads: FakeWorkloads): string {
  const container = workloads.get('deployments', 'orders').spec.template.spec.containers[0] as { env: { name: string; value: string }[] };
  return container.env.find((entry) => entry.name === 'ORDERS_QUEUE')!.value;
}

/** Publishes each message to `orders`, its id as the body, its tenant in `x-tenant`; resolves once confirmed. */
export async function publishOrders(brokerUrl: string, messages: { id: number; tenant: string }[]): Promise<void> {
  const connection = await amqplib.connect(brokerUrl);
  const channel = await connection.createConfirmChannel();
  for (const { id, tenant } of messages) channel.sendToQueue('orders', Buffer.from(String(id)), { persistent: true, headers: { 'x-tenant': tenant }, messageId: String(id) });
  await channel.waitForConfirms();
  await connection.close();
}
