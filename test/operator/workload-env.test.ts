// Queue splitting's workload patch and its undo, against the recorded fake API server: remocal's strategic-merge
// patches are the recorded ones (deployment-env-patch-strategic, deployment-env-restore-patch-strategic) with the
// annotation that records them, the patched objects are valid for the server's OpenAPI types, the undo puts back
// what was there (a value, a valueFrom, or nothing), a restarted operator undoes what the previous one left, and two
// sessions never patch twice.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { SplitConfigError, SplitQueuesHeldError } from '../../src/core/errors.js';
import { createLogger } from '../../src/core/log.js';
import { connectKube, type Kube } from '../../src/platform/kubernetes/api.js';
import { parsePointedRecord, SPLIT_ENV_ANNOTATION, SPLIT_ENV_LABEL, WorkloadEnv, type EnvPointer } from '../../src/operator/queues/workload-env.js';
import type { SplitWorkload } from '../../src/operator/queues/split-config.js';
import { loadFixture, startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { serveWorkloadEnv, type FakeWorkloads } from '../helpers/kube-workload-env.js';

type Json = Record<string, any>;

const log = createLogger('test', { level: 'silent' });
const orders: SplitWorkload = { namespace: 'shop', kind: 'Deployment', name: 'orders' };
const ledger: SplitWorkload = { namespace: 'shop', kind: 'StatefulSet', name: 'ledger' };
/** The recorded patch set REMOCAL_SESSION=s-123 in container app: the same pointer gives the same patch. */
const recordedPointer: EnvPointer = { queueId: 'orders', container: 'app', name: 'REMOCAL_SESSION', value: 's-123' };
const alice = { id: 'sess-alice', owner: 'alice' };
const bob = { id: 'sess-bob', owner: 'bob' };

let api: FakeKubeApi;
let kube: Kube;
let workloads: FakeWorkloads;
const live = new Set<string>();

const env = (kind: 'deployments' | 'statefulsets' = 'deployments', name = 'orders'): Json[] | undefined => workloads.get(kind, name).spec.template.spec.containers[0].env;
const patchCount = () => api.requests.filter((request) => request.method === 'PATCH').length;
const manager = (isLive: (session: string) => boolean = (session) => live.has(session)) => new WorkloadEnv(kube, log, isLive);

before(async () => {
  api = await startFakeKubeApi({ log: () => {} });
  kube = connectKube({ kubeconfig: api.kubeconfig('admin') });
});

beforeEach(() => {
  workloads?.uninstall();
  workloads = serveWorkloadEnv(api);
  live.clear();
  api.requests.length = 0;
});

after(async () => {
  assert.deepEqual(api.unmatched.map((request) => `${request.method} ${request.path}`), []);
  await api.close();
});

describe('pointing a workload\'s queue variable at a temporary queue', () => {
  it('sends the recorded strategic-merge patch, with the record, the label and the resourceVersion read', async () => {
    const before = workloads.get('deployments', 'orders');
    live.add(alice.id);
    assert.equal(await manager().point(orders, [recordedPointer], alice), 'patched');
    assert.equal(workloads.patches.length, 1);
    const { metadata, ...rest } = workloads.patches[0]!.body;
    // The recorded request, exactly, plus metadata.
    assert.deepEqual(rest, loadFixture('operator/deployment-env-patch-strategic.request.json'));
    assert.equal(metadata.resourceVersion, before.metadata.resourceVersion);
    assert.deepEqual(metadata.labels, { [SPLIT_ENV_LABEL]: 'true' });
    const record = parsePointedRecord(metadata.annotations[SPLIT_ENV_ANNOTATION]);
    assert.ok(record !== null);
    assert.deepEqual({ ...record, at: 'x' }, { session: alice.id, owner: 'alice', at: 'x', vars: [{ queueId: 'orders', container: 'app', name: 'REMOCAL_SESSION', value: 's-123', original: null }] });
    assert.ok(Math.abs(Date.parse(record.at) - Date.now()) < 60_000, 'when it was set');
    // The server's result, as recorded: the new variable first.
    const recorded = loadFixture('operator/deployment-env-patch-strategic.json') as Json;
    assert.deepEqual(env(), recorded.spec.template.spec.containers[0].env);
    assert.equal(workloads.get('deployments', 'orders').metadata.generation, before.metadata.generation + 1, 'the template changed: a rollout');
    assert.deepEqual(workloads.problems, []);
  });

  it('records and restores the original value of a variable the container had', async () => {
    live.add(alice.id);
    await manager().point(orders, [{ queueId: 'orders', container: 'app', name: 'ORDERS_DB', value: 'remocal-orders-deployed' }], alice);
    assert.deepEqual(env()!.map((entry) => `${entry.name}=${entry.value}`), ['ORDERS_DB=remocal-orders-deployed', 'STAGING_SECRET=s3cr3t-from-pod']);
    const record = manager().restore(orders);
    assert.equal((await record)?.vars[0]?.original?.value, 'postgres://orders-db.shop:5432/orders');
    assert.deepEqual(env(), (loadFixture('operator/deployment-orders-before.json') as Json).spec.template.spec.containers[0].env);
    assert.deepEqual(workloads.problems, []);
  });

  it('replaces a valueFrom with the value, and puts the valueFrom back', async () => {
    // The platform team's queue name comes from a ConfigMap.
    const valueFrom = { configMapKeyRef: { name: 'orders-queues', key: 'queue' } };
    await kube.custom.patchNamespacedCustomObject(
      { group: 'apps', version: 'v1', namespace: 'shop', plural: 'deployments', name: 'orders', body: { spec: { template: { spec: { containers: [{ name: 'app', env: [{ name: 'ORDERS_QUEUE', valueFrom }] }] } } } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    live.add(alice.id);
    await manager().point(orders, [{ queueId: 'orders', name: 'ORDERS_QUEUE', value: 'orders.remocal-deployed' }], alice);
    assert.deepEqual(workloads.patches.at(-1)!.body.spec.template.spec.containers, [{ name: 'app', env: [{ name: 'ORDERS_QUEUE', value: 'orders.remocal-deployed', valueFrom: null }] }]);
    assert.deepEqual(env()![0], { name: 'ORDERS_QUEUE', value: 'orders.remocal-deployed' });
    await manager().restore(orders);
    assert.deepEqual(workloads.patches.at(-1)!.body.spec.template.spec.containers, [{ name: 'app', env: [{ name: 'ORDERS_QUEUE', value: null, valueFrom }] }]);
    assert.deepEqual(env()![0], { name: 'ORDERS_QUEUE', valueFrom });
    assert.deepEqual(workloads.problems, []);
  });

  it('a second session finds it pointed already and writes nothing; one that wants it elsewhere is refused', async () => {
    live.add(alice.id).add(bob.id);
    await manager().point(orders, [recordedPointer], alice);
    const patches = patchCount();
    assert.equal(await manager().point(orders, [recordedPointer], bob), 'already');
    assert.equal(patchCount(), patches, 'no second patch');
    await assert.rejects(manager().point(orders, [{ ...recordedPointer, value: 's-999' }], bob), (error: Error) => {
      assert.ok(error instanceof SplitQueuesHeldError);
      assert.match(error.message, /REMOCAL_SESSION \(queue "orders"\) is pointed at "s-123" by session sess-alice of alice/);
      return true;
    });
    assert.equal(patchCount(), patches);
    assert.equal(env()!.filter((entry) => entry.name === 'REMOCAL_SESSION').length, 1);
  });

  it('two sessions at once: one patch lands, the other reads again (409) and finds it done', async () => {
    live.add(alice.id).add(bob.id);
    const results = await Promise.all([manager().point(orders, [recordedPointer], alice), manager().point(orders, [recordedPointer], bob)]);
    assert.deepEqual(results.sort(), ['already', 'patched']);
    assert.ok(workloads.conflicts <= 1);
    assert.equal(env()!.filter((entry) => entry.name === 'REMOCAL_SESSION').length, 1);
    assert.equal(workloads.patches.filter((patch) => patch.body.spec !== undefined).length - workloads.conflicts, 1, 'one env patch applied');
  });

  it('writes again after conflicts with other writers', async () => {
    workloads.conflictNext(2);
    live.add(alice.id);
    assert.equal(await manager().point(orders, [recordedPointer], alice), 'patched');
    assert.equal(workloads.conflicts, 2);
    assert.equal(env()![0]!.value, 's-123');
  });

  it('a StatefulSet, with the container left to its only one', async () => {
    live.add(alice.id);
    await manager().point(ledger, [{ queueId: 'ledger', name: 'LEDGER_QUEUE', value: 'ledger.remocal-deployed' }], alice);
    assert.deepEqual(env('statefulsets', 'ledger'), [{ name: 'LEDGER_QUEUE', value: 'ledger.remocal-deployed' }]);
    await manager().restore(ledger);
    assert.equal(env('statefulsets', 'ledger'), undefined);
    assert.deepEqual(workloads.problems, []);
  });

  it('refuses, in words, a container the workload does not have', async () => {
    await assert.rejects(manager().point(orders, [{ ...recordedPointer, container: 'worker' }], alice), (error: Error) => {
      assert.ok(error instanceof SplitConfigError);
      assert.match(error.message, /Deployment\/orders has no container "worker" \(it has app\)/);
      return true;
    });
    assert.equal(patchCount(), 0);
  });
});

describe('the undo', () => {
  it('sends the recorded restore patch (`$patch: delete`), drops the record and label, and is idempotent', async () => {
    live.add(alice.id);
    await manager().point(orders, [recordedPointer], alice);
    const restored = await manager().restore(orders);
    assert.equal(restored?.session, alice.id);
    const { metadata, ...rest } = workloads.patches.at(-1)!.body;
    assert.deepEqual(rest, loadFixture('operator/deployment-env-restore-patch-strategic.request.json'));
    assert.deepEqual(metadata.annotations, { [SPLIT_ENV_ANNOTATION]: null });
    assert.deepEqual(metadata.labels, { [SPLIT_ENV_LABEL]: null });
    const now = workloads.get('deployments', 'orders');
    const recorded = loadFixture('operator/deployment-env-restore-patch-strategic.json') as Json;
    assert.deepEqual(now.spec.template.spec.containers[0].env, recorded.spec.template.spec.containers[0].env);
    assert.equal(now.metadata.annotations[SPLIT_ENV_ANNOTATION], undefined);
    assert.equal(now.metadata.labels[SPLIT_ENV_LABEL], undefined);
    const patches = patchCount();
    assert.equal(await manager().restore(orders), null);
    assert.equal(patchCount(), patches, 'nothing left to undo: no write');
    assert.deepEqual(workloads.problems, []);
  });

  it('leaves a variable someone changed since the split alone', async () => {
    live.add(alice.id);
    await manager().point(orders, [recordedPointer], alice);
    await kube.custom.patchNamespacedCustomObject(
      { group: 'apps', version: 'v1', namespace: 'shop', plural: 'deployments', name: 'orders', body: { spec: { template: { spec: { containers: [{ name: 'app', env: [{ name: 'REMOCAL_SESSION', value: 'redeployed' }] }] } } } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    await manager().restore(orders);
    assert.equal(workloads.patches.at(-1)!.body.spec, undefined, 'only the record goes');
    assert.equal(env()!.find((entry) => entry.name === 'REMOCAL_SESSION')?.value, 'redeployed');
    assert.equal(workloads.get('deployments', 'orders').metadata.annotations[SPLIT_ENV_ANNOTATION], undefined);
  });

  it('a restarted operator undoes what the previous run left, once', async () => {
    live.add(alice.id);
    await manager().point(orders, [recordedPointer], alice);
    await manager().point(ledger, [{ queueId: 'ledger', name: 'LEDGER_QUEUE', value: 'ledger.remocal-deployed' }], alice);
    // A live session's split is not touched.
    assert.deepEqual(await manager().reconcile(), []);
    // The operator was killed: its sessions are gone with it.
    const restarted = manager(() => false);
    const done = await restarted.reconcile();
    assert.deepEqual(done.map(({ workload, record }) => `${workload.kind}/${workload.name} ${record?.vars.map((v) => v.value).join(',')}`), ['Deployment/orders s-123', 'StatefulSet/ledger ledger.remocal-deployed']);
    assert.deepEqual(env(), (loadFixture('operator/deployment-orders-before.json') as Json).spec.template.spec.containers[0].env);
    assert.equal(env('statefulsets', 'ledger'), undefined);
    assert.deepEqual(await restarted.reconcile(), []);
    assert.deepEqual(workloads.problems, []);
  });

  it('a session that finds a stale record takes it over and keeps the original it saved', async () => {
    await manager().point(orders, [{ queueId: 'orders', container: 'app', name: 'ORDERS_DB', value: 'first-split' }], alice);
    // alice's session is gone (never live here); bob splits again with another temporary queue.
    live.add(bob.id);
    assert.equal(await manager().point(orders, [{ queueId: 'orders', container: 'app', name: 'ORDERS_DB', value: 'second-split' }], bob), 'patched');
    const record = parsePointedRecord(workloads.get('deployments', 'orders').metadata.annotations[SPLIT_ENV_ANNOTATION]);
    assert.equal(record?.session, bob.id);
    assert.equal(record?.vars[0]?.original?.value, 'postgres://orders-db.shop:5432/orders');
    await manager().restore(orders);
    assert.equal(env()![0]!.value, 'postgres://orders-db.shop:5432/orders');
  });
});
