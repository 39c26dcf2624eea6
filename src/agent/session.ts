// One session on the agent: its link to the intproxy and the handlers of every remote operation. What the
// session owns ends with its link: its streams, its UDP twins, its open files and its subscriptions. What
// the target shares (resolver, redirector, supervisor) lives in SharedTarget and outlives it.

import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../core/log.js';
import { Link } from '../protocol/link.js';
import { serveRequests } from '../protocol/rpc.js';
import type { AgentEvent, AgentRequest, AgentResults, AgentToIntproxy, IntproxyToAgent, Result, SessionCloseResult } from '../protocol/messages.js';
import type { SessionStats } from '../protocol/shared-agent.js';
import { readTargetEnv } from './env.js';
import { connectOutgoing } from './outgoing/tcp.js';
import { UdpTwins } from './outgoing/udp.js';
import type { IncomingSession } from './incoming/service.js';
import { fileHandlers } from './files/handlers.js';
import { TargetFiles } from './files/service.js';
import type { SharedTarget } from './target.js';

export interface SessionOptions {
  readable: Readable;
  writable: Writable;
  /** The operator's id for the session; a direct session has the agent to itself and is called `direct`. */
  id: string;
  owner: string;
  files: 'off' | 'read' | 'write';
  /**
   * `agent`: the session's end is the agent's end (a direct session): `session.close` stops the target's
   * redirects at once and the agent finishes what it accepted. `session`: only this session's subscriptions go.
   */
  closes: 'agent' | 'session';
  handshakeTimeoutMs: number;
}

export interface AgentSession extends IncomingSession {
  /** Resolves once the link closed (and the session's own resources are released), with the reason. */
  readonly closed: Promise<string>;
  readonly ready: Promise<void>;
  stats(): SessionStats;
  /** Tells the intproxy why, then closes the link. */
  end(event: Extract<AgentEvent, { kind: 'session_closed' | 'target_gone' }>): void;
}

export function serveSession(target: SharedTarget, options: SessionOptions): AgentSession {
  const log: Logger = options.id === 'direct' ? target.log : target.log.child({ session: options.id });
  const link = new Link<AgentToIntproxy, IntproxyToAgent>({ readable: options.readable, writable: options.writable }, {
    role: 'agent',
    streamIdParity: 'even',
    info: { pid: process.pid, node: process.version },
  });
  const files = target.filesRoot === null ? null : filesFor(target, options.files);
  const udp = new UdpTwins((datagram) => link.send({ type: 'udp', ...datagram }));
  let lastActivity = Date.now();
  let routed = 0;
  let isReady = false;
  // Set once the handlers serve: the handshake is started after them (see below).
  let ready: Promise<void> = Promise.resolve();

  const session: AgentSession = {
    id: options.id,
    owner: options.owner,
    announce(event) {
      const stream = link.openStream();
      link.send({ type: 'incoming', ...event, stream: stream.id });
      return stream;
    },
    notify(notice) {
      if (!isReady || link.closed) return;
      try {
        link.send({ type: 'event', event: { kind: 'notice', ...notice } });
      } catch {
        // The link is going down: the session will not read it anyway.
      }
    },
    closed: new Promise<string>((resolve) =>
      link.once('close', (error?: Error) => {
        udp.closeAll();
        void files?.closeAll();
        stopRouted();
        const reason = error ? `link failed: ${error.message}` : 'link closed';
        // A direct session's agent drains on its own; a shared one loses only what was this session's.
        const released = options.closes === 'session' ? target.incoming.releaseSession(session) : Promise.resolve();
        void released.finally(() => resolve(reason));
      }),
    ),
    get ready() {
      return ready;
    },
    stats: () => ({
      session: options.id,
      owner: options.owner,
      ready: isReady,
      lastActivity,
      routed,
      subscriptions: target.incoming.subscriptionsOf(session),
    }),
    end(event) {
      if (link.closed) return;
      try {
        link.send({ type: 'event', event });
      } catch {
        // Not past the handshake yet: the close alone tells.
      }
      // Give the event a moment to leave before the link goes down with it.
      setTimeout(() => link.close(), 100).unref();
    },
  };
  const stopRouted = target.onRouted((to) => {
    if (to !== session) return;
    routed++;
    lastActivity = Date.now();
  });
  link.on('message', (message) => {
    if (message.type !== 'ping') lastActivity = Date.now();
    if (message.type === 'udp.send') udp.send(message);
  });

  const closeSession = async (): Promise<Result<SessionCloseResult>> => {
    if (options.closes === 'agent') return { ok: true, value: { draining: await target.incoming.stopTaking() } };
    await target.incoming.releaseSession(session);
    return { ok: true, value: { draining: 0 } };
  };

  // Serving starts before the handshake completes: the peer's first request may arrive in the same read as
  // its hello, and a message with no listener yet would be lost.
  serveRequests<AgentRequest, AgentResults>(link, {
    'tcp.connect': (request) =>
      connectOutgoing(request, {
        resolve: (host) => target.resolver.getaddrinfo(host, 0),
        acceptStream: (id) => link.acceptStream(id),
      }),
    'dns.getaddrinfo': (request) => target.resolver.getaddrinfo(request.host, request.family),
    'dns.query': (request) => target.resolver.query(request.name, request.rrtype, request.ttl),
    'dns.reverse': (request) => target.resolver.reverse(request.address),
    'env.get': () => readTargetEnv(target.pid),
    'incoming.subscribe': (request) => target.incoming.subscribe(session, request),
    'incoming.unsubscribe': (request) => target.incoming.unsubscribe(session, request.subscription),
    'udp.open': (request) => udp.open(request),
    'udp.close': (request) => udp.close(request),
    ...fileHandlers(files),
    'session.close': closeSession,
  });
  ready = link.handshake(options.handshakeTimeoutMs).then(
    () => {
      isReady = true;
      log.info({ target: target.pid ?? target.netns, owner: options.owner }, 'session ready');
    },
    (error: Error) => {
      link.close(error);
      throw error;
    },
  );
  return session;
}

function filesFor(target: SharedTarget, asked: 'off' | 'read' | 'write'): TargetFiles | null {
  const access = target.filesFor(asked);
  if (access === 'off' || target.filesRoot === null) return null;
  return new TargetFiles(target.filesRoot, { writable: access === 'write' });
}
