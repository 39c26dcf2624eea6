// The agent's incoming traffic: subscriptions from the intproxy, one redirected port each, and what happens to
// every connection the redirector hands over:
//
//   mirror            the connection passes through to the original server; a copy of what the client sends
//                     goes to the session. The copy is best effort: if the session cannot keep up, the copy of
//                     that connection stops, the connection itself never waits for it.
//   steal, no filter  the whole connection goes to the session.
//   steal, filter     per HTTP request (http-router.ts): matching requests go to the session, the others to the
//                     original server over the same client connection.

import { connect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import { splice } from '../../core/splice.js';
import type { Link } from '../../protocol/link.js';
import type {
  AgentSubscribeRequest,
  AgentToIntproxy,
  IncomingEvent,
  IncomingMode,
  IntproxyToAgent,
  Result,
  SocketAddress,
  SubscribeResult,
  UnsubscribeResult,
} from '../../protocol/messages.js';
import { compileHttpFilter, type HttpFilter, type HttpFilterConfig } from './http-filter.js';
import { routeHttpConnection } from './http-router.js';
import { Redirector, type OriginalDestination } from './redirector.js';
import { removeStaleChains } from './stale.js';

/** After the session, connections the agent accepted get this long to finish before they are cut. */
export const MAX_DRAIN_MS = 30_000;

/** A mirror copy further behind than this is dropped rather than buffered. */
const MIRROR_BACKLOG_LIMIT = 8 * 1024 * 1024;

interface Subscription {
  id: number;
  port: number;
  mode: IncomingMode;
  filter: HttpFilter | null;
}

export class IncomingService {
  private redirector: Redirector | undefined;
  private readonly subscriptions = new Map<number, Subscription>();
  private readonly byPort = new Map<number, Subscription>();
  private nextId = 1;
  /** Once the session is over: nothing new goes to it, and accepted connections are finished. */
  private draining = false;
  private readonly clients = new Set<Socket>();
  private drained: (() => void) | undefined;
  private stopped: Promise<number> | undefined;

  constructor(
    private readonly link: Link<AgentToIntproxy, IntproxyToAgent>,
    private readonly log: Logger,
  ) {}

  async subscribe(request: AgentSubscribeRequest): Promise<Result<SubscribeResult>> {
    if (this.byPort.has(request.port)) {
      return { ok: false, error: { code: 'EADDRINUSE', message: `port ${request.port} is already subscribed in this session` } };
    }
    const filter = request.filter === null ? null : compileHttpFilter(request.filter as HttpFilterConfig);
    const subscription: Subscription = { id: this.nextId++, port: request.port, mode: request.mode, filter: filter?.isSet ? filter : null };
    if (this.redirector === undefined) {
      // Chains of agents that died before their supervisor could act would shadow ours; only on the first
      // subscription, so sessions that never listen pay nothing.
      const removed = await removeStaleChains().catch((error: Error) => {
        this.log.warn({ err: error }, 'could not look for stale remocal chains');
        return [];
      });
      if (removed.length > 0) this.log.info({ removed }, 'removed stale remocal chains');
      this.redirector = new Redirector({ onConnection: (socket, original) => this.onConnection(socket, original), log: this.log });
    }
    // Registered before the rule exists: the first connection may arrive as soon as it does.
    this.subscriptions.set(subscription.id, subscription);
    this.byPort.set(request.port, subscription);
    try {
      await this.redirector.redirect(request.port);
    } catch (error) {
      this.subscriptions.delete(subscription.id);
      this.byPort.delete(request.port);
      const { code, hint } = error as { code?: string; hint?: string };
      return { ok: false, error: { code: code ?? 'REMOCAL_INCOMING_FAILED', message: (error as Error).message, ...(hint === undefined ? {} : { hint }) } };
    }
    this.log.info({ port: request.port, mode: request.mode, filtered: subscription.filter !== null }, 'subscribed');
    return { ok: true, value: { subscription: subscription.id, mode: request.mode } };
  }

  async unsubscribe(id: number): Promise<Result<UnsubscribeResult>> {
    const subscription = this.subscriptions.get(id);
    if (subscription === undefined) return { ok: true, value: {} };
    this.subscriptions.delete(id);
    this.byPort.delete(subscription.port);
    await this.redirector?.release(subscription.port);
    return { ok: true, value: {} };
  }

  /** Removes every rule; the target's ports answer as before. */
  close(): Promise<void> {
    return this.redirector?.close() ?? Promise.resolve();
  }

  /** The session ends: rules go now; returns how many accepted connections are still open. */
  stopTaking(): Promise<number> {
    this.stopped ??= (async () => {
      this.draining = true;
      if (this.clients.size === 0) await this.close();
      else await this.redirector?.stopNewConnections();
      return this.clients.size;
    })();
    return this.stopped;
  }

  /** Resolves once every accepted connection has closed, cutting those still open after `maxMs`. */
  async drain(maxMs = MAX_DRAIN_MS): Promise<void> {
    await this.stopTaking();
    if (this.clients.size === 0) return this.close();
    this.log.info({ connections: this.clients.size }, 'finishing accepted connections before exiting');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      this.drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    for (const client of this.clients) client.destroy();
    await this.close();
  }

  private onConnection(client: Socket, original: OriginalDestination): void {
    this.clients.add(client);
    client.once('close', () => {
      this.clients.delete(client);
      if (this.clients.size === 0) this.drained?.();
    });
    const subscription = this.byPort.get(original.port);
    if (subscription === undefined || this.draining) {
      // Released while this connection was on its way: it belongs to the target.
      passThrough(client, original);
      return;
    }
    const source = address(client.remoteAddress, client.remotePort);
    const destination = address(original.address, original.port);
    if (subscription.mode === 'mirror') {
      this.mirror(client, original, subscription, source, destination);
    } else if (subscription.filter !== null && subscription.filter.appliesToPort(original.port)) {
      const filter = subscription.filter;
      routeHttpConnection(client, {
        // Once the session is gone, every request is the target's again, on the connections it already has.
        matches: (head) => !this.draining && filter(head),
        draining: () => this.draining,
        connectOriginal: () => connectOriginal(original),
        openSubscriber: async () => this.openStream(subscription, 'request', source, destination),
      });
    } else {
      splice(client, this.openStream(subscription, 'connection', source, destination));
    }
  }

  private mirror(client: Socket, original: OriginalDestination, subscription: Subscription, source: SocketAddress, destination: SocketAddress): void {
    const upstream = passThrough(client, original);
    const copy = this.openStream(subscription, 'connection', source, destination);
    // What the app answers to a copy is not needed (the intproxy drops it anyway).
    copy.resume();
    copy.on('error', () => undefined);
    let copying = true;
    client.on('data', (chunk: Buffer) => {
      if (!copying) return;
      if (copy.writableLength > MIRROR_BACKLOG_LIMIT) {
        copying = false;
        this.log.warn({ port: subscription.port }, 'mirror copy fell behind; stopped copying this connection');
        copy.destroy();
        return;
      }
      copy.write(chunk);
    });
    client.once('end', () => copying && copy.end());
    client.once('close', () => copying && !copy.writableEnded && copy.end());
    upstream.once('error', () => copy.destroy());
  }

  private openStream(subscription: Subscription, kind: IncomingEvent['kind'], source: SocketAddress, destination: SocketAddress): Duplex {
    const stream = this.link.openStream();
    this.link.send({ type: 'incoming', subscription: subscription.id, stream: stream.id, kind, source, destination });
    return stream;
  }
}

function address(host: string | undefined, port: number | undefined): SocketAddress {
  const text = host ?? '';
  return { address: text, port: port ?? 0, family: isIP(text) === 6 ? 'IPv6' : 'IPv4' };
}

function connectOriginal(original: OriginalDestination): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: original.address, port: original.port, allowHalfOpen: true, noDelay: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** The client's connection, unchanged, to the server it was meant for. */
function passThrough(client: Socket, original: OriginalDestination): Socket {
  const upstream = connect({ host: original.address, port: original.port, allowHalfOpen: true, noDelay: true });
  splice(client, upstream);
  return upstream;
}
