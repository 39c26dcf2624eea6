// Starting the agent next to a resolved target, waiting until it runs (with what it waits for), and removing
// it again. The agent's own TTL and the Job's ttlSecondsAfterFinished clean up when this process cannot.

import { setTimeout as sleep } from 'node:timers/promises';
import { PatchStrategy, setHeaderOptions, type V1ContainerStatus, type V1Pod } from '@kubernetes/client-node';
import { AgentStartError, FeatureUnavailableError, TimeoutError } from '../../core/errors.js';
import { kubeCall, type Kube } from './api.js';
import {
  ephemeralAgentContainer,
  ephemeralContainerPatch,
  nodeAgentJob,
  targetlessAgentJob,
  SESSION_LABEL,
  type AgentPlacement,
  type AgentRun,
} from './agent-spec.js';
import type { ResolvedKubeTarget } from './resolve.js';

export interface StartedKubeAgent {
  /** The pod whose 127.0.0.1:port the agent listens on (the target pod, or the targetless agent's own pod). */
  namespace: string;
  podName: string;
  port: number;
  /** "ephemeral container remocal-agent-1a2b in pod/orders-…". */
  description: string;
  /** Removes what was created; safe to call more than once. */
  remove(): Promise<void>;
}

export interface StartAgentOptions {
  ephemeral: boolean;
  timeoutMs: number;
  pollIntervalMs?: number;
  onWait?: (text: string) => void;
  signal?: AbortSignal | undefined;
}

export async function startKubeAgent(kube: Kube, target: ResolvedKubeTarget, placement: AgentPlacement, run: AgentRun, options: StartAgentOptions): Promise<StartedKubeAgent> {
  if (target.kind === 'pod' && options.ephemeral) return startEphemeral(kube, target, placement, run, options);
  const job = target.kind === 'pod' ? nodeAgentJob(placement, run, target) : targetlessAgentJob(placement, run);
  const namespace = placement.namespace;
  const jobName = (job.metadata as { name: string }).name;
  await kubeCall(kube, { verb: 'create', resource: 'jobs.batch', namespace, name: jobName }, () => kube.batch.createNamespacedJob({ namespace, body: job as never }));
  let removed = false;
  const remove = async () => {
    if (removed) return;
    removed = true;
    // Background: the Job's pod goes with it, and nobody waits for that.
    await kube.batch.deleteNamespacedJob({ name: jobName, namespace, propagationPolicy: 'Background' }).catch(() => undefined);
  };
  try {
    const pod = await waitForAgentPod(kube, namespace, run.session, options);
    const where = target.kind === 'pod' ? `on node ${target.nodeName}, in the network of pod/${target.podName}` : `in namespace ${namespace}`;
    return {
      // The node agent listens inside the target's network namespace, so the target pod's port-forward reaches it.
      namespace: target.kind === 'pod' ? target.namespace : namespace,
      podName: target.kind === 'pod' ? target.podName : pod.metadata!.name!,
      port: run.port,
      description: `agent job/${jobName} ${where}`,
      remove,
    };
  } catch (error) {
    await remove();
    throw error;
  }
}

async function startEphemeral(kube: Kube, target: Extract<ResolvedKubeTarget, { kind: 'pod' }>, placement: AgentPlacement, run: AgentRun, options: StartAgentOptions): Promise<StartedKubeAgent> {
  const { namespace, podName } = target;
  const container = ephemeralAgentContainer(placement, run, {
    container: target.container,
    containerId: target.containerId,
    sharedProcessNamespace: target.pod.spec?.shareProcessNamespace === true,
  });
  const name = container.name as string;
  await kubeCall(
    kube,
    { verb: 'patch', resource: 'pods/ephemeralcontainers', namespace, name: podName },
    () =>
      kube.core.patchNamespacedPodEphemeralcontainers(
        { name: podName, namespace, body: ephemeralContainerPatch(container) },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      ),
    () =>
      new FeatureUnavailableError(`This cluster does not serve ephemeral containers (the pods/ephemeralcontainers API answered 404).`, {
        hint: 'Set `agent.ephemeral: false` to run the agent in a pod of its own on the target\'s node.',
      }),
  );
  options.onWait?.(`waiting for the agent container ${name} in pod/${podName}`);
  await poll(options, `the agent container ${name} in pod/${podName} to run`, async () => {
    const pod = await kubeCall(kube, { verb: 'get', resource: 'pods', namespace, name: podName }, () => kube.core.readNamespacedPod({ name: podName, namespace }));
    const status = (pod.status?.ephemeralContainerStatuses ?? []).find((candidate) => candidate.name === name);
    return status === undefined ? { done: false, state: 'not created yet' } : containerProgress(status, `agent container ${name} in pod/${podName}`);
  });
  return {
    namespace,
    podName,
    port: run.port,
    description: `ephemeral container ${name} in pod/${podName}`,
    // An ephemeral container cannot be removed; the agent exits with its session and the pod keeps only its status.
    remove: async () => {},
  };
}

async function waitForAgentPod(kube: Kube, namespace: string, session: string, options: StartAgentOptions): Promise<V1Pod> {
  options.onWait?.(`waiting for the agent pod in namespace ${namespace}`);
  let found: V1Pod | undefined;
  await poll(options, `the agent pod in namespace ${namespace} to run`, async () => {
    const list = await kubeCall(kube, { verb: 'list', resource: 'pods', namespace }, () =>
      kube.core.listNamespacedPod({ namespace, labelSelector: `${SESSION_LABEL}=${session}` }),
    );
    const pod = list.items[0];
    if (pod === undefined) return { done: false, state: 'not created yet' };
    // The kubelet can reject a pod outright (OutOfcpu, NodeAffinity…): no container status ever follows.
    if (pod.status?.phase === 'Failed') {
      throw new AgentStartError(`The agent pod ${pod.metadata?.name} failed: ${pod.status.reason ?? 'Failed'}${pod.status.message ? `: ${pod.status.message}` : ''}.`, {
        hint: 'Check the node\'s room and the agent\'s resources (agent.resources).',
      });
    }
    const unscheduled = (pod.status?.conditions ?? []).find((condition) => condition.type === 'PodScheduled' && condition.status === 'False');
    const status = pod.status?.containerStatuses?.[0];
    if (status === undefined) return { done: false, state: unscheduled ? `not scheduled: ${unscheduled.message ?? unscheduled.reason}` : (pod.status?.phase ?? 'Pending') };
    found = pod;
    return containerProgress(status, `agent pod ${pod.metadata?.name}`);
  });
  return found!;
}

/** Image pull failures and crashes end the wait at once, with the reason the kubelet gave. */
const FATAL_WAITING = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

function containerProgress(status: V1ContainerStatus, what: string): { done: boolean; state: string } {
  const state = status.state;
  if (state?.running !== undefined && state.running !== null) return { done: true, state: 'running' };
  const terminated = state?.terminated;
  if (terminated !== undefined && terminated !== null) {
    throw new AgentStartError(`The ${what} exited with code ${terminated.exitCode}${terminated.reason ? ` (${terminated.reason})` : ''}${terminated.message ? `: ${terminated.message}` : ''}.`, {
      hint: 'Its logs say why: `kubectl logs` with the pod and container above.',
    });
  }
  const waiting = state?.waiting;
  if (waiting?.reason !== undefined && FATAL_WAITING.has(waiting.reason)) {
    throw new AgentStartError(`The ${what} cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}.`, {
      hint: waiting.reason.includes('Image')
        ? `Check agent.image (${status.image}): build and load it into the cluster as docs/kubernetes.md shows, or point agent.image at a registry the nodes can pull from.`
        : 'Check the agent settings in your config (agent.*).',
    });
  }
  return { done: false, state: waiting?.reason ?? 'waiting' };
}

async function poll(options: StartAgentOptions, what: string, check: () => Promise<{ done: boolean; state: string }>): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let last = '';
  for (;;) {
    const { done, state } = await check();
    if (done) return;
    if (state !== last) {
      if (last !== '') options.onWait?.(`  … ${state}`);
      last = state;
    }
    if (Date.now() >= deadline) {
      throw new TimeoutError(`Timed out after ${Math.round(options.timeoutMs / 1000)} s waiting for ${what} (last seen: ${state}).`, {
        hint: 'Raise agent.startup_timeout if pulling the image or scheduling is slow; `kubectl get events` shows what holds it up.',
      });
    }
    await sleep(options.pollIntervalMs ?? 500, undefined, { signal: options.signal });
  }
}
