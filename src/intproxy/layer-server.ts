// The layers' side of the intproxy: a unix socket that every process of the session (the command and all its
// Node children) connects to. Each layer connection is a link of its own; their requests are served over the
// one agent link.

import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import type { Logger } from '../core/log.js';
import { Link } from '../protocol/link.js';
import type { IntproxyToLayer, LayerRequest, LayerResults, LayerToIntproxy } from '../protocol/messages.js';
import { serveRequests } from '../protocol/rpc.js';
import type { AgentConnection } from './agent-link.js';
import { connectForLayer } from './outgoing.js';
import type { IncomingRouter } from './incoming.js';
import { UdpRelay } from './udp.js';
import { FileRelay } from './files.js';

export async function serveLayers(socketPath: string, agent: AgentConnection, incoming: IncomingRouter, log: Logger): Promise<Server> {
  rmSync(socketPath, { force: true });
  const layers = new Set<Link<IntproxyToLayer, LayerToIntproxy>>();
  const udp = new UdpRelay(agent, log);
  const files = new FileRelay(agent, log);
  const server = createServer((socket: Socket) => {
    const link = new Link<IntproxyToLayer, LayerToIntproxy>({ readable: socket, writable: socket }, { role: 'intproxy', streamIdParity: 'even' });
    layers.add(link);
    link.once('close', () => {
      layers.delete(link);
      incoming.releaseOwner(link);
      udp.releaseOwner(link);
      files.releaseOwner(link);
    });
    link.on('message', (message) => {
      if (message.type === 'udp.send') udp.send(message, link);
    });
    // Serving starts before the handshake completes, so a request that arrives with the hello is not lost.
    serveRequests<LayerRequest, LayerResults>(link, {
      'tcp.connect': (request) => connectForLayer(agent, request.host, request.port, log),
      'dns.getaddrinfo': (request) => agent.rpc.request(request),
      'dns.query': (request) => agent.rpc.request(request),
      'dns.reverse': (request) => agent.rpc.request(request),
      'env.get': (request) => agent.rpc.request(request),
      'incoming.subscribe': (request) => incoming.subscribe(request, link),
      'incoming.unsubscribe': (request) => incoming.unsubscribe(request.subscription),
      'udp.open': (request) => udp.open(request, link),
      'udp.close': (request) => udp.close(request.socket, link),
      ...files.handlersFor(link),
    });
    link.handshake(5000).then(
      (hello) => log.debug({ layer: hello.info }, 'layer connected'),
      (error: Error) => {
        log.warn({ err: error }, 'layer handshake failed');
        link.close(error);
      },
    );
  });
  server.on('close', () => {
    for (const link of layers) link.close();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  // The socket drives connections from inside the target: only the session's user may use it.
  chmodSync(socketPath, 0o600);
  return server;
}
