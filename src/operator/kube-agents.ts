// Shared agents in a cluster (Kubernetes mode): one ephemeral container per target pod, started the way the
// CLI starts its own (platform/kubernetes/agent.ts), but as `agent --sessions tcp`. The operator reaches it with
// port-forwards made with its own ServiceAccount: one for the control link, one per session, each proving the
// key this agent was started with. The operator pings the control link and the agent drops a silent one, so an
// operator that dies, or loses the cluster, leaves no agent holding rules.

import { randomBytes, randomInt } from 'node:crypto';
import { Duplex, PassThrough } from 'node:stream';
import { newSessionKeys } from '../protocol/agent-auth.js';
import type { ControlPreamble, SessionPreamble } from '../protocol/shared-agent.js';
import { startKubeAgent } from '../platform/kubernetes/agent.js';
import type { AgentPlacement } from '../platform/kubernetes/agent-spec.js';
import type { Kube } from '../platform/kubernetes/api.js';
import { openAgentStream, type AgentStream } from '../platform/kubernetes/port-forward.js';
import type { ResolvedPod } from '../platform/kubernetes/resolve.js';
import type { AgentLauncher, LaunchedAgent } from './agents.js';

/** How often the control link is pinged; the agent's --idle-timeout is three of these. */
export const KUBE_CONTROL_PING_MS = 5000;

export interface KubeAgentSettings {
  placement: Omit<AgentPlacement, 'namespace'>;
  ephemeral: boolean;
  startupTimeoutMs: number;
}

export class KubeAgentLauncher implements AgentLauncher<ResolvedPod> {
  constructor(
    private readonly kube: Kube,
    private readonly settings: KubeAgentSettings,
  ) {}

  /** Agents end themselves when their control link goes quiet, or when none came within their ttl. */
  async removeOrphans(): Promise<string[]> {
    return [];
  }

  async launch(key: string, target: ResolvedPod): Promise<LaunchedAgent> {
    const keys = newSessionKeys();
    // A high port few servers use; the agent's listen fails loudly on the rare clash.
    const port = randomInt(40_000, 59_000);
    const session = `op${randomBytes(3).toString('hex')}`;
    const agent = await startKubeAgent(
      this.kube,
      target,
      { ...this.settings.placement, namespace: target.namespace },
      { session, port, publicKey: keys.publicKey, redirects: true, files: 'write', shared: true },
      { ephemeral: this.settings.ephemeral, timeoutMs: this.settings.startupTimeoutMs },
    );
    const open = (preamble: SessionPreamble | ControlPreamble): Promise<AgentStream> =>
      openAgentStream(this.kube.config, { namespace: agent.namespace, pod: agent.podName, port: agent.port, privateKey: keys.privateKey }, { deadline: Date.now() + this.settings.startupTimeoutMs }).then((stream) => {
        stream.writable.write(`${JSON.stringify(preamble)}\n`);
        return stream;
      });
    let control: AgentStream;
    try {
      control = await open({ kind: 'control' });
    } catch (error) {
      await agent.remove();
      throw error;
    }
    return {
      description: agent.description,
      // The port-forward's stream is left paused after the agent's challenge (so nothing is lost before a reader
      // comes), and a paused stream stays paused under a 'data' listener: piping resumes it into the link's reader.
      control: { readable: control.readable.pipe(new PassThrough()), writable: control.writable },
      pingIntervalMs: KUBE_CONTROL_PING_MS,
      openSession: async (preamble) => {
        const stream = await open(preamble);
        const duplex = Duplex.from({ readable: stream.readable, writable: stream.writable });
        duplex.once('close', () => stream.close());
        void stream.closed.then(() => duplex.destroy());
        return duplex;
      },
      exited: control.closed.then((why) => `is out of reach: ${why}`),
      // Its logs are the cluster's: `kubectl logs` of the container the description names.
      lastWords: () => '',
      stop: async () => {
        control.close();
        await agent.remove();
      },
    };
  }
}
