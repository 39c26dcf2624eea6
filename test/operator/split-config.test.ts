// Reading a workload's RemocalSplitConfig and its broker Secret on the fake API server: the CRD's schema refuses what
// the API server would (as structural.ts words it), and every way the read can fail is an error that says what is
// missing, never the broker URL it read. The custom resources and Secrets are served as a cluster with remocal's CRD
// would serve them: lists shaped like the recorded policies-list, a missing Secret as the server's NotFound, a
// forbidden one worded as the recorded 403s, and a cluster without the CRD as the recorded plain-text 404.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { KubeForbiddenError, SplitConfigError } from '../../src/core/errors.js';
import { connectKube, type Kube } from '../../src/platform/kubernetes/api.js';
import { readSplitConfig } from '../../src/operator/queues/split-config.js';
import { checkSplitConfigObject } from '../../src/operator/queues/split-config-check.js';
import { SPLIT_CONFIG_SCHEMA, splitConfigCrd } from '../../src/operator/split-config-crd.js';
import { structuralProblems, validateAgainstSchema } from '../../src/operator/structural.js';
import type { SplitConfigSpec, SplitQueuesRequest } from '../../src/protocol/split-queues.js';
import { loadFixture, notFoundBody, startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { validateAgainstOpenApi } from '../helpers/openapi.js';

type Json = Record<string, any>;

const spec: SplitConfigSpec = {
  targetRef: { kind: 'Deployment', name: 'orders' },
  queues: {
    orders: { queueType: 'RMQ', queueName: { env: { container: 'app', name: 'ORDERS_QUEUE' } }, connection: { secretRef: { name: 'rabbitmq', key: 'url' } } },
    events: { queueType: 'NATS', queueName: { env: { name: 'EVENTS_SUBJECT' } }, connection: { secretRef: { name: 'nats', key: 'url' } } },
    audit: { queueType: 'RMQ', queueName: { configKey: { path: '/etc/orders/config.yaml', key: 'audit.queue' } }, connection: { secretRef: { name: 'rabbitmq', key: 'url' } } },
  },
};
const object = (name: string, body: unknown) => ({ apiVersion: 'queues.remocal.dev/v1alpha1', kind: 'RemocalSplitConfig', metadata: { name, namespace: 'shop' }, spec: body });
const RABBIT_URL = 'amqp://orders:p4ss-w0rd@rabbitmq.shop:5672/orders';
const ask = (queues: Record<string, 'RMQ' | 'NATS'>): SplitQueuesRequest => Object.fromEntries(Object.entries(queues).map(([id, queueType]) => [id, { queueType, messageFilter: { 'x-tenant': 'alice' } }]));

let api: FakeKubeApi;
let kube: Kube;
let configs: Json[];
let secrets: Map<string, Json>;
let forbidSecrets: boolean;
let crdInstalled: boolean;

function secret(name: string, data: Record<string, string>): void {
  const body = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'shop', resourceVersion: '7001' }, type: 'Opaque', data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')])) };
  assert.deepEqual(validateAgainstOpenApi(body, 'io.k8s.api.core.v1.Secret'), []);
  secrets.set(name, body);
}

/** As an admin's `kubectl apply` would store it: refused by the CRD's schema, or pruned. */
function applyConfig(name: string, body: unknown): void {
  const checked = validateAgainstSchema(SPLIT_CONFIG_SCHEMA, object(name, body));
  if (checked.errors.length > 0) throw new Error(checked.errors.join(', '));
  configs.push(checked.value as Json);
}

before(async () => {
  api = await startFakeKubeApi({ log: () => {} });
  kube = connectKube({ kubeconfig: api.kubeconfig('admin') });
  api.override('GET', '/apis/queues.remocal.dev/v1alpha1/namespaces/shop/remocalsplitconfigs', () => {
    // A cluster without the CRD answers its resource with the recorded plain-text 404.
    if (!crdInstalled) return api.recorded('crd-resource-absent');
    return { status: 200, body: { apiVersion: 'queues.remocal.dev/v1alpha1', items: configs, kind: 'RemocalSplitConfigList', metadata: { continue: '', resourceVersion: '7000' } } };
  });
  api.override('GET', /^\/api\/v1\/namespaces\/shop\/secrets\/[^/?]+$/, (request) => {
    const name = request.pathname.split('/').pop()!;
    const info = { group: '', version: 'v1', namespace: 'shop', resource: 'secrets', name, subresource: undefined };
    if (forbidSecrets) {
      const forbidden = structuredClone(loadFixture('alice-forbidden-secrets.json')) as Json;
      forbidden.message = `secrets "${name}" is forbidden: User "system:serviceaccount:remocal-system:remocal-operator" cannot get resource "secrets" in API group "" in the namespace "shop"`;
      forbidden.details = { name, kind: 'secrets' };
      return { status: 403, body: forbidden };
    }
    const found = secrets.get(name);
    return found === undefined ? { status: 404, body: notFoundBody(info) } : { status: 200, body: found };
  });
});

beforeEach(() => {
  configs = [];
  secrets = new Map();
  forbidSecrets = false;
  crdInstalled = true;
  applyConfig('orders', spec);
  secret('rabbitmq', { url: `${RABBIT_URL}\n` });
  secret('nats', { url: 'nats://orders:n4ts@nats.shop:4222' });
});

after(async () => {
  assert.deepEqual(api.unmatched.map((request) => `${request.method} ${request.path}`), []);
  await api.close();
});

const orders = { namespace: 'shop', kind: 'Deployment' as const, name: 'orders' };

async function refusal(request: SplitQueuesRequest, Class: new (...args: never[]) => Error = SplitConfigError): Promise<string> {
  try {
    await readSplitConfig(kube, orders, request);
  } catch (error) {
    assert.ok(error instanceof Class, String(error));
    assert.doesNotMatch(`${(error as Error).message} ${(error as { hint?: string }).hint ?? ''}`, /p4ss|n4ts/, 'credentials never reach a message');
    return (error as Error).message;
  }
  assert.fail('read');
}

describe('the RemocalSplitConfig CRD', () => {
  it('is structural, and refuses what the server would', () => {
    assert.deepEqual(structuralProblems((splitConfigCrd().spec as Json).versions[0].schema.openAPIV3Schema), []);
    assert.throws(() => applyConfig('bad', { ...spec, targetRef: { kind: 'Job', name: 'orders' } }), /spec\.targetRef\.kind: Unsupported value: "Job": supported values: "Deployment", "StatefulSet"/);
    assert.throws(() => applyConfig('bad', { ...spec, queues: { q: { ...spec.queues.orders, queueType: 'SQS' } } }), /queueType: Unsupported value: "SQS"/);
    assert.throws(() => applyConfig('bad', { ...spec, queues: { q: { ...spec.queues.orders, queueName: {} } } }), /queueName: Invalid value: 1: .*should have at least 1 properties/);
    assert.throws(() => applyConfig('bad', { ...spec, queues: { q: { ...spec.queues.orders, queueName: { env: { name: 'A' }, configKey: { path: '/a', key: 'b' } } } } }), /should have at most 1 properties/);
    assert.throws(() => applyConfig('bad', { ...spec, queues: { q: { ...spec.queues.orders, connection: { secretRef: { name: 'Not A Name', key: 'url' } } } } }), /secretRef\.name: Invalid value: "Not A Name"/);
    assert.throws(() => applyConfig('bad', { targetRef: spec.targetRef }), /spec\.queues: Required value/);
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`q${i}`, spec.queues.orders]));
    assert.throws(() => applyConfig('bad', { ...spec, queues: many }), /should have at most 16 properties/);
  });

  it('its queue ids are checked when the operator reads it', () => {
    const checked = checkSplitConfigObject(object('x', { ...spec, queues: { 'has space': spec.queues.orders } }));
    assert.equal(checked.ok, false);
    assert.match((checked as { errors: string[] }).errors.join(), /"has space" is not a queue id/);
  });
});

describe('readSplitConfig', () => {
  it('resolves the queues asked, with the broker URL from the Secret', async () => {
    const resolved = await readSplitConfig(kube, orders, ask({ orders: 'RMQ', events: 'NATS' }));
    assert.equal(resolved.name, 'orders');
    assert.deepEqual(resolved.queues, [
      { queueId: 'orders', queueType: 'RMQ', env: { container: 'app', name: 'ORDERS_QUEUE' }, brokerUrl: RABBIT_URL, secret: { name: 'rabbitmq', key: 'url' } },
      { queueId: 'events', queueType: 'NATS', env: { name: 'EVENTS_SUBJECT' }, brokerUrl: 'nats://orders:n4ts@nats.shop:4222', secret: { name: 'nats', key: 'url' } },
    ]);
  });

  it('says what is missing, in words', async () => {
    assert.match(await refusal(ask({ payments: 'RMQ' })), /RemocalSplitConfig shop\/orders has no queue "payments"; it has audit, events, orders/);
    assert.match(await refusal(ask({ orders: 'NATS' })), /is on RMQ, not NATS as feature\.split_queues says/);
    assert.match(await refusal(ask({ audit: 'RMQ' })), /takes its name from a config file key, which remocal cannot split yet/);
    await assert.rejects(readSplitConfig(kube, { ...orders, name: 'payments' }, ask({ orders: 'RMQ' })), /No RemocalSplitConfig in namespace shop names Deployment\/payments/);
    applyConfig('orders-too', spec);
    assert.match(await refusal(ask({ orders: 'RMQ' })), /2 RemocalSplitConfigs in namespace shop name Deployment\/orders \(orders, orders-too\); there must be one per workload/);
  });

  it('refuses a Secret that is missing, lacks its key, or holds no URL for the broker', async () => {
    secrets.delete('rabbitmq');
    assert.match(await refusal(ask({ orders: 'RMQ' })), /The Secret shop\/rabbitmq, which holds the broker URL of queue "orders" of Deployment\/orders in namespace shop, does not exist/);
    secret('rabbitmq', { other: RABBIT_URL });
    assert.match(await refusal(ask({ orders: 'RMQ' })), /has no key "url"/);
    secret('rabbitmq', { url: 'nats://orders:p4ss@nats.shop:4222' });
    assert.match(await refusal(ask({ orders: 'RMQ' })), /does not hold a RMQ broker URL \(amqp:\/\/…, amqps:\/\/…\)/);
    secret('rabbitmq', { url: 'p4ss not a url' });
    assert.match(await refusal(ask({ orders: 'RMQ' })), /does not hold a RMQ broker URL/);
  });

  it('a Secret the operator may not read names the RoleBinding that grants it', async () => {
    forbidSecrets = true;
    const message = await refusal(ask({ orders: 'RMQ' }), KubeForbiddenError);
    assert.match(message, /The operator may not read the Secret shop\/rabbitmq/);
    try {
      await readSplitConfig(kube, orders, ask({ orders: 'RMQ' }));
    } catch (error) {
      assert.match((error as KubeForbiddenError).hint ?? '', /kubectl create rolebinding remocal-operator:split-secrets -n shop --clusterrole=remocal-operator-split-secrets/);
    }
  });

  it('a cluster without the CRD says how to install it', async () => {
    crdInstalled = false;
    const message = await refusal(ask({ orders: 'RMQ' }));
    assert.match(message, /This cluster has no RemocalSplitConfig resource \(queues\.remocal\.dev\/v1alpha1\)/);
  });
});
