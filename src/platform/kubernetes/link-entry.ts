// The intproxy's way to the agent of a Kubernetes session: a small process whose stdio is the agent's link,
// as the local platform's `nsenter … agent` is. It opens the port-forward, answers the agent's challenge, and
// then only copies bytes. Keeping the Kubernetes client out of the intproxy keeps the intproxy platform-blind
// and fast to start for local targets.
//
// Settings come in env vars (the private key must not show in `ps`): KUBE_LINK_ENV as JSON, and the key in
// LINK_KEY_ENV. Errors go to stderr, which the intproxy shows as the link's last words.

import { Socket } from 'node:net';
import { finished } from 'node:stream/promises';
import { LINK_KEY_ENV } from '../../protocol/agent-auth.js';
import { KUBE_LINK_ENV, type KubeLinkSettings } from '../../protocol/contracts.js';
import { connectKube } from './api.js';
import { openAgentStream } from './port-forward.js';

async function main(): Promise<number> {
  const settings = JSON.parse(process.env[KUBE_LINK_ENV] ?? 'null') as KubeLinkSettings | null;
  const privateKey = process.env[LINK_KEY_ENV];
  // Nothing this process starts (a kubeconfig's exec credential plugin, say) needs them.
  delete process.env[KUBE_LINK_ENV];
  delete process.env[LINK_KEY_ENV];
  if (settings === null || privateKey === undefined) {
    process.stderr.write(`kube-link: ${KUBE_LINK_ENV} and ${LINK_KEY_ENV} must be set\n`);
    return 2;
  }
  const kube = connectKube({ kubeconfig: settings.kubeconfig, inCluster: settings.inCluster, context: settings.context, namespace: settings.namespace });
  const stream = await openAgentStream(kube.config, { namespace: settings.namespace, pod: settings.pod, port: settings.port, privateKey }, { deadline: Date.now() + settings.timeoutMs });
  // process.stdout writes to a pipe synchronously; a socket over fd 1 is asynchronous and honours backpressure.
  const stdout = new Socket({ fd: 1, readable: false, writable: true });
  // The pipe ends stdout once the stream has delivered everything: the agent's last words (a target_gone
  // event, the answer to session.close) must not be cut off.
  stream.readable.pipe(stdout);
  process.stdin.pipe(stream.writable);
  process.stdin.once('end', () => stream.close());
  const reason = await stream.closed;
  await finished(stdout).catch(() => undefined);
  process.stderr.write(`kube-link: ${reason}\n`);
  return 0;
}

// A terminal's Ctrl-C reaches every process of the foreground group; the session ends through its command,
// and this link must carry the agent's answers until then.
process.on('SIGINT', () => {});

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`kube-link: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
