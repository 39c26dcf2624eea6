// The agent's incoming traffic, shared by every session on the target: subscriptions per port, one redirect
// per port whoever holds it, and what happens to every connection the redirector hands over.
//
// A port is held in one of two ways, and mirrored by anyone on top:
//   steal, no filter  one session takes the whole port: each connection goes to it.
//   steal, filter     any number of sessions, each with an HTTP filter: per request (http-router.ts), the
//                     first session (in subscription order) whose filter matches gets it, and a request no
//                     filter matches reaches the original server over the same client connection. Sessions whose
//                     filters both match one request are each told so, once per pair (REMOCAL_FILTER_OVERLAP).
//   mirror            every mirroring session gets its own copy of what the client sends; the connection itself
//                     goes on as it would without them. A copy is best effort: if a session cannot keep up, its
//                     copy of that connection stops, the connection never waits for it.
//
// Sessions come and go without touching the others: a port's redirect stays while anyone holds it, and only
// when its last subscription goes does the port stop taking new connections (see Redirector.release). Who may
// steal a port others steal is conflicts.ts's decision; a session whose port is taken over is told, and goes on.

import { connect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { PortHeldError, PortTakenError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { splice } from '../../core/splice.js';
import type {
  AgentEvent,
  AgentSubscribeRequest,
  HttpFilterSpec,
  IncomingEvent,
  IncomingMode,
  RemoteFailure,
  Result,
  SocketAddress,
  SubscribeResult,
  UnsubscribeResult,
} from '../../protocol/messages.js';
import type { SubscriptionStats } from '../../protocol/shared-agent.js';
import { decideSteal } from './conflicts.js';
import { compileHttpFilter, filterIdentity, type FilterableRequest, type HttpFilter } from './http-filter.js';
import { routeHttpConnection, type HttpRequestHead, type HttpSubscriber } from './http-router.js';
import { Redirector, type OriginalDestination } from './redirector.js';
import { removeStaleChains } from './stale.js';
import { teeClient } from './tee.js';

/** After the agent's last session, connections the agent accepted get this long to finish before they are cut. */
export const MAX_DRAIN_MS = 30_000;

/** A mirror copy further behind than this is dropped rather than buffered. */
const MIRROR_BACKLOG_LIMIT = 8 * 1024 * 1024;

/** The code of the notice that tells a session another one's filter matched the same request. */
const FILTER_OVERLAP = 'REMOCAL_FILTER_OVERLAP';

/** A request line longer than this is cut in notices and in `remocal session list`. */
const MAX_REQUEST_LINE = 200;

export type IncomingNotice = Omit<Extract<AgentEvent, { kind: 'notice' }>, 'kind'>;

/** What the incoming service needs of a session: who it is, a way to hand it a stream, and to tell its user. */
export interface IncomingSession {
  /** The session's id, as `remocal session list` shows it. */
  readonly id: string;
  readonly owner: string;
  /** Opens a stream to the session and announces it with an `incoming` event. */
  announce(event: Omit<IncomingEvent, 'stream'>): Duplex;
  /** Tells the session's user something (the session goes on); never throws. */
  notify(notice: IncomingNotice): void;
  /**
   * Whether a request may go to this session at all, asked after its filter matched (a policy may narrow what a
   * session gets). Unset: every request its filter matches.
   */
  admits?(request: FilterableRequest): boolean;
}

export interface SubscribeOptions {
  /** When set, a subscription that would displace another session's is refused with this instead (a policy). */
  overrideRefusal?: RemoteFailure;
}

interface Subscription {
  id: number;
  port: number;
  mode: IncomingMode;
  /** Set for a filtered steal on a port the filter applies to. */
  filter: HttpFilter | null;
  spec: HttpFilterSpec | null;
  /** filterIdentity() of the spec, for a filtered steal: equal filters on one port are refused. */
  identity: string | null;
  session: IncomingSession;
  since: number;
  /** Subscriptions whose filter matched a request this one's matched too, with the first such request line. */
  overlaps: Map<Subscription, string>;
}

interface Holders {
  mirrors: Subscription[];
  whole: Subscription | undefined;
  /** In subscription order: the first match wins. */
  filtered: Subscription[];
}

export class IncomingService {
  private redirector: Redirector | undefined;
  private readonly subscriptions = new Map<number, Subscription>();
  private readonly ports = new Map<number, Holders>();
  private nextId = 1;
  /** Once the agent is ending: nothing new goes to any session, and accepted connections are finished. */
  private draining = false;
  private readonly clients = new Set<Socket>();
  private drained: (() => void) | undefined;
  private stopped: Promise<number> | undefined;
  private staleRemoved: Promise<void> | undefined;

  constructor(
    private readonly log: Logger,
    private readonly onRouted: (session: IncomingSession) => void = () => undefined,
  ) {}

  async subscribe(session: IncomingSession, request: AgentSubscribeRequest, options: SubscribeOptions = {}): Promise<Result<SubscribeResult>> {
    const holders = this.ports.get(request.port);
    const own = holders === undefined ? undefined : allOf(holders).find((existing) => existing.session === session);
    if (own !== undefined) {
      return { ok: false, error: { code: 'EADDRINUSE', message: `port ${request.port} is already subscribed in this session` } };
    }
    const compiled = request.filter === null ? null : compileHttpFilter(request.filter);
    const filter = request.mode === 'steal' && compiled !== null && compiled.appliesToPort(request.port) ? compiled : null;
    const spec = filter === null ? null : request.filter;
    const identity = spec === null ? null : filterIdentity(spec);
    const onConcurrentSteal = request.onConcurrentSteal ?? 'abort';
    const decision = holders === undefined ? { kind: 'share' as const } : decideSteal(holders, { port: request.port, mode: request.mode, identity, onConcurrentSteal });
    if (decision.kind === 'refuse') return { ok: false, error: decision.error };
    const displaced = decision.kind === 'displace' ? decision.holders : [];
    if (displaced.length > 0 && options.overrideRefusal !== undefined) return { ok: false, error: options.overrideRefusal };

    const id = this.nextId++;
    const subscription: Subscription = { id, port: request.port, mode: request.mode, filter, spec, identity, session, since: Date.now(), overlaps: new Map() };
    // The port stays redirected: the displaced go from its holders, and the new holder takes their place at once.
    for (const other of displaced) this.remove(other);
    // Registered before the rule exists: the first connection may arrive as soon as it does.
    this.subscriptions.set(id, subscription);
    const entry = this.ports.get(request.port) ?? { mirrors: [], whole: undefined, filtered: [] };
    this.ports.set(request.port, entry);
    if (request.mode === 'mirror') entry.mirrors.push(subscription);
    else if (filter === null) entry.whole = subscription;
    else entry.filtered.push(subscription);
    try {
      await (await this.redirectorReady()).redirect(request.port);
    } catch (error) {
      this.remove(subscription);
      const { code, hint } = error as { code?: string; hint?: string };
      let message = (error as Error).message;
      // Held by another agent in the target (without the operator, every session has its own): no session of
      // this agent can be displaced, and the other agent cannot be told to let go.
      if (code === PortHeldError.code && onConcurrentSteal === 'override') {
        message += '; on_concurrent_steal: override takes a port only from sessions on the same remocal operator, never from another agent';
      }
      return { ok: false, error: { code: code ?? 'REMOCAL_INCOMING_FAILED', message, ...(hint === undefined ? {} : { hint }) } };
    }
    for (const other of displaced) {
      this.log.info({ port: request.port, session: other.session.id, by: session.id }, 'subscription taken over');
      const taken = new PortTakenError(
        `port ${request.port} of the target was taken over by session ${session.id} (${session.owner}) with on_concurrent_steal: override; your session goes on without it`,
      );
      other.session.notify({ code: taken.code, message: taken.message, ...(taken.hint === undefined ? {} : { hint: taken.hint }) });
    }
    this.log.info({ port: request.port, mode: request.mode, filtered: filter !== null, session: session.id }, 'subscribed');
    const tookFrom = displaced.map((other) => ({ session: other.session.id, owner: other.session.owner }));
    return { ok: true, value: { subscription: id, mode: request.mode, ...(tookFrom.length === 0 ? {} : { displaced: tookFrom }) } };
  }

  async unsubscribe(session: IncomingSession, id: number): Promise<Result<UnsubscribeResult>> {
    const subscription = this.subscriptions.get(id);
    // Another session's subscription is not this one's to end: to it, the id does not exist.
    if (subscription === undefined || subscription.session !== session) return { ok: true, value: {} };
    await this.release(subscription);
    return { ok: true, value: {} };
  }

  /** A session ended: its subscriptions go, and only they. */
  async releaseSession(session: IncomingSession): Promise<void> {
    const own = [...this.subscriptions.values()].filter((subscription) => subscription.session === session);
    await Promise.all(own.map((subscription) => this.release(subscription)));
  }

  /** The subscriptions of one session, for `remocal session list`. */
  subscriptionsOf(session: IncomingSession): SubscriptionStats[] {
    return [...this.subscriptions.values()]
      .filter((subscription) => subscription.session === session)
      .map(({ port, mode, spec, since, overlaps }) => ({
        port,
        mode,
        filter: spec,
        since,
        ...(overlaps.size === 0 ? {} : { overlaps: [...overlaps].map(([other, request]) => ({ session: other.session.id, owner: other.session.owner, request })) }),
      }));
  }

  /** Removes every rule; the target's ports answer as before. */
  close(): Promise<void> {
    return this.redirector?.close() ?? Promise.resolve();
  }

  /** The agent ends: rules go now; returns how many accepted connections are still open. */
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

  private async redirectorReady(): Promise<Redirector> {
    // Chains of agents that died before their supervisor could act would shadow ours; only on the first
    // subscription, so sessions that never listen pay nothing.
    this.staleRemoved ??= removeStaleChains().then(
      (removed) => {
        if (removed.length > 0) this.log.info({ removed }, 'removed stale remocal chains');
      },
      (error: Error) => this.log.warn({ err: error }, 'could not look for stale remocal chains'),
    );
    await this.staleRemoved;
    this.redirector ??= new Redirector({ onConnection: (socket, original) => this.onConnection(socket, original), log: this.log });
    return this.redirector;
  }

  private remove(subscription: Subscription): boolean {
    if (!this.subscriptions.delete(subscription.id)) return false;
    const holders = this.ports.get(subscription.port);
    if (holders === undefined) return true;
    holders.mirrors = holders.mirrors.filter((other) => other !== subscription);
    holders.filtered = holders.filtered.filter((other) => other !== subscription);
    if (holders.whole === subscription) holders.whole = undefined;
    if (allOf(holders).length === 0) this.ports.delete(subscription.port);
    for (const other of subscription.overlaps.keys()) other.overlaps.delete(subscription);
    return true;
  }

  private async release(subscription: Subscription): Promise<void> {
    if (!this.remove(subscription)) return;
    this.log.info({ port: subscription.port, session: subscription.session.id }, 'unsubscribed');
    // The port stops taking new connections only once nobody holds it; a port taken again meanwhile is kept.
    if (!this.ports.has(subscription.port)) await this.redirector?.release(subscription.port);
  }

  private onConnection(client: Socket, original: OriginalDestination): void {
    this.clients.add(client);
    client.once('close', () => {
      this.clients.delete(client);
      if (this.clients.size === 0) this.drained?.();
    });
    const holders = this.ports.get(original.port);
    if (holders === undefined || this.draining) {
      // Released while this connection was on its way: it belongs to the target.
      passThrough(client, original);
      return;
    }
    const addresses = { source: address(client.remoteAddress, client.remotePort), destination: address(original.address, original.port) };
    const copies = holders.mirrors.map((mirror) => this.copyTo(mirror, client, addresses));
    if (holders.whole !== undefined) {
      if (copies.length > 0) client.on('data', (chunk: Buffer) => copies.forEach((copy) => copy(chunk)));
      splice(client, this.announce(holders.whole, 'connection', addresses));
    } else if (holders.filtered.length > 0) {
      const port = original.port;
      // The router keeps one kept-alive stream per subscriber it is handed, so each subscription gets one handle
      // per client connection, announced with that connection's addresses.
      const subscribers = new Map<Subscription, HttpSubscriber>();
      // With mirrors on the port, the router reads a copy-taking view of the client (see tee.ts).
      const view = copies.length === 0 ? client : teeClient(client, (chunk) => copies.forEach((copy) => copy(chunk)));
      routeHttpConnection(view, {
        // Asked per request, against the port's holders at that moment; once the agent ends, every request is
        // the target's again, on the connections it already has.
        route: (head) => {
          if (this.draining) return undefined;
          const match = this.match(this.ports.get(port)?.filtered, head);
          if (match === undefined) return undefined;
          this.onRouted(match.session);
          let subscriber = subscribers.get(match);
          if (subscriber === undefined) {
            subscriber = { open: async () => this.announce(match, 'request', addresses) };
            subscribers.set(match, subscriber);
          }
          return subscriber;
        },
        draining: () => this.draining,
        connectOriginal: () => connectOriginal(original),
      });
    } else {
      // Mirrors only: the connection goes on to the original server, the copies take its bytes on the way.
      if (copies.length > 0) client.on('data', (chunk: Buffer) => copies.forEach((copy) => copy(chunk)));
      passThrough(client, original);
    }
  }

  /**
   * The first filtered subscription (in subscription order) that takes the request. The others are asked too, which
   * costs no more than a request nobody matches: sessions that match it as well are told of the overlap.
   */
  private match(filtered: readonly Subscription[] | undefined, head: HttpRequestHead): Subscription | undefined {
    if (filtered === undefined) return undefined;
    let first: Subscription | undefined;
    let also: Subscription[] | undefined;
    for (const subscription of filtered) {
      if (!subscription.filter!(head) || !(subscription.session.admits?.(head) ?? true)) continue;
      if (first === undefined) first = subscription;
      else (also ??= []).push(subscription);
    }
    if (also !== undefined) this.reportOverlaps([first!, ...also], head);
    return first;
  }

  /** Each pair of the sessions that matched one request is told once, the first time. */
  private reportOverlaps(matched: Subscription[], head: HttpRequestHead): void {
    const winner = matched[0]!;
    const request = `${head.method} ${head.path}`.slice(0, MAX_REQUEST_LINE);
    for (let a = 0; a < matched.length; a++) {
      for (let b = a + 1; b < matched.length; b++) {
        const [one, other] = [matched[a]!, matched[b]!];
        if (one.overlaps.has(other)) continue;
        one.overlaps.set(other, request);
        other.overlaps.set(one, request);
        this.log.info({ port: one.port, sessions: [one.session.id, other.session.id], request }, 'filters overlap');
        for (const [told, about] of [[one, other], [other, one]] as const) {
          const went = winner === told ? 'this session' : `session ${winner.session.id} (${winner.session.owner})`;
          told.session.notify({
            code: FILTER_OVERLAP,
            message:
              `the request ${request} on port ${told.port} matched the HTTP filter of this session and that of session ${about.session.id} (${about.session.owner}); ` +
              `it went to ${went}, subscribed first, as will the next requests both filters match`,
            hint: 'Make the filters tell your requests apart (a header only yours carry, such as `x-dev: <your name>`); `remocal session list` shows the filters on each port.',
          });
        }
      }
    }
  }

  /**
   * Starts a mirroring session's copy of the connection; returns what copies a chunk the client sent. Unless
   * someone else reads the client through a view, the copy takes what it needs from the client's own events.
   */
  private copyTo(subscription: Subscription, client: Socket, addresses: Addresses): (chunk: Buffer) => void {
    const copy = this.announce(subscription, 'connection', addresses);
    // What the app answers to a copy is not needed (the intproxy drops it anyway).
    copy.resume();
    copy.on('error', () => undefined);
    let copying = true;
    client.once('end', () => copying && copy.end());
    client.once('close', () => copying && !copy.writableEnded && copy.end());
    return (chunk: Buffer) => {
      if (!copying) return;
      if (copy.writableLength > MIRROR_BACKLOG_LIMIT) {
        copying = false;
        this.log.warn({ port: subscription.port, session: subscription.session.id }, 'mirror copy fell behind; stopped copying this connection');
        copy.destroy();
        return;
      }
      copy.write(chunk);
    };
  }

  private announce(subscription: Subscription, kind: IncomingEvent['kind'], addresses: Addresses): Duplex {
    if (kind === 'connection') this.onRouted(subscription.session);
    return subscription.session.announce({ subscription: subscription.id, kind, ...addresses });
  }
}

interface Addresses {
  source: SocketAddress;
  destination: SocketAddress;
}

function allOf(holders: Holders): Subscription[] {
  return [...holders.mirrors, ...(holders.whole === undefined ? [] : [holders.whole]), ...holders.filtered];
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
