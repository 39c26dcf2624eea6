// One session on the agent: its link to the intproxy and the handlers of every remote operation. What the
// session owns ends with its link: its streams, its UDP twins, its open files and its subscriptions. What
// the target shares (resolver, redirector, supervisor) lives in SharedTarget and outlives it.

import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../core/log.js';
import { Link } from '../protocol/link.js';
import { serveRequests } from '../protocol/rpc.js';
import { isIP } from 'node:net';
import { constants as osConstants } from 'node:os';
import type {
  AgentEvent,
  AgentRequest,
  AgentResults,
  AgentSubscribeRequest,
  AgentToIntproxy,
  EnvGetResult,
  GetAddrInfoResult,
  IntproxyToAgent,
  RemoteFailure,
  Result,
  SessionCloseResult,
} from '../protocol/messages.js';
import { POLICY_BLOCKED, type AppliedPolicy } from '../protocol/policy.js';
import type { SessionStats } from '../protocol/shared-agent.js';
import { readTargetEnv } from './env.js';
import { connectOutgoing } from './outgoing/tcp.js';
import { UdpTwins } from './outgoing/udp.js';
import type { IncomingNotice, IncomingSession } from './incoming/service.js';
import { fileHandlers } from './files/handlers.js';
import { TargetFiles, type TargetFilesOptions } from './files/service.js';
import { targetError } from './files/root.js';
import type { FilterableRequest } from './incoming/http-filter.js';
import { POLICY_HINT, SessionGuard, type Refusal } from './policy/guard.js';
import { ResolvedNames } from './policy/resolved-names.js';
import type { SharedTarget } from './target.js';

export interface SessionOptions {
  readable: Readable;
  writable: Writable;
  /** The operator's id for the session; a direct session has the agent to itself and is called `direct`. */
  id: string;
  owner: string;
  files: 'off' | 'read' | 'write';
  /** The admins' policies in force for the session (behind the operator); none for a direct session. */
  policies?: readonly AppliedPolicy[];
  /** What the operator sets in this session's view of the environment (SessionPreamble.env). */
  env?: Readonly<Record<string, string>>;
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
  /** The policies changed: the session's next operations meet these. */
  setPolicies(policies: readonly AppliedPolicy[]): void;
  /** Whether a request that matched the session's filter may be routed to it (a policy's required header). */
  admits(request: FilterableRequest): boolean;
}

/** A session that keeps meeting refusals is told about each kind once, and about this many kinds at most. */
const MAX_NOTICES = 100;

export function serveSession(target: SharedTarget, options: SessionOptions): AgentSession {
  const log: Logger = options.id === 'direct' ? target.log : target.log.child({ session: options.id });
  const link = new Link<AgentToIntproxy, IntproxyToAgent>({ readable: options.readable, writable: options.writable }, {
    role: 'agent',
    streamIdParity: 'even',
    // A shared agent's session says its operator id, so that the CLI can ask the operator about it (its split queues).
    info: { pid: process.pid, node: process.version, ...(options.id === 'direct' ? {} : { session: options.id }) },
  });
  const sendNotice = (notice: IncomingNotice): void => {
    if (link.closed) return;
    try {
      link.send({ type: 'event', event: { kind: 'notice', ...notice } });
    } catch {
      // Not past the handshake, or the link is going down: the session will not read it anyway.
    }
  };
  let guard = options.policies === undefined || options.policies.length === 0 ? SessionGuard.NONE : new SessionGuard(options.policies);
  const names = new ResolvedNames();
  const noticed = new Set<string>();
  /** Tells the user (the CLI prints it) what a policy refused, once per policy, rule and thing refused. */
  const noticeRefusal = (refusal: Refusal, what: string): void => {
    const key = `${refusal.policy}\0${refusal.rule}\0${what}`;
    if (noticed.has(key) || noticed.size >= MAX_NOTICES) return;
    noticed.add(key);
    sendNotice({ code: POLICY_BLOCKED, message: `policy ${refusal.policy} refused ${what} (${refusal.rule})`, hint: POLICY_HINT });
  };
  /**
   * Why the session may not reach `address:port`, as the connect(2) failure the app meets. The host names the rules
   * see are the one asked for; an address dialled as such goes by the names it was resolved from in this session.
   */
  const outgoingRefusal = (address: string, port: number, asked: string | undefined): RemoteFailure | null => {
    const refusal = guard.outgoingRefusal({ address, port, names: asked === undefined ? names.namesOf(address) : [asked] });
    if (refusal === null) return null;
    noticeRefusal(refusal, `a connection to ${asked ?? address}:${port}`);
    return { code: 'EACCES', errno: -osConstants.errno.EACCES, syscall: 'connect', message: `connect EACCES ${address}:${port}` };
  };
  const files =
    target.filesRoot === null
      ? null
      : filesFor(target, options.files, (access, paths, syscall, targetPath) => {
          const refusal = guard.fileRefusal(access, paths);
          if (refusal === null) return null;
          noticeRefusal(refusal, `${access === 'write' ? 'a change to' : 'a read of'} ${targetPath}`);
          return targetError(refusal.code, syscall, targetPath, refusal.code === 'EACCES' ? `permission denied by policy ${refusal.policy}` : undefined);
        });
  const udp = new UdpTwins(
    (datagram) => link.send({ type: 'udp', ...datagram }),
    (peer) => outgoingRefusal(peer.address, peer.port, undefined),
  );
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
    notify: sendNotice,
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
    setPolicies(policies) {
      guard = policies.length === 0 ? SessionGuard.NONE : new SessionGuard(policies);
      noticed.clear();
      log.info({ policies: guard.names }, 'policies changed');
    },
    admits: (request) => guard.admits(request),
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

  /** Resolves with the target's resolver, remembering which names stand for which addresses (hostname rules). */
  const resolveNoting = async (host: string, family: 0 | 4 | 6): Promise<Result<GetAddrInfoResult>> => {
    const answer = await target.resolver.getaddrinfo(host, family);
    if (answer.ok) names.remember(host, answer.value.addresses.map((entry) => entry.address));
    return answer;
  };

  /** The target's environment, less what the policies hold back; the user is told what was held back and why. */
  const environment = async (): Promise<Result<EnvGetResult>> => {
    const overrides = options.env ?? {};
    const blocked = guard.blocked('env');
    if (blocked !== null) {
      noticeRefusal(blocked, 'the target\'s environment: the process runs with this machine\'s own');
      return { ok: true, value: { env: target.pid === null ? null : { ...overrides } } };
    }
    const answer = await readTargetEnv(target.pid);
    if (!answer.ok || answer.value.env === null) return answer;
    const { env, excluded } = guard.filterEnv(answer.value.env);
    const byRule = new Map<string, { refusal: Refusal; names: string[] }>();
    for (const { name, refusal } of excluded) {
      const key = `${refusal.policy}\0${refusal.rule}`;
      const entry = byRule.get(key) ?? { refusal, names: [] };
      entry.names.push(name);
      byRule.set(key, entry);
    }
    for (const { refusal, names: held } of byRule.values()) noticeRefusal(refusal, `the target's ${held.sort().join(', ')}`);
    return { ok: true, value: { env: { ...env, ...overrides } } };
  };

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
        resolve: (host) => resolveNoting(host, 0),
        acceptStream: (id) => link.acceptStream(id),
        refuse: (address, port) => outgoingRefusal(address, port, isIP(request.host) === 0 ? request.host : undefined),
      }),
    'dns.getaddrinfo': (request) => resolveNoting(request.host, request.family),
    'dns.query': async (request) => {
      const answer = await target.resolver.query(request.name, request.rrtype, request.ttl);
      if (answer.ok && (request.rrtype === 'A' || request.rrtype === 'AAAA')) names.remember(request.name, addressesOf(answer.value.records));
      return answer;
    },
    'dns.reverse': (request) => target.resolver.reverse(request.address),
    'env.get': () => environment(),
    'incoming.subscribe': (request) => {
      const refusal = guard.subscribeRefusal(request, filterApplies(request));
      if (refusal !== null) return { ok: false, error: refusal };
      const overrideRefusal = guard.overrideRefusal(request.port);
      return target.incoming.subscribe(session, request, overrideRefusal === undefined ? {} : { overrideRefusal });
    },
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

function filesFor(target: SharedTarget, asked: 'off' | 'read' | 'write', refuse: TargetFilesOptions['refuse']): TargetFiles | null {
  const access = target.filesFor(asked);
  if (access === 'off' || target.filesRoot === null) return null;
  return new TargetFiles(target.filesRoot, { writable: access === 'write', refuse });
}

/** Whether a subscription's HTTP filter applies to its port (else a steal takes the whole port). */
function filterApplies(request: AgentSubscribeRequest): boolean {
  const { filter } = request;
  if (request.mode !== 'steal' || filter === null) return false;
  const set = filter.header_filter ?? filter.path_filter ?? filter.method_filter ?? filter.all_of ?? filter.any_of;
  return set !== undefined && (filter.ports?.includes(request.port) ?? true);
}

/** The addresses among an A or AAAA query's records. */
function addressesOf(records: unknown): string[] {
  if (!Array.isArray(records)) return [];
  return records.flatMap((record: unknown) => (typeof record === 'string' ? [record] : typeof (record as { address?: unknown })?.address === 'string' ? [(record as { address: string }).address] : []));
}
