// The intproxy's way to the agent of a Kubernetes session: a small process whose stdio is the agent's link,
// as the local platform's `nsenter … agent` is. It opens the port-forward, answers the agent's challenge, and
// then only copies bytes. Keeping the Kubernetes client out of the intproxy keeps the intproxy platform-blind
// and fast to start for local targets.
//
// Settings come in env vars (the secret must not show in `ps`): KUBE_LINK_ENV as JSON, and the secret in
// AGENT_SECRET_ENV. Errors go to stderr, which the intproxy shows as the link's last words.

import { Socket } from 'node:net';
import { AGENT_SECRET_ENV } from '../../protocol/agent-auth.js';
import { connectKube } from './api.js';
import { openAgentStream } from './port-forward.js';
import { KUBE_LINK_ENV, type KubeLinkSettings } from './link-settings.js';

async function main(): Promise<number> {
  const settings = JSON.parse(process.env[KUBE_LINK_ENV] ?? 'null') as KubeLinkSettings | null;
  const secret = process.env[AGENT_SECRET_ENV];
  if (settings === null || secret === undefined) {
    process.stderr.write(`kube-link: ${KUBE_LINK_ENV} and ${AGENT_SECRET_ENV} must be set\n`);
    return 2;
  }
  const kube = connectKube({ kubeconfig: settings.kubeconfig, context: settings.context, namespace: settings.namespace });
  const stream = await openAgentStream(kube.config, { namespace: settings.namespace, pod: settings.pod, port: settings.port, secret }, { deadline: Date.now() + settings.timeoutMs });
  // process.stdout writes to a pipe synchronously; a socket over fd 1 is asynchronous and honours backpressure.
  const stdout = new Socket({ fd: 1, readable: false, writable: true });
  stream.readable.pipe(stdout);
  process.stdin.pipe(stream.writable);
  process.stdin.once('end', () => stream.close());
  const reason = await stream.closed;
  process.stderr.write(`kube-link: ${reason}\n`);
  await new Promise<void>((resolve) => stdout.end(resolve));
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`kube-link: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
