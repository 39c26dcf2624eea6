// policies.remocal.dev on the fake API server, driven by @kubernetes/client-node 1.4 (CustomObjectsApi and Watch,
// what the operator uses), against the recordings: the recorded sequence of creates, 422s, a merge patch, a list, a
// get and a delete is replayed and must answer as the real server did, the watch opened before it must see the
// recorded events, and what a test changes through the handle must reach a watch.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiException, CustomObjectsApi, KubeConfig, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import { POLICY_BLOCKS } from '../../src/protocol/policy.js';
import { POLICY_SCHEMA } from '../../src/operator/policy-crd.js';
import { loadFixture, startFakeKubeApi, type FakeKubeApi, type KubeUser } from '../helpers/kube-api.js';
import { servePolicies, type FakePolicies } from '../helpers/kube-policies.js';
import { waitFor } from '../helpers/processes.js';

const group = 'policies.remocal.dev';
const version = 'v1alpha1';
const plural = 'remocalpolicies';
const namespacedPath = `/apis/${group}/${version}/namespaces/shop/${plural}`;

type Json = Record<string, any>;

function configFor(api: FakeKubeApi, user: KubeUser): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(api.kubeconfig(user));
  return config;
}

/** What differs between two servers for the same history: the uid, the clock, the managed fields. */
function stable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stable);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).filter(([key]) => !['uid', 'creationTimestamp', 'managedFields'].includes(key)).map(([key, field]) => [key, stable(field)]));
}

/** Equal to the recording, key order included (JSON.stringify keeps it): the server sorts every key. */
function assertAsRecorded(actual: unknown, recorded: unknown, what: string): void {
  assert.equal(JSON.stringify(stable(actual)), JSON.stringify(stable(recorded)), what);
}

/** The Status an ApiException carries (client-node hands the body over as text), or the text when it is none. */
async function refusal(call: Promise<unknown>): Promise<{ code: number; body: Json; text: string }> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ApiException, String(error));
    const text = String(error.body);
    return { code: error.code, body: text.startsWith('{') ? (JSON.parse(text) as Json) : {}, text };
  }
  assert.fail('the call succeeded');
}

interface OpenWatch {
  events: { type: string; object: Json }[];
  ended: Promise<unknown>;
  stop: () => void;
}

async function openWatch(config: KubeConfig, path: string, query: Record<string, string | number | boolean>): Promise<OpenWatch> {
  const events: OpenWatch['events'] = [];
  let end!: (error: unknown) => void;
  const ended = new Promise((resolve) => (end = resolve));
  const controller = await new Watch(config).watch(path, query, (type, object: Json) => events.push({ type, object }), (error: unknown) => end(error));
  return { events, ended, stop: () => controller.abort() };
}

/** The recorded 422, with the recording lab's enum and pattern where remocal's CRD has its own. */
function asOurs(status: Json): Json {
  const lab = (loadFixture('operator/crd-remocalpolicies-create.request.json') as Json).spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
  const ours = POLICY_SCHEMA.properties!.spec!.properties!;
  const quoted = (values: readonly string[]) => values.map((value) => `"${value}"`).join(', ');
  const replace = (text: string) => text.replaceAll(quoted(lab.block.items.enum as string[]), quoted(POLICY_BLOCKS)).replaceAll(lab.targetPath.pattern as string, ours.targetPath!.pattern!);
  return JSON.parse(JSON.stringify(status), (_key, value: unknown) => (typeof value === 'string' ? replace(value) : value)) as Json;
}

describe('policies.remocal.dev on the fake API server, through @kubernetes/client-node', () => {
  let api: FakeKubeApi;
  let admin: KubeConfig;
  let custom: CustomObjectsApi;
  const logged: string[] = [];

  before(async () => {
    api = await startFakeKubeApi({ log: (line) => logged.push(line) });
    admin = configFor(api, 'admin');
    custom = admin.makeApiClient(CustomObjectsApi);
  });
  after(async () => {
    await api.close();
  });

  it('without the CRDs, answers as the recorded cluster did: plain-text 404s', async () => {
    const error = await refusal(custom.listNamespacedCustomObject({ group, version, namespace: 'shop', plural }));
    assert.deepEqual([error.code, error.text], [404, loadFixture('operator/crd-resource-absent.txt')]);
    const raw = await fetch(`${api.url}/apis/${group}/${version}`, { headers: { authorization: 'Bearer admin-token' } });
    assert.equal(raw.status, 404);
    assert.equal(await raw.text(), loadFixture('operator/crd-group-absent.txt'));
    assert.deepEqual(api.unmatched, []);
  });

  describe('with the CRDs', () => {
    let policies: FakePolicies;
    let watch: OpenWatch;
    before(async () => {
      policies = servePolicies(api);
      // Opened before the writes, from the recorded empty list's resourceVersion, as the recorded watch was.
      watch = await openWatch(admin, namespacedPath, { resourceVersion: '3179', timeoutSeconds: 60 });
      await waitFor(() => policies.openWatches === 1, 'the watch to be open');
    });
    after(() => {
      watch.stop();
      policies.remove();
    });

    const create = (name: string, options: { fieldValidation?: string; dryRun?: string } = {}) =>
      custom.createNamespacedCustomObject({ group, version, namespace: 'shop', plural, body: loadFixture(`operator/${name}.request.json`), ...options }) as Promise<Json>;

    it('replays the recorded creates: 201s as recorded, unknown fields pruned, Strict ignored, a dry run stored nowhere', async () => {
      assertAsRecorded(await custom.listNamespacedCustomObject({ group, version, namespace: 'shop', plural }), loadFixture('operator/policies-list-empty.json'), 'empty list');
      assertAsRecorded(await create('policy-create-valid'), loadFixture('operator/policy-create-valid.json'), 'valid');
      assertAsRecorded(await create('policy-create-unknown-field-pruned'), loadFixture('operator/policy-create-unknown-field-pruned.json'), 'pruned');
      assertAsRecorded(await create('policy-create-unknown-field-strict', { fieldValidation: 'Strict' }), loadFixture('operator/policy-create-unknown-field-strict.json'), 'strict');
      assertAsRecorded(await create('policy-create-dryrun', { dryRun: 'All' }), loadFixture('operator/policy-create-dryrun.json'), 'dry run');
      assert.equal(policies.get('RemocalPolicy', 'dry'), undefined);
      assert.equal(policies.resourceVersion, '3182');
    });

    it('refuses the recorded bad policies with the recorded 422s, in remocal\'s enum and pattern where the lab had its own', async () => {
      for (const name of ['bad-enum', 'duplicate-set', 'pattern-mismatch', 'bad-selector-operator', 'bad-cidr', 'several-errors']) {
        const error = await refusal(create(`policy-create-${name}`));
        assert.equal(error.code, 422, name);
        assert.deepEqual(error.body, asOurs(loadFixture(`operator/policy-create-${name}.json`) as Json), name);
      }
      // These three have nothing of the lab's schema in them: recorded byte for byte.
      for (const name of ['duplicate-set', 'bad-selector-operator', 'bad-cidr']) assert.deepEqual(asOurs(loadFixture(`operator/policy-create-${name}.json`) as Json), loadFixture(`operator/policy-create-${name}.json`));
      assert.equal(policies.resourceVersion, '3182', 'a refused create writes nothing');
    });

    it('merge-patches, lists, gets and deletes as recorded', async () => {
      const patched = await custom.patchNamespacedCustomObject(
        { group, version, namespace: 'shop', plural, name: 'no-steal', body: loadFixture('operator/policy-patch-merge.request.json') },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      assertAsRecorded(patched, loadFixture('operator/policy-patch-merge.json'), 'patch');
      assertAsRecorded(await custom.listNamespacedCustomObject({ group, version, namespace: 'shop', plural }), loadFixture('operator/policies-list.json'), 'list');
      assertAsRecorded(await custom.getNamespacedCustomObject({ group, version, namespace: 'shop', plural, name: 'no-steal' }), loadFixture('operator/policy-get.json'), 'get');
      const deleted = (await custom.deleteNamespacedCustomObject({ group, version, namespace: 'shop', plural, name: 'no-steal' })) as Json;
      assertAsRecorded(deleted, loadFixture('operator/policy-delete.json'), 'delete');
      assert.match(deleted.details.uid as string, /^[0-9a-f-]{36}$/);
      const missing = await refusal(custom.getNamespacedCustomObject({ group, version, namespace: 'shop', plural, name: 'no-steal' }));
      assert.deepEqual([missing.code, missing.body], [404, loadFixture('operator/policy-get-not-found.json')]);
    });

    it('the watch saw what the recorded watch saw: three ADDED, MODIFIED, DELETED', async () => {
      const recorded = (loadFixture('operator/policies-watch.jsonl') as string).trim().split('\n').map((line) => JSON.parse(line) as Json);
      await waitFor(() => watch.events.length >= recorded.length, 'the recorded number of events');
      assert.equal(watch.events.length, recorded.length);
      watch.events.forEach((event, index) => assertAsRecorded(event, recorded[index], `event ${index}`));
    });

    it('gives a watch from no resourceVersion the current state first; a handle change reaches it', async () => {
      const current = await openWatch(admin, namespacedPath, {});
      try {
        await waitFor(() => current.events.length === 2, 'the two stored policies');
        assert.deepEqual(current.events.map((event) => [event.type, event.object.metadata.name]), [['ADDED', 'unknown-field'], ['ADDED', 'unknown-strict']]);
        policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'no-steal' }, spec: { targetPath: 'deployment/orders', block: ['steal'] } });
        policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'no-steal' }, spec: { targetPath: 'deployment/orders', block: ['steal', 'mirror'] } });
        // The same again changes nothing: no event, no resourceVersion.
        const before = policies.resourceVersion;
        policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'no-steal' }, spec: { targetPath: 'deployment/orders', block: ['steal', 'mirror'] } });
        assert.equal(policies.resourceVersion, before);
        assert.ok(policies.delete('RemocalPolicy', 'no-steal'));
        await waitFor(() => current.events.length === 5, 'the handle\'s three changes');
        assert.deepEqual(current.events.slice(2).map((event) => [event.type, event.object.metadata.name, event.object.metadata.generation, event.object.spec.block]), [
          ['ADDED', 'no-steal', 1, ['steal']],
          ['MODIFIED', 'no-steal', 2, ['steal', 'mirror']],
          ['DELETED', 'no-steal', 2, ['steal', 'mirror']],
        ]);
        assert.throws(() => policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'bad' }, spec: { block: ['teleport'] } }), /RemocalPolicy\.policies\.remocal\.dev "bad" is invalid: spec\.block: Unsupported value: "teleport"/);
      } finally {
        current.stop();
      }
    });

    it('ends watches on request and at timeoutSeconds; a watch from a compacted resourceVersion gets 410 Expired', async () => {
      const open = await openWatch(admin, namespacedPath, { resourceVersion: policies.resourceVersion });
      await waitFor(() => policies.openWatches === 2, 'the second watch');
      policies.endWatches();
      assert.equal(await open.ended, null);
      assert.equal(await watch.ended, null);
      const timed = await openWatch(admin, namespacedPath, { resourceVersion: policies.resourceVersion, timeoutSeconds: 1 });
      assert.equal(await timed.ended, null);
      const from = policies.resourceVersion;
      policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'later' }, spec: {} });
      policies.compact();
      const expired = await openWatch(admin, namespacedPath, { resourceVersion: from });
      assert.equal(await expired.ended, null);
      assert.deepEqual(expired.events.map((event) => [event.type, event.object.code, event.object.reason]), [['ERROR', 410, 'Expired']]);
    });

    it('serves RemocalClusterPolicy cluster-wide and RemocalPolicy across namespaces, in the recorded list shapes', async () => {
      const body = { ...(loadFixture('operator/clusterpolicy-create-valid.request.json') as Json), spec: { targetPath: 'deployment/orders', block: ['fs-write'] } };
      const created = (await custom.createClusterCustomObject({ group, version, plural: 'remocalclusterpolicies', body })) as Json;
      const recorded = loadFixture('operator/clusterpolicy-create-valid.json') as Json;
      assertAsRecorded({ ...created, metadata: { ...created.metadata, resourceVersion: 'x' }, spec: {} }, { ...recorded, metadata: { ...recorded.metadata, resourceVersion: 'x' }, spec: {} }, 'cluster policy');
      const list = (await custom.listClusterCustomObject({ group, version, plural: 'remocalclusterpolicies' })) as Json;
      assert.deepEqual(Object.keys(list), Object.keys(loadFixture('operator/clusterpolicies-list.json') as Json));
      assert.equal(list.kind, 'RemocalClusterPolicyList');
      assert.deepEqual(list.items.map((item: Json) => item.metadata.name), ['cluster-no-fs']);
      policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'elsewhere', namespace: 'other' }, spec: {} });
      const everywhere = (await custom.listClusterCustomObject({ group, version, plural })) as Json;
      assert.deepEqual(everywhere.items.map((item: Json) => `${item.metadata.namespace}/${item.metadata.name}`), ['other/elsewhere', 'shop/later', 'shop/unknown-field', 'shop/unknown-strict']);
      const duplicate = await refusal(custom.createClusterCustomObject({ group, version, plural: 'remocalclusterpolicies', body }));
      assert.deepEqual([duplicate.code, duplicate.body.reason], [409, 'AlreadyExists']);
      // No recording shows a 409: the request says what the answer was built from.
      assert.match(api.requests.at(-1)!.note ?? '', /^added: /);
    });

    it('refuses dev-alice as her recording shows, and leaves nothing unmatched', async () => {
      const alice = configFor(api, 'dev-alice').makeApiClient(CustomObjectsApi);
      const error = await refusal(alice.listNamespacedCustomObject({ group, version, namespace: 'shop', plural }));
      assert.deepEqual([error.code, error.body], [403, loadFixture('operator/alice-forbidden-policies-list.json')]);
      assert.deepEqual(api.unmatched.map((request) => `${request.method} ${request.path}`), []);
      assert.deepEqual(logged, []);
    });
  });
});
