// The Kubernetes platform: a session from target string to a running agent and the launch of the link to it,
// with the steps shown as they wait.

import { randomBytes, randomInt } from 'node:crypto';
import { distFile, packageVersion } from '../../core/paths.js';
import { LINK_KEY_ENV, newSessionKeys } from '../../protocol/agent-auth.js';
import { KUBE_LINK_ENV, type AgentLaunch, type KubeLinkSettings } from '../../protocol/contracts.js';
import type { RemocalConfig } from '../../config/index.js';
import type { Platform, PrepareRequest, PreparedSession } from '../platform.js';
import { formatTarget, type KubernetesTarget } from '../target.js';
import { connectKube, type Kube, type KubeSettings } from './api.js';
import { startKubeAgent } from './agent.js';
import type { AgentPlacement } from './agent-spec.js';
import { resolveKubeTarget } from './resolve.js';

/** The agent options of the config that this platform reads (the config's `agent` group passes as it is). */
export type KubeAgentConfig = Pick<
  RemocalConfig['agent'],
  'image' | 'namespace' | 'ephemeral' | 'privileged' | 'labels' | 'annotations' | 'tolerations' | 'node_selector' | 'resources' | 'service_account' | 'ttl'
>;

/** How to reach the cluster and where to place the agent. */
export interface KubePlatformSettings {
  kube: KubeSettings;
  agent: KubeAgentConfig;
}

/** How often the intproxy pings a Kubernetes agent; the agent drops a link silent for three of these. */
export const KUBE_PING_INTERVAL_MS = 5000;

export function defaultAgentImage(): string {
  return `remocal/agent:${packageVersion()}`;
}

export function kubernetesPlatform(settings: KubePlatformSettings, connect: (settings: KubeSettings) => Kube = connectKube): Platform<KubernetesTarget> {
  return { prepare: (target, request) => prepareKubeSession(settings, target, request, connect) };
}

async function prepareKubeSession(
  settings: KubePlatformSettings,
  target: KubernetesTarget,
  request: PrepareRequest,
  connect: (settings: KubeSettings) => Kube,
): Promise<PreparedSession> {
  const kube = connect(settings.kube);
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) await step();
  };
  try {
    const resolving = request.onStep(`resolving ${formatTarget(target)} in namespace ${kube.namespace} (context ${kube.contextName})`);
    const resolved = await resolveKubeTarget(kube, target, { onWait: request.onNote, startupTimeoutMs: request.startupTimeoutMs, signal: request.signal });
    cleanups.push(() => resolved.release());
    resolving.done(`target: ${resolved.description}`);

    const session = randomBytes(3).toString('hex');
    const keys = newSessionKeys();
    // A high port few servers use; the agent's listen fails loudly on the rare clash.
    const port = randomInt(40_000, 59_000);
    const placement: AgentPlacement = {
      image: settings.agent.image ?? defaultAgentImage(),
      namespace: settings.agent.namespace ?? resolved.namespace,
      labels: settings.agent.labels,
      annotations: settings.agent.annotations,
      tolerations: settings.agent.tolerations,
      nodeSelector: settings.agent.node_selector,
      resources: settings.agent.resources,
      serviceAccount: settings.agent.service_account,
      privileged: settings.agent.privileged,
      ttlSeconds: settings.agent.ttl,
      logLevel: request.logLevel,
    };
    const starting = request.onStep(`starting the agent (${placement.image})`);
    const agent = await startKubeAgent(
      kube,
      resolved,
      placement,
      { session, port, publicKey: keys.publicKey, redirects: request.redirects, files: resolved.kind === 'pod' ? request.files : 'off' },
      { ephemeral: settings.agent.ephemeral, timeoutMs: request.startupTimeoutMs, onWait: request.onNote, signal: request.signal },
    );
    cleanups.push(() => agent.remove());
    starting.done(`agent: ${agent.description}`);

    const link: KubeLinkSettings = {
      kubeconfig: settings.kube.kubeconfig,
      inCluster: settings.kube.inCluster,
      // connectKube takes no context with the in-cluster config, whose one context is its own.
      context: settings.kube.inCluster === true ? undefined : kube.contextName,
      namespace: agent.namespace,
      pod: agent.podName,
      port: agent.port,
      // Shorter than the intproxy's wait for the agent's hello, so that the link's own reason (a refused
      // port-forward, an agent that never listened) is what the user reads, not a bare timeout.
      timeoutMs: Math.max(1000, request.startupTimeoutMs - 3000),
    };
    return {
      launch: {
        command: process.execPath,
        args: [distFile('kube-link.js')],
        env: { [KUBE_LINK_ENV]: JSON.stringify(link), [LINK_KEY_ENV]: keys.privateKey },
        target: resolved.kind === 'pod' ? `pod/${resolved.podName}` : `targetless agent pod/${agent.podName}`,
        pingIntervalMs: KUBE_PING_INTERVAL_MS,
      },
      description: resolved.description,
      linkStep: 'connecting to the agent',
      hasProcess: resolved.kind === 'pod',
      cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
