// The Kubernetes objects that run the agent, as plain data (checked against the API's OpenAPI types in tests):
//
// - ephemeral: a container added to the target pod. It shares the pod's network namespace, and with
//   targetContainerName the target container's process namespace, so the target is pid 1 and its files and
//   environment are /proc/1/root and /proc/1/environ.
// - node: a Job whose one pod runs on the target's node with hostPID; the agent finds the target container's
//   pid from its containerID and enters its network namespace with nsenter.
// - targetless: a Job whose pod is the agent alone, for the cluster's network and DNS.
//
// Each gets the least capabilities it needs. A Job (not a bare pod) is used so that ttlSecondsAfterFinished
// removes it even when the CLI dies before it can.

import { AGENT_KEY_ENV } from '../../protocol/agent-auth.js';

export interface AgentPlacement {
  image: string;
  /** Where the Job goes (node and targetless modes). */
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  tolerations: Record<string, unknown>[];
  nodeSelector: Record<string, string>;
  resources: { requests?: Record<string, string | number> | undefined; limits?: Record<string, string | number> | undefined };
  serviceAccount: string | undefined;
  privileged: boolean;
  /** Seconds the agent waits for its client before it exits on its own. */
  ttlSeconds: number;
  logLevel: string;
}

export interface AgentRun {
  /** Session id: names the container or Job, and labels it. */
  session: string;
  /** The agent's port on 127.0.0.1 inside the pod it serves. */
  port: number;
  /** The session's public key: the agent accepts only the client that holds the private key. */
  publicKey: string;
  /** Mirroring and stealing redirect ports with iptables, which needs NET_ADMIN; nothing else does. */
  redirects: boolean;
  files: 'off' | 'read' | 'write';
  /** The operator's agent: one per target, serving every session on the same port (agent --sessions tcp). */
  shared?: boolean;
}

export const AGENT_CONTAINER_NAME = 'remocal-agent';
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'remocal', 'app.kubernetes.io/name': 'remocal-agent' } as const;
export const SESSION_LABEL = 'remocal.dev/session';
/** Long enough to read a failed agent's logs, short enough that nothing lingers. */
const JOB_TTL_AFTER_FINISHED_SECONDS = 10;

function agentArgs(placement: AgentPlacement, run: AgentRun, extra: string[]): string[] {
  const shared = run.shared === true ? ['--sessions', 'tcp'] : [];
  return [...shared, '--listen', `127.0.0.1:${run.port}`, '--ttl', String(placement.ttlSeconds), '--log-level', placement.logLevel, '--files', run.files, ...extra];
}

function securityContext(placement: AgentPlacement, capabilities: string[]): Record<string, unknown> {
  // Root, whatever the pod's own securityContext says (a pod-level runAsUser or runAsNonRoot would otherwise
  // apply to the agent too): iptables and the capabilities below only work for root.
  const context: Record<string, unknown> = { runAsUser: 0, runAsNonRoot: false };
  if (capabilities.length > 0) context.capabilities = { add: capabilities };
  if (placement.privileged) context.privileged = true;
  return context;
}

/** The container the agent stands beside; `sharedProcessNamespace` is the pod's `shareProcessNamespace`. */
export interface EphemeralTarget {
  container: string;
  containerId: string;
  sharedProcessNamespace: boolean;
}

export function ephemeralAgentContainer(placement: AgentPlacement, run: AgentRun, target: EphemeralTarget): Record<string, unknown> {
  // With targetContainerName the agent joins the target container's pid namespace, where the target is pid 1;
  // in a pod that shares one pid namespace among all containers, pid 1 is the pause process, so the agent finds
  // the target by its container id instead.
  const where = target.sharedProcessNamespace ? ['--container-id', target.containerId] : ['--pid', '1'];
  return {
    name: `${AGENT_CONTAINER_NAME}-${run.session}`,
    image: placement.image,
    imagePullPolicy: 'IfNotPresent',
    args: agentArgs(placement, run, where),
    env: [{ name: AGENT_KEY_ENV, value: run.publicKey }],
    targetContainerName: target.container,
    // SYS_PTRACE: reading the target's /proc/1/environ and /proc/1/root is a ptrace-mode access, refused when the
    // target runs as another user than the agent (most hardened images) or with capabilities the agent lacks.
    securityContext: securityContext(placement, ['SYS_PTRACE', ...(run.redirects ? ['NET_ADMIN'] : [])]),
  };
}

/** The strategic merge patch that adds the container (the ephemeralcontainers subresource takes no other form in 1.23). */
export function ephemeralContainerPatch(container: Record<string, unknown>): { spec: { ephemeralContainers: Record<string, unknown>[] } } {
  return { spec: { ephemeralContainers: [container] } };
}

function agentJob(placement: AgentPlacement, run: AgentRun, pod: { spec: Record<string, unknown>; args: string[]; capabilities: string[] }): Record<string, unknown> {
  const labels = { ...placement.labels, ...MANAGED_BY, [SESSION_LABEL]: run.session };
  const container: Record<string, unknown> = {
    name: AGENT_CONTAINER_NAME,
    image: placement.image,
    imagePullPolicy: 'IfNotPresent',
    args: agentArgs(placement, run, pod.args),
    env: [{ name: AGENT_KEY_ENV, value: run.publicKey }],
    resources: placement.resources,
    securityContext: securityContext(placement, pod.capabilities),
  };
  const spec: Record<string, unknown> = {
    restartPolicy: 'Never',
    // The agent talks to no Kubernetes API: no token in its pod.
    automountServiceAccountToken: false,
    tolerations: placement.tolerations,
    containers: [container],
    ...pod.spec,
  };
  if (placement.serviceAccount !== undefined) spec.serviceAccountName = placement.serviceAccount;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: `${AGENT_CONTAINER_NAME}-${run.session}`, namespace: placement.namespace, labels, annotations: placement.annotations },
    spec: {
      ttlSecondsAfterFinished: JOB_TTL_AFTER_FINISHED_SECONDS,
      backoffLimit: 0,
      template: {
        metadata: {
          labels,
          // A mesh proxy injected next to the agent would intercept the agent's own connections.
          annotations: { ...placement.annotations, 'sidecar.istio.io/inject': 'false', 'linkerd.io/inject': 'disabled' },
        },
        spec,
      },
    },
  };
}

export function nodeAgentJob(placement: AgentPlacement, run: AgentRun, target: { nodeName: string; containerId: string }): Record<string, unknown> {
  return agentJob(placement, run, {
    spec: { nodeName: target.nodeName, hostPID: true },
    args: ['--container-id', target.containerId],
    // SYS_ADMIN: setns into the target's network namespace; SYS_PTRACE: its /proc/<pid>/root and environ.
    capabilities: ['SYS_ADMIN', 'SYS_PTRACE', ...(run.redirects ? ['NET_ADMIN'] : [])],
  });
}

export function targetlessAgentJob(placement: AgentPlacement, run: AgentRun): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  if (Object.keys(placement.nodeSelector).length > 0) spec.nodeSelector = placement.nodeSelector;
  return agentJob(placement, { ...run, redirects: false, files: 'off' }, { spec, args: [], capabilities: [] });
}
