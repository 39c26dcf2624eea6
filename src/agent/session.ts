// One agent session: the link to the intproxy and the handlers of every remote operation.

import type { Readable, Writable } from 'node:stream';
import { existsSync } from 'node:fs';
import type { Logger } from '../core/log.js';
import { Link } from '../protocol/link.js';
import { serveRequests } from '../protocol/rpc.js';
import type { AgentRequest, AgentResults, AgentToIntproxy, IntproxyToAgent } from '../protocol/messages.js';
import { TargetResolver } from './dns/resolver.js';
import { readTargetEnv } from './env.js';
import { connectOutgoing } from './outgoing/tcp.js';
import { UdpTwins } from './outgoing/udp.js';
import { watchTarget } from './target-watch.js';
import { IncomingService } from './incoming/service.js';
import { fileHandlers } from './files/handlers.js';
import { TargetFiles } from './files/service.js';

export interface AgentOptions {
  pid: number | null;
  netns: string | null;
  log: Logger;
  readable: Readable;
  writable: Writable;
  /** The target's files: `off` answers every file operation with a failure; `write` also allows changes. */
  files: 'off' | 'read' | 'write';
}

/** Where the target's resolver files are, as seen from the agent (which shares the host's mount namespace). */
export function targetDnsFiles(pid: number | null, netns: string | null): { resolvConf: string; hosts: string } {
  if (pid !== null) return { resolvConf: `/proc/${pid}/root/etc/resolv.conf`, hosts: `/proc/${pid}/root/etc/hosts` };
  const netnsDir = netns === null ? null : `/etc/netns/${netns}`;
  return {
    resolvConf: netnsDir !== null && existsSync(`${netnsDir}/resolv.conf`) ? `${netnsDir}/resolv.conf` : '/etc/resolv.conf',
    hosts: netnsDir !== null && existsSync(`${netnsDir}/hosts`) ? `${netnsDir}/hosts` : '/etc/hosts',
  };
}

/** Serves until the link closes; resolves with the reason. */
export async function startAgent(options: AgentOptions): Promise<string> {
  const { log, pid } = options;
  const link = new Link<AgentToIntproxy, IntproxyToAgent>({ readable: options.readable, writable: options.writable }, {
    role: 'agent',
    streamIdParity: 'even',
    info: { pid: process.pid, node: process.version },
  });
  const resolver = new TargetResolver(targetDnsFiles(pid, options.netns));
  const incoming = new IncomingService(link, log);
  // A bare network namespace has no files of its own: what the app would read "there" is this machine's.
  const files = options.files === 'off' || pid === null ? null : new TargetFiles(`/proc/${pid}/root`, { writable: options.files === 'write' });
  const udp = new UdpTwins((datagram) => link.send({ type: 'udp', ...datagram }));
  link.on('message', (message) => {
    if (message.type === 'udp.send') udp.send(message);
  });
  link.once('close', () => {
    udp.closeAll();
    void files?.closeAll();
  });
  // Whatever ends the session, the target's ports answer as before (the supervisor covers a kill -9).
  const closed = new Promise<string>((resolve) =>
    link.once('close', (error?: Error) => {
      const reason = error ? `link failed: ${error.message}` : 'link closed';
      // The rules go at once; connections the agent accepted for the target are finished, not cut.
      void incoming.drain().finally(() => resolve(reason));
    }),
  );
  // Serving starts before the handshake completes: the peer's first request may arrive in the same read as
  // its hello, and a message with no listener yet would be lost.
  serveRequests<AgentRequest, AgentResults>(link, {
    'tcp.connect': (request) =>
      connectOutgoing(request, {
        resolve: (host) => resolver.getaddrinfo(host, 0),
        acceptStream: (id) => link.acceptStream(id),
      }),
    'dns.getaddrinfo': (request) => resolver.getaddrinfo(request.host, request.family),
    'dns.query': (request) => resolver.query(request.name, request.rrtype, request.ttl),
    'dns.reverse': (request) => resolver.reverse(request.address),
    'env.get': () => readTargetEnv(pid),
    'incoming.subscribe': (request) => incoming.subscribe(request),
    'incoming.unsubscribe': (request) => incoming.unsubscribe(request.subscription),
    'udp.open': (request) => udp.open(request),
    'udp.close': (request) => udp.close(request),
    ...fileHandlers(files),
    'session.close': async () => ({ ok: true, value: { draining: await incoming.stopTaking() } }),
  });
  await link.handshake(10_000);
  log.info({ target: pid ?? options.netns }, 'agent ready');

  if (pid !== null) {
    const stopWatching = watchTarget(pid, (reason) => {
      log.warn({ reason }, 'target gone');
      link.send({ type: 'event', event: { kind: 'target_gone', reason } });
      // Give the event a moment to leave before the link goes down with it.
      setTimeout(() => link.close(), 100).unref();
    });
    link.once('close', stopWatching);
  }
  return closed;
}
