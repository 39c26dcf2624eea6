// The agent's Kubernetes objects, checked against the API's own OpenAPI types, and their start-up against the
// recorded fake API server: the ephemeral-container PATCH, the node and targetless Jobs, the waits, the errors.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AgentStartError, KubeForbiddenError, TimeoutError } from '../../src/core/errors.js';
import { connectKube, type Kube } from '../../src/platform/kubernetes/api.js';
import { startKubeAgent } from '../../src/platform/kubernetes/agent.js';
import {
  ephemeralAgentContainer,
  ephemeralContainerPatch,
  nodeAgentJob,
  targetlessAgentJob,
  type AgentPlacement,
  type AgentRun,
} from '../../src/platform/kubernetes/agent-spec.js';
import { resolveKubeTarget, type ResolvedPod } from '../../src/platform/kubernetes/resolve.js';
import { AGENT_KEY_ENV } from '../../src/protocol/agent-auth.js';
import { loadFixture, startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { validateAgainstOpenApi } from '../helpers/openapi.js';

const placement: AgentPlacement = {
  image: 'remocal/agent:0.1.0',
  namespace: 'shop',
  labels: { team: 'orders' },
  annotations: { 'example.com/owner': 'orders' },
  tolerations: [{ operator: 'Exists' }],
  nodeSelector: { 'kubernetes.io/os': 'linux' },
  resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
  serviceAccount: 'remocal-agent',
  privileged: false,
  ttlSeconds: 30,
  logLevel: 'info',
};
const beside = { container: 'app', containerId: 'containerd://3042f4e246cde80d81149fd8b5986a9abbbbc2c78a2000bb399a8822aeca7971', sharedProcessNamespace: false };
const run: AgentRun = { session: 'a1b2c3', port: 45123, publicKey: 'the-public-key', redirects: true, files: 'read' };

type Json = Record<string, any>;  

describe('agent specs', () => {
  it('ephemeral container: valid EphemeralContainer, root in the target container\'s namespaces, SYS_PTRACE to read it, NET_ADMIN only to redirect', () => {
    const container = ephemeralAgentContainer(placement, run, beside) as Json;
    assert.deepEqual(validateAgainstOpenApi(container, 'io.k8s.api.core.v1.EphemeralContainer'), []);
    assert.deepEqual(validateAgainstOpenApi({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ name: 'app', image: 'x' }], ...ephemeralContainerPatch(container).spec } }, 'io.k8s.api.core.v1.Pod'), []);
    assert.equal(container.targetContainerName, 'app');
    assert.equal(container.name, 'remocal-agent-a1b2c3');
    assert.deepEqual(container.securityContext, { capabilities: { add: ['SYS_PTRACE', 'NET_ADMIN'] }, runAsUser: 0, runAsNonRoot: false });
    assert.deepEqual(container.args, ['--listen', '127.0.0.1:45123', '--ttl', '30', '--log-level', 'info', '--files', 'read', '--pid', '1']);
    // Only the public half of the session's key is in the pod spec (anyone who may get pods reads it).
    assert.deepEqual(container.env, [{ name: AGENT_KEY_ENV, value: 'the-public-key' }]);
    assert.equal(container.resources, undefined, 'the API refuses resources on ephemeral containers');

    const quiet = ephemeralAgentContainer(placement, { ...run, redirects: false }, beside) as Json;
    assert.deepEqual(quiet.securityContext, { capabilities: { add: ['SYS_PTRACE'] }, runAsUser: 0, runAsNonRoot: false }, 'no NET_ADMIN when nothing is redirected');
    assert.deepEqual((ephemeralAgentContainer({ ...placement, privileged: true }, run, beside) as Json).securityContext, { capabilities: { add: ['SYS_PTRACE', 'NET_ADMIN'] }, runAsUser: 0, runAsNonRoot: false, privileged: true });
  });

  it('in a pod that shares one pid namespace, the ephemeral agent finds the target by its container id (pid 1 is pause there)', () => {
    const container = ephemeralAgentContainer(placement, run, { ...beside, sharedProcessNamespace: true }) as Json;
    assert.deepEqual(container.args.slice(-2), ['--container-id', beside.containerId]);
    assert.ok(!container.args.includes('--pid'));
  });

  it('node Job: valid Job, hostPID on the target\'s node, SYS_ADMIN + SYS_PTRACE, every agent option honoured', () => {
    const job = nodeAgentJob(placement, run, { nodeName: 'vm', containerId: 'containerd://3042f4e2' }) as Json;
    assert.deepEqual(validateAgainstOpenApi(job, 'io.k8s.api.batch.v1.Job'), []);
    const pod = job.spec.template.spec;
    const container = pod.containers[0];
    assert.equal(pod.hostPID, true);
    assert.equal(pod.nodeName, 'vm');
    assert.equal(pod.restartPolicy, 'Never');
    assert.equal(pod.serviceAccountName, 'remocal-agent');
    assert.equal(pod.automountServiceAccountToken, false);
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
    assert.deepEqual(container.securityContext, { capabilities: { add: ['SYS_ADMIN', 'SYS_PTRACE', 'NET_ADMIN'] }, runAsUser: 0, runAsNonRoot: false });
    assert.deepEqual(container.resources, placement.resources);
    assert.equal(container.imagePullPolicy, 'IfNotPresent');
    assert.deepEqual(container.args.slice(-2), ['--container-id', 'containerd://3042f4e2']);
    assert.equal(job.spec.ttlSecondsAfterFinished, 10);
    assert.equal(job.spec.backoffLimit, 0);
    assert.deepEqual(job.metadata.labels, { team: 'orders', 'app.kubernetes.io/managed-by': 'remocal', 'app.kubernetes.io/name': 'remocal-agent', 'remocal.dev/session': 'a1b2c3' });
    assert.equal(job.metadata.annotations['example.com/owner'], 'orders');
    assert.equal(job.spec.template.metadata.annotations['sidecar.istio.io/inject'], 'false');
    assert.equal(pod.nodeSelector, undefined, 'a targeted agent goes to the target\'s node, whatever the selector');
  });

  it('targetless Job: no capabilities, no files, the node selector applies', () => {
    const job = targetlessAgentJob(placement, run) as Json;
    assert.deepEqual(validateAgainstOpenApi(job, 'io.k8s.api.batch.v1.Job'), []);
    const pod = job.spec.template.spec;
    assert.equal(pod.hostPID, undefined);
    assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.deepEqual(pod.containers[0].securityContext, { runAsUser: 0, runAsNonRoot: false });
    assert.ok(pod.containers[0].args.join(' ').includes('--files off'));
  });

  it('the validator catches what the API server would refuse', () => {
    const job = nodeAgentJob(placement, run, { nodeName: 'vm', containerId: 'x' }) as Json;
    job.spec.template.spec.containers[0].securityContext.capabilities.add.push(12);
    job.spec.template.spec.hostPid = true;
    const problems = validateAgainstOpenApi(job, 'io.k8s.api.batch.v1.Job');
    assert.ok(problems.some((problem) => problem.startsWith('spec.template.spec.containers[0].securityContext.capabilities.add[3]')), problems.join('\n'));
    assert.ok(problems.some((problem) => problem.startsWith('spec.template.spec.hostPid')), problems.join('\n'));
  });
});

describe('starting the agent', () => {
  let api: FakeKubeApi;
  let admin: Kube;
  let target: ResolvedPod;
  const patchedPod = 'orders-6497447b6f-4zv9l';

  before(async () => {
    api = await startFakeKubeApi({ log: () => {} });
    admin = connectKube({ kubeconfig: api.kubeconfig('admin') });
    target = (await resolveKubeTarget(admin, { platform: 'kubernetes', kind: 'pod', name: patchedPod, container: null })) as ResolvedPod;
  });
  after(() => api.close());

  /** The recorded pod with its ephemeral container running, renamed to the one this session adds. */
  function podWithAgent(state: Json): Json {
    const pod = structuredClone(loadFixture('pod-orders-with-ephemeral-running.json')) as Json;
    pod.status.ephemeralContainerStatuses[0].name = `remocal-agent-${run.session}`;
    pod.status.ephemeralContainerStatuses[0].state = state;
    return pod;
  }

  it('ephemeral: PATCHes the ephemeralcontainers subresource as a strategic merge, then waits for it to run', async () => {
    const polls: string[] = [];
    let reads = 0;
    const removers = [
      api.override('PATCH', `/api/v1/namespaces/shop/pods/${patchedPod}/ephemeralcontainers`, () => ({ status: 200, body: loadFixture('ephemeral-patch.json') })),
      api.override('GET', `/api/v1/namespaces/shop/pods/${patchedPod}`, () => {
        reads++;
        return { status: 200, body: podWithAgent(reads < 3 ? { waiting: { reason: 'ContainerCreating' } } : { running: { startedAt: '2026-11-25T13:58:44Z' } }) };
      }),
    ];
    try {
      const agent = await startKubeAgent(admin, target, placement, run, { ephemeral: true, timeoutMs: 5000, pollIntervalMs: 10, onWait: (text) => polls.push(text) });
      assert.deepEqual({ namespace: agent.namespace, pod: agent.podName, port: agent.port }, { namespace: 'shop', pod: patchedPod, port: 45123 });
      assert.equal(agent.description, `ephemeral container remocal-agent-a1b2c3 in pod/${patchedPod}`);
      const patch = api.requests.find((request) => request.method === 'PATCH')!;
      assert.equal(patch.contentType, 'application/strategic-merge-patch+json');
      const sent = (patch.body as Json).spec.ephemeralContainers[0];
      assert.deepEqual(sent, ephemeralAgentContainer(placement, run, beside));
      assert.deepEqual(validateAgainstOpenApi(sent, 'io.k8s.api.core.v1.EphemeralContainer'), []);
      assert.ok(reads >= 3);
      assert.match(polls[0]!, /waiting for the agent container remocal-agent-a1b2c3/);
    } finally {
      for (const remove of removers) remove();
    }
  });

  it('ephemeral: an image that cannot be pulled fails at once, naming the image and the fix', async () => {
    const removers = [
      api.override('PATCH', `/api/v1/namespaces/shop/pods/${patchedPod}/ephemeralcontainers`, () => ({ status: 200, body: loadFixture('ephemeral-patch.json') })),
      api.override('GET', `/api/v1/namespaces/shop/pods/${patchedPod}`, () => ({ status: 200, body: podWithAgent({ waiting: { reason: 'ErrImagePull', message: 'pull access denied' } }) })),
    ];
    try {
      const started = Date.now();
      const error = await startKubeAgent(admin, target, placement, run, { ephemeral: true, timeoutMs: 20_000, pollIntervalMs: 10 }).catch((failure: unknown) => failure as Error);
      assert.ok(error instanceof AgentStartError, String(error));
      assert.match(error.message, /cannot start: ErrImagePull: pull access denied/);
      assert.match((error as AgentStartError).hint!, /agent\.image/);
      assert.ok(Date.now() - started < 5000);
    } finally {
      for (const remove of removers) remove();
    }
  });

  it('ephemeral: a container that never runs times out with what it was last seen doing', async () => {
    const removers = [
      api.override('PATCH', `/api/v1/namespaces/shop/pods/${patchedPod}/ephemeralcontainers`, () => ({ status: 200, body: loadFixture('ephemeral-patch.json') })),
      api.override('GET', `/api/v1/namespaces/shop/pods/${patchedPod}`, () => ({ status: 200, body: podWithAgent({ waiting: { reason: 'ContainerCreating' } }) })),
    ];
    try {
      const error = await startKubeAgent(admin, target, placement, run, { ephemeral: true, timeoutMs: 200, pollIntervalMs: 10 }).catch((failure: unknown) => failure as Error);
      assert.ok(error instanceof TimeoutError, String(error));
      assert.match(error.message, /last seen: ContainerCreating/);
      assert.match((error as TimeoutError).hint!, /agent\.startup_timeout/);
    } finally {
      for (const remove of removers) remove();
    }
  });

  it('a user without the permission is told which one (recorded 403)', async () => {
    const alice = connectKube({ kubeconfig: api.kubeconfig('dev-alice') });
    const error = await startKubeAgent(alice, target, placement, run, { ephemeral: true, timeoutMs: 1000 }).catch((failure: unknown) => failure as Error);
    assert.ok(error instanceof KubeForbiddenError, String(error));
    assert.match(error.message, /^missing permission: patch pods\/ephemeralcontainers in namespace shop\./);
    assert.match((error as KubeForbiddenError).hint!, /kubectl auth can-i patch pods --subresource=ephemeralcontainers -n shop/);

    const node = await startKubeAgent(alice, target, placement, run, { ephemeral: false, timeoutMs: 1000 }).catch((failure: unknown) => failure as Error);
    assert.ok(node instanceof KubeForbiddenError, String(node));
    assert.match(node.message, /^missing permission: create jobs\.batch in namespace shop\./);
  });

  it('node mode: creates the Job, waits for its pod, forwards to the target pod, deletes the Job on remove', async () => {
    let job: Json | undefined;
    const agentPod = structuredClone(loadFixture('agent-pod-create.json')) as Json;
    agentPod.status = { phase: 'Running', containerStatuses: [{ name: 'remocal-agent', ready: true, restartCount: 0, image: placement.image, imageID: '', state: { running: { startedAt: '2026-11-25T13:58:44Z' } } }] };
    const removers = [
      api.override('POST', '/apis/batch/v1/namespaces/shop/jobs', (request) => {
        job = request.body as Json;
        return { status: 201, body: job };
      }),
      api.override('GET', '/api/v1/namespaces/shop/pods?labelSelector=remocal.dev%2Fsession%3Da1b2c3', () => ({ status: 200, body: { kind: 'PodList', apiVersion: 'v1', metadata: {}, items: [agentPod] } })),
      api.override('DELETE', '/apis/batch/v1/namespaces/shop/jobs/remocal-agent-a1b2c3', () => ({ status: 200, body: { kind: 'Status', apiVersion: 'v1', status: 'Success' } })),
    ];
    try {
      const agent = await startKubeAgent(admin, target, placement, run, { ephemeral: false, timeoutMs: 2000, pollIntervalMs: 10 });
      assert.deepEqual(job, nodeAgentJob(placement, run, { nodeName: 'vm', containerId: target.containerId }));
      // The agent listens in the target's network namespace: the target pod's port-forward reaches it.
      assert.equal(agent.podName, patchedPod);
      assert.match(agent.description, /^agent job\/remocal-agent-a1b2c3 on node vm/);
      await agent.remove();
      await agent.remove();
      const deletes = api.requests.filter((request) => request.method === 'DELETE');
      assert.equal(deletes.length, 1);
      assert.equal(deletes[0]!.query.get('propagationPolicy'), 'Background');
    } finally {
      for (const remove of removers) remove();
    }
  });

  it('node mode: a Job whose pod fails is deleted, and the failure says why', async () => {
    const failed = structuredClone(loadFixture('agent-pod-create.json')) as Json;
    failed.status = { phase: 'Failed', reason: 'OutOfcpu', message: 'Node didn\'t have enough resource: cpu' };
    let deleted = false;
    const removers = [
      api.override('POST', '/apis/batch/v1/namespaces/shop/jobs', (request) => ({ status: 201, body: request.body })),
      api.override('GET', '/api/v1/namespaces/shop/pods?labelSelector=remocal.dev%2Fsession%3Da1b2c3', () => ({ status: 200, body: { kind: 'PodList', apiVersion: 'v1', metadata: {}, items: [failed] } })),
      api.override('DELETE', '/apis/batch/v1/namespaces/shop/jobs/remocal-agent-a1b2c3', () => {
        deleted = true;
        return { status: 200, body: { kind: 'Status', apiVersion: 'v1', status: 'Success' } };
      }),
    ];
    try {
      const error = await startKubeAgent(admin, target, placement, run, { ephemeral: false, timeoutMs: 5000, pollIntervalMs: 10 }).catch((failure: unknown) => failure as Error);
      assert.ok(error instanceof AgentStartError, String(error));
      assert.match(error.message, /failed: OutOfcpu: Node didn't have enough resource: cpu/);
      assert.ok(deleted, 'the Job is removed');
    } finally {
      for (const remove of removers) remove();
    }
  });
});
