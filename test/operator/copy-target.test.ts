// Copy targets against the recorded fake API server: the copy pod of every kind (validated against the server's
// OpenAPI types), scale_down and its restore, a second scale_down refused, what an operator restart restores, the
// scheduler's and the kubelet's refusals, and the policies that block copies.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createLogger } from '../../src/core/log.js';
import { connectKube, type Kube } from '../../src/platform/kubernetes/api.js';
import { parseTarget, type KubernetesTarget } from '../../src/platform/target.js';
import { prepareSession } from '../../src/platform/platforms.js';
import { createApi } from '../../src/operator/api.js';
import { NoJobSteps } from '../../src/operator/job-steps.js';
import type { SessionRegistry } from '../../src/operator/sessions.js';
import { ADOPTION_LABELS, IDLE_COMMAND } from '../../src/operator/copy-spec.js';
import { CopyTargets, parseHolder, SCALED_DOWN_ANNOTATION } from '../../src/operator/copy-targets.js';
import { checkCopyBlocks } from '../../src/operator/sessions.js';
import { parseCopyTargetRequest, type CopyTargetRequest } from '../../src/protocol/copy-target.js';
import type { AppliedPolicy } from '../../src/protocol/policy.js';
import { loadFixture, startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { serveCopies, type FakeCopies } from '../helpers/kube-copies.js';

type Json = Record<string, any>;

const log = createLogger('test', { level: 'silent' });
const defaults: CopyTargetRequest = { scaleDown: false, excludeContainers: [], excludeInitContainers: [], command: 'auto', keepLabels: true };

let api: FakeKubeApi;
let kube: Kube;
let copies: FakeCopies;
const live = new Set<string>();

function manager(isLive: (session: string) => boolean = (session) => live.has(session)): CopyTargets {
  return new CopyTargets(kube, log, { startupTimeoutMs: 10_000, pollIntervalMs: 20 }, isLive);
}

function target(text: string): KubernetesTarget {
  return parseTarget(text) as KubernetesTarget;
}

before(async () => {
  api = await startFakeKubeApi({ log: () => {} });
  kube = connectKube({ kubeconfig: api.kubeconfig('admin') });
  // No Argo Rollouts in the recording lab: its rollout is a fixture of ours (test/fixtures/k8s/rollout-orders.json).
  api.override('GET', '/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/orders', () => ({ status: 200, body: loadFixture('rollout-orders.json') }));
});

beforeEach(() => {
  copies?.uninstall();
  copies = serveCopies(api);
  live.clear();
});

after(async () => {
  await api.close();
});

describe('the copy pod of each kind', () => {
  const kinds: [string, string, Json][] = [
    ['deployment/orders', 'app', loadFixture('deployment-orders.json') as Json],
    ['statefulset/ledger', '', loadFixture('statefulset-ledger.json') as Json],
    ['job/migrate', '', loadFixture('job-migrate.json') as Json],
    ['cronjob/nightly', '', loadFixture('cronjob-nightly.json') as Json],
    ['rollout/orders', 'app', loadFixture('rollout-orders.json') as Json],
    ['pod/orders-6497447b6f-2d76r', 'app', loadFixture('pod-orders.json') as Json],
  ];
  for (const [asked, , object] of kinds) {
    it(`${asked}: a valid pod from its template, without probes or adoption labels, deleted at the end`, async () => {
      const template: Json = object.kind === 'CronJob' ? object.spec.jobTemplate.spec.template : object.kind === 'Pod' ? { metadata: object.metadata, spec: object.spec } : object.spec.template;
      live.add('s1');
      const copy = await manager().create({ id: 's1', owner: 'dev-alice' }, 'shop', target(asked), defaults);
      const sent = copies.created.get(copy.record.name)!;
      assert.ok(sent, 'the copy was created');
      assert.deepEqual(copies.problems, [], 'valid against the OpenAPI types');
      assert.match(copy.record.name, new RegExp(`^${asked.split('/')[1]!.slice(0, 40)}-copy-[0-9a-f]{5}$`));
      const [kind, name] = asked.split('/') as [string, string];
      assert.equal(sent.metadata.labels['remocal.dev/copy-of'], `${kind}.${name}`);
      assert.equal(sent.metadata.labels['remocal.dev/session'], 's1');
      assert.equal(sent.metadata.annotations['remocal.dev/source'], asked);
      assert.equal(sent.metadata.ownerReferences, undefined);
      // The template's labels stay (a Service sends the copy its share), those a controller adopts by do not.
      for (const [key, value] of Object.entries((template.metadata?.labels ?? {}) as Record<string, string>)) {
        if ((ADOPTION_LABELS as readonly string[]).includes(key)) assert.equal(sent.metadata.labels[key], undefined, key);
        else assert.equal(sent.metadata.labels[key], value, key);
      }
      for (const container of sent.spec.containers as Json[]) {
        assert.equal(container.readinessProbe, undefined);
        assert.equal(container.livenessProbe, undefined);
        assert.equal(container.startupProbe, undefined);
      }
      // A job's command ends: `auto` idles its copy; a deployment's is kept.
      const idles = kind === 'job' || kind === 'cronjob';
      assert.deepEqual(sent.spec.containers[0].command, idles ? IDLE_COMMAND : template.spec.containers[0].command);
      if (kind === 'pod') {
        assert.equal(sent.spec.nodeName, undefined);
        assert.ok(!(sent.spec.volumes ?? []).some((volume: Json) => volume.name.startsWith('kube-api-access-')));
      }
      assert.equal(copy.resolved.podName, copy.record.name);
      assert.equal(copy.record.phase, 'Running');
      await copy.release();
      assert.deepEqual(copies.deleted, [copy.record.name]);
      assert.equal(copies.pods.size, 0);
    });
  }

  it('keep_labels false gives the copy only remocal\'s labels, as the recorded copy-pod-create; excluded containers are dropped', async () => {
    const copy = await manager().create({ id: 's2', owner: 'admin' }, 'shop', target('deployment/orders'), { ...defaults, keepLabels: false, command: 'idle' });
    const sent = copies.created.get(copy.record.name)!;
    const recorded = loadFixture('operator/copy-pod-create.request.json') as Json;
    assert.deepEqual(Object.keys(sent.metadata.labels).filter((key) => key.startsWith('remocal.dev/')).sort(), Object.keys(recorded.metadata.labels).filter((key) => key.startsWith('remocal.dev/')).sort());
    assert.equal(sent.metadata.labels.app, undefined);
    assert.deepEqual(sent.spec.containers[0].command, IDLE_COMMAND);
    await copy.release();
    await assert.rejects(manager().create({ id: 's3', owner: 'admin' }, 'shop', target('deployment/orders'), { ...defaults, excludeContainers: ['app'] }), {
      code: 'REMOCAL_COPY_TARGET_UNSUPPORTED',
      message: /leaves the copy of deployment\/orders no container/,
    });
    await assert.rejects(manager().create({ id: 's3', owner: 'admin' }, 'shop', target('deployment/orders'), { ...defaults, excludeContainers: ['sidecar'] }), { message: /has no container sidecar to exclude/ });
    assert.equal(copies.pods.size, 0);
  });
});

describe('scale_down', () => {
  it('scales the workload to 0 for the session and back to its replicas afterwards, in the cluster\'s own records', async () => {
    live.add('s10');
    const copy = await manager().create({ id: 's10', owner: 'dev-alice' }, 'shop', target('deployment/orders'), { ...defaults, scaleDown: true });
    assert.equal(copies.replicas(), 0);
    assert.deepEqual(parseHolder(copies.deployment().metadata.annotations[SCALED_DOWN_ANNOTATION]), { session: 's10', owner: 'dev-alice', replicas: 2 });
    assert.equal(copy.record.scaledDown, true);
    await copy.release();
    assert.equal(copies.replicas(), 2);
    assert.equal(copies.deployment().metadata.annotations[SCALED_DOWN_ANNOTATION], undefined);
    assert.equal(copies.deployment().metadata.labels['remocal.dev/scaled-down'], undefined);
    assert.deepEqual(copies.problems, []);
  });

  it('a second scale_down of the workload is refused, naming the holder; its copy is not left behind', async () => {
    live.add('s20');
    const first = await manager().create({ id: 's20', owner: 'dev-alice' }, 'shop', target('deployment/orders'), { ...defaults, scaleDown: true });
    live.add('s21');
    await assert.rejects(manager().create({ id: 's21', owner: 'bob' }, 'shop', target('deployment/orders'), { ...defaults, scaleDown: true }), (error: Error & { code?: string; hint?: string }) => {
      assert.equal(error.code, 'REMOCAL_COPY_TARGET_HELD');
      assert.match(error.message, /deployment\/orders is already scaled down by session s20 of dev-alice/);
      assert.match(error.hint ?? '', /ask dev-alice/);
      return true;
    });
    assert.deepEqual([...copies.pods.keys()], [first.record.name]);
    assert.equal(copies.replicas(), 0);
    await first.release();
    assert.equal(copies.replicas(), 2);
  });

  it('a 409 on the scale (someone wrote meanwhile) is read again and retried', async () => {
    live.add('s30');
    copies.conflictNext(2);
    const copy = await manager().create({ id: 's30', owner: 'admin' }, 'shop', target('deployment/orders'), { ...defaults, scaleDown: true });
    assert.equal(copies.conflicts, 2);
    assert.equal(copies.replicas(), 0);
    await copy.release();
    assert.equal(copies.replicas(), 2);
  });

  it('an operator that restarts mid-session restores the workload and deletes the copy at its start', async () => {
    live.add('s40');
    const copy = await manager().create({ id: 's40', owner: 'dev-alice' }, 'shop', target('deployment/orders'), { ...defaults, scaleDown: true });
    assert.equal(copies.replicas(), 0);
    // The operator dies: nothing is released, its memory is gone. The next one knows no live session.
    const next = manager(() => false);
    const done = await next.reconcile();
    assert.equal(done.length, 2, done.join('\n'));
    assert.equal(copies.replicas(), 2);
    assert.deepEqual(copies.deleted, [copy.record.name]);
    assert.equal(copies.deployment().metadata.annotations[SCALED_DOWN_ANNOTATION], undefined);
    // A workload held by a gone session is taken over with the count it saved, not its present 0.
    await manager().create({ id: 's41', owner: 'bob' }, 'shop', target('deployment/orders'), { ...defaults, scaleDown: true }).then((again) => again.release());
    assert.equal(copies.replicas(), 2);
  });

  it('is refused for kinds without replicas', async () => {
    await assert.rejects(manager().create({ id: 's50', owner: 'admin' }, 'shop', target('job/migrate'), { ...defaults, scaleDown: true }), { code: 'REMOCAL_COPY_TARGET_UNSUPPORTED', message: /scale_down applies to deployments/ });
    assert.equal(copies.created.size, 0);
  });
});

describe('a copy that cannot run fails with the reason, quickly', () => {
  for (const [fate, reason] of [
    ['missing-image', /container app: ErrImageNeverPull \(Container image "k8s-lab\.local\/orders-missing:9\.9" is not present with pull policy of Never\).*events: ErrImageNeverPull/],
    ['unschedulable', /the scheduler found no node for it: 0\/1 nodes are available: 1 node\(s\) didn't match Pod's node affinity\/selector/],
  ] as const) {
    it(fate, async () => {
      copies.fate = fate;
      const started = Date.now();
      await assert.rejects(manager().create({ id: 's60', owner: 'admin' }, 'shop', target('deployment/orders'), defaults), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'REMOCAL_COPY_TARGET_FAILED');
        assert.match(error.message, reason);
        return true;
      });
      assert.ok(Date.now() - started < 3000, 'not a timeout');
      assert.equal(copies.pods.size, 0, 'the failed copy is deleted');
    });
  }
});

describe('policies and requests', () => {
  const policy = (name: string, block: string[]): AppliedPolicy => ({ name, spec: { block } }) as unknown as AppliedPolicy;

  it('block copy-target and copy-target-scale-down refuse, naming the policy', () => {
    const orders = target('deployment/orders');
    assert.throws(() => checkCopyBlocks([policy('shop/no-copies', ['copy-target'])], defaults, orders), { code: 'REMOCAL_POLICY_BLOCKED', message: /Policy shop\/no-copies forbids copies of deployment\/orders/ });
    assert.throws(() => checkCopyBlocks([policy('shop/keep-up', ['copy-target-scale-down'])], { ...defaults, scaleDown: true }, orders), { code: 'REMOCAL_POLICY_BLOCKED', message: /Policy shop\/keep-up forbids scaling/ });
    assert.doesNotThrow(() => checkCopyBlocks([policy('shop/keep-up', ['copy-target-scale-down'])], defaults, orders));
  });

  it('the request a client sends is bounded and checked', () => {
    assert.deepEqual(parseCopyTargetRequest('{}'), { ok: true, value: defaults });
    assert.equal(parseCopyTargetRequest('{"command":"rm -rf"}').ok, false);
    assert.equal(parseCopyTargetRequest('{"excludeContainers":["../x"]}').ok, false);
    assert.equal(parseCopyTargetRequest(JSON.stringify({ excludeContainers: Array.from({ length: 65 }, (_, index) => `c${index}`) })).ok, false);
    assert.equal(parseCopyTargetRequest('x'.repeat(9000)).ok, false);
    assert.equal(parseCopyTargetRequest('[]').ok, false);
  });
});

describe('where copies are not made, and how they show', () => {
  const request = { redirects: false, files: 'off' as const, logLevel: 'info', startupTimeoutMs: 1000, onStep: () => ({ done: () => {} }), onNote: () => {} };
  const platforms = (use: boolean | 'auto') => ({
    kubernetes: { kube: { kubeconfig: api.kubeconfig('admin') }, agent: {} } as never,
    operator: { use, url: undefined, token: undefined, caFile: undefined },
    copyTarget: defaults,
  });

  it('a host\'s target, or operator: false, refuses copy_target in words', async () => {
    await assert.rejects(prepareSession(parseTarget('pid/1'), platforms('auto'), request), { code: 'REMOCAL_COPY_TARGET_UNSUPPORTED', message: /pid\/1 is a target on a host/ });
    await assert.rejects(prepareSession(parseTarget('deployment/orders'), platforms(false), request), { code: 'REMOCAL_COPY_TARGET_UNSUPPORTED', message: /without the operator/ });
  });

  it('copytargets lists the copies, as a Table for kubectl', async () => {
    const record = { name: 'orders-copy-abcde', namespace: 'shop', session: 's70', owner: 'dev-alice', source: 'deployment/orders', scaledDown: true, phase: 'Running', createdAt: Date.now() };
    const sessions = { catalog: { checkNamespace: () => {} }, copies: () => [record] } as unknown as SessionRegistry<unknown>;
    const served = createApi({ sessions, agents: {} as never, jobSteps: new NoJobSteps(), auth: { authenticate: () => ({ ok: true, identity: { user: 'dev-alice', groups: [], extra: {}, admin: false } }) } as never, log });
    const ask = (path: string, accept = 'application/json') =>
      new Promise<Json>((resolve) => {
        const response = { headersSent: false, writeHead: () => response, end: (text: string) => resolve(JSON.parse(text) as Json) };
        served.onRequest({ method: 'GET', url: path, headers: { accept } } as never, response as never);
      });
    const table = await ask('/apis/operator.remocal.dev/v1/namespaces/shop/copytargets', 'application/json;as=Table;v=v1;g=meta.k8s.io');
    assert.equal(table.kind, 'Table');
    assert.deepEqual(table.rows[0].cells.slice(0, 6), ['orders-copy-abcde', 'deployment/orders', 's70', 'dev-alice', true, 'Running']);
    const list = await ask('/apis/operator.remocal.dev/v1/copytargets');
    assert.equal(list.items[0].spec.source, 'deployment/orders');
    const discovery = await ask('/apis/operator.remocal.dev/v1');
    const resource = discovery.resources.find((entry: Json) => entry.name === 'copytargets');
    // No list+watch+delete together: the garbage collector would then watch it cluster-wide.
    assert.deepEqual(resource.verbs, ['get', 'list']);
  });
});
