// What a kubelet does for remocal, played on this machine against the fixture pod: when the recorded fake API
// server receives the ephemeral-container PATCH, the real agent is started in the fixture pod's network
// namespace with the container's args and env (the session's public key), and the pod's status shows it running; a
// port-forward to the pod is `nsenter --net … socat STDIO TCP:127.0.0.1:<port>`, as dockershim's was. Only the
// API server is a fake; the agent, the link and every packet are real.
//
// Besides the recorded pod, the kubelet can play pods another fake owns (the copies kube-copies.ts creates): the
// fixture pod is then each of them in turn, so an agent the operator starts in a copy runs beside the fixture
// pod's process too.

import type { ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';
import { startChild } from '../../src/core/child.js';
import type { Pod } from '../../src/fixture/pod.js';
import { distFile } from '../../src/core/paths.js';
import { loadFixture, type FakeKubeApi } from './kube-api.js';

type Json = Record<string, any>;  

export interface FakeKubelet {
  /** Agents started so far, in order. */
  agents: ChildProcess[];
  /** Port-forward streams opened so far (the socat processes), in order. */
  forwards: ChildProcess[];
  /** The args the last agent container was given. */
  lastArgs: () => string[];
  /** The pods an agent container was added to, in order. */
  patched: string[];
  uninstall(): void;
}

/** Pods the kubelet plays besides the recorded one: their names, and their body as their own fake has it now. */
export interface OtherPods {
  /** Matches the pod's API path (`/api/v1/namespaces/shop/pods/<name>`) and captures its name. */
  path: RegExp;
  /** The pod as its fake answers it, or undefined once it is gone (the fake's 404 then answers). */
  body: (name: string) => Json | undefined;
}

export function portForwardInto(pod: Pod, forwards: ChildProcess[]): (namespace: string, podName: string, port: number) => Promise<Duplex> {
  return async (_namespace, _podName, port) => {
    const socat = startChild('nsenter', [`--net=${pod.netnsPath}`, '--', 'socat', 'STDIO', `TCP:127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'ignore'] });
    forwards.push(socat);
    return Duplex.from({ readable: socat.stdout!, writable: socat.stdin! });
  };
}

/**
 * Serves `podName` (a recorded pod of deployment/orders) as if the fixture pod were it, and the pods of `others`
 * too. Install it after the fake that owns `others`: overrides added later are asked first, and the kubelet adds its
 * agent's status to what that fake answers.
 */
export function installFakeKubelet(api: FakeKubeApi, pod: Pod, podName: string, forwards: ChildProcess[], others?: OtherPods): FakeKubelet {
  const agents: ChildProcess[] = [];
  const patched: string[] = [];
  let args: string[] = [];
  /** The agent container of each pod it was added to. */
  const agentNames = new Map<string, string>();
  const base = loadFixture('pod-orders.json') as Json;
  const withAgent = (answer: Json, name: string): Json => {
    const agentName = agentNames.get(name);
    if (agentName !== undefined) {
      answer.status.ephemeralContainerStatuses = [
        { name: agentName, state: { running: { startedAt: '2026-11-25T13:58:44Z' } }, lastState: {}, ready: false, restartCount: 0, image: 'remocal/agent', imageID: '', containerID: 'containerd://agent' },
      ];
    }
    return answer;
  };
  const served = (pathname: string, suffix = ''): string | undefined => {
    if (pathname === `/api/v1/namespaces/shop/pods/${podName}${suffix}`) return podName;
    if (others === undefined || !pathname.endsWith(suffix)) return undefined;
    const name = others.path.exec(pathname.slice(0, pathname.length - suffix.length))?.[1];
    return name !== undefined && others.body(name) !== undefined ? name : undefined;
  };
  const removers = [
    api.override('PATCH', /^\/api\/v1\/namespaces\/shop\/pods\/[^/?]+\/ephemeralcontainers(\?|$)/, (request) => {
      const name = served(request.pathname, '/ephemeralcontainers');
      if (name === undefined) return undefined;
      const container = (request.body as Json).spec.ephemeralContainers[0];
      agentNames.set(name, container.name as string);
      patched.push(name);
      args = container.args as string[];
      // The ephemeral container shares the target container's pid namespace, where the target is pid 1; here
      // the target is the fixture pod's process, seen by its host pid.
      const agentArgs = args.map((arg, index) => (args[index - 1] === '--pid' ? String(pod.pid) : arg));
      const env = Object.fromEntries((container.env as { name: string; value: string }[]).map((entry) => [entry.name, entry.value]));
      agents.push(
        startChild('nsenter', [`--net=${pod.netnsPath}`, '--', process.execPath, distFile('agent.js'), ...agentArgs], {
          stdio: ['ignore', 'ignore', process.env.REMOCAL_TEST_AGENT_LOGS === '1' ? 'inherit' : 'ignore'],
          env: { ...process.env, ...env },
        }),
      );
      return { status: 200, body: loadFixture('ephemeral-patch.json') };
    }),
    api.override('GET', /^\/api\/v1\/namespaces\/shop\/pods\/[^/?]+(\?|$)/, (request) => {
      const name = served(request.pathname);
      if (name === undefined) return undefined;
      const answer = name === podName ? structuredClone(base) : structuredClone(others!.body(name)!);
      answer.metadata.name = name;
      return { status: 200, body: withAgent(answer, name) };
    }),
  ];
  return {
    agents,
    forwards,
    patched,
    lastArgs: () => args,
    uninstall: () => removers.forEach((remove) => remove()),
  };
}
