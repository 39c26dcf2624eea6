// Outgoing connections for the layers. The agent opens the real connection from inside the target; the layer
// gets a loopback port to connect its own socket to, and the intproxy splices that local connection to the
// agent's stream. The listener is opened while the agent connects, so it costs no extra round trip.

import { createServer, type Server, type Socket } from 'node:net';
import { splice } from '../core/splice.js';
import type { Logger } from '../core/log.js';
import { LINK_LOST_CODE } from '../protocol/contracts.js';
import type { LayerConnectResult, Result } from '../protocol/messages.js';
import type { AgentConnection } from './agent-link.js';

/** A proxy port the layer does not claim in this time is closed, and so is its remote connection. */
const CLAIM_TIMEOUT_MS = 30_000;

export async function connectForLayer(agent: AgentConnection, host: string, port: number, log: Logger): Promise<Result<LayerConnectResult>> {
  const stream = agent.link.openStream();
  const [answer, listener] = await Promise.all([
    agent.rpc.request({ op: 'tcp.connect', host, port, stream: stream.id }).catch((error: Error) => ({
      ok: false as const,
      error: { code: LINK_LOST_CODE, message: error.message, syscall: 'connect' },
    })),
    listenOnce(),
  ]);
  if (!answer.ok) {
    stream.destroy();
    listener.server.close();
    return answer;
  }
  const timer = setTimeout(() => {
    log.debug({ host, port }, 'proxy port not claimed, closing');
    listener.server.close();
    stream.destroy();
  }, CLAIM_TIMEOUT_MS);
  timer.unref();
  listener.accepted.then(
    (socket) => {
      clearTimeout(timer);
      splice(socket, stream);
    },
    () => undefined,
  );
  return { ok: true, value: { ...answer.value, proxyPort: listener.port } };
}

function listenOnce(): Promise<{ server: Server; port: number; accepted: Promise<Socket> }> {
  return new Promise((resolve, reject) => {
    let onAccept!: (socket: Socket) => void;
    let onClose!: () => void;
    const accepted = new Promise<Socket>((res, rej) => {
      onAccept = res;
      onClose = () => rej(new Error('closed'));
    });
    accepted.catch(() => undefined);
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      server.close();
      onAccept(socket);
    });
    server.once('close', onClose);
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address !== null ? address.port : 0, accepted });
    });
  });
}
