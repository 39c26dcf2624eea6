// The agent shared by many sessions (behind the operator): a socket takes one connection per session, each
// opened with a preamble line that names it (protocol/shared-agent.ts), and the control link lets the operator
// list the sessions and end them. The agent ends when the control link closes: the operator let it go, or died.
//
// Two ways to be reached:
// - a unix socket in a directory only root may enter (the operator's state dir), with the control link on the
//   agent's stdio: whoever connects is the operator, which authenticated the session's user and names it;
// - in a cluster, a TCP port in the target's network namespace, which anything in the pod can reach: every
//   connection first proves it holds the private key of the operator's key for this agent (listen.ts), and the
//   first one whose preamble says `control` is the control link. The operator pings it; one that falls silent
//   is dropped, so an operator that vanished without closing its port-forward still ends the agent.

import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { AUTH_ACCEPTED } from '../protocol/agent-auth.js';
import { Link } from '../protocol/link.js';
import { serveRequests } from '../protocol/rpc.js';
import {
  MAX_PREAMBLE_BYTES,
  parsePolicies,
  parsePreamble,
  type AgentToOperator,
  type ControlRequest,
  type ControlResults,
  type OperatorToAgent,
  type Preamble,
  type SessionPreamble,
} from '../protocol/shared-agent.js';
import { authenticate, DEFAULT_AUTH_TIMEOUT_MS, watchIdle, type ListenAddress } from './listen.js';
import { serveSession, type AgentSession } from './session.js';
import type { SharedTarget } from './target.js';

const PREAMBLE_TIMEOUT_MS = 5000;

export type SessionListener =
  /** Sessions on a unix socket, the control link on the agent's stdio. */
  | { kind: 'unix'; path: string; control: { readable: Readable; writable: Writable } }
  /** Sessions and the control link on a TCP port, each connection authenticated with `publicKey`. */
  | {
      kind: 'tcp';
      address: ListenAddress;
      publicKey: string;
      /** Without a control link this long after start, the agent gives up: its operator is gone. */
      ttlMs: number;
      /** A control link with nothing arriving for this long is dropped (the operator pings more often). */
      idleMs: number;
      onListening?: (address: ListenAddress) => void;
    };

export interface SharedAgentOptions {
  listener: SessionListener;
  handshakeTimeoutMs: number;
}

type Transport = { readable: Readable; writable: Writable };

/** Serves until the control link closes; resolves with the reason. */
export async function serveSharedTarget(target: SharedTarget, options: SharedAgentOptions): Promise<string> {
  const { log } = target;
  const { listener } = options;
  const sessions = new Map<string, AgentSession>();
  let control: Link<AgentToOperator, OperatorToAgent> | undefined;
  const report = (message: AgentToOperator): void => {
    if (control !== undefined && !control.closed) control.send(message);
  };

  const accept = (socket: Socket, preamble: SessionPreamble): void => {
    if (sessions.has(preamble.session)) {
      log.warn({ session: preamble.session }, 'a second connection for a session that is already connected; refused');
      socket.destroy();
      return;
    }
    const session = serveSession(target, {
      readable: socket,
      writable: socket,
      id: preamble.session,
      owner: preamble.owner,
      files: preamble.files,
      policies: preamble.policies ?? [],
      env: preamble.env ?? {},
      closes: 'session',
      handshakeTimeoutMs: options.handshakeTimeoutMs,
    });
    sessions.set(preamble.session, session);
    session.ready.then(
      () => report({ type: 'session', session: preamble.session, state: 'ready' }),
      () => undefined,
    );
    void session.closed.then((reason) => {
      sessions.delete(preamble.session);
      socket.destroy();
      log.info({ session: preamble.session, reason }, 'session ended');
      report({ type: 'session', session: preamble.session, state: 'closed', reason });
    });
  };

  // Set while a TCP agent waits for its control link; the first connection that asks for it gets it.
  let offerControl: ((socket: Socket) => void) | undefined;
  const server = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    void (async (): Promise<string | null> => {
      if (listener.kind === 'tcp') {
        const failure = await authenticate(socket, listener.publicKey, DEFAULT_AUTH_TIMEOUT_MS);
        if (failure !== null) return `it failed to authenticate: ${failure}`;
        socket.write(Buffer.of(AUTH_ACCEPTED));
      }
      const preamble = await readPreamble(socket);
      if (typeof preamble === 'string') return `no valid preamble: ${preamble}`;
      if (preamble.kind === 'session') {
        accept(socket, preamble);
        return null;
      }
      if (offerControl === undefined) return 'it asked for the control link, which this agent has already';
      offerControl(socket);
      offerControl = undefined;
      return null;
    })().then((refused) => {
      if (refused === null) return;
      log.warn({ peer: socket.remoteAddress ?? 'unix socket', reason: refused }, 'a connection was refused');
      socket.destroy();
    });
  });

  let transport: Transport | null;
  if (listener.kind === 'unix') {
    // A socket file left by an agent that was killed would make listen fail with EADDRINUSE.
    rmSync(listener.path, { force: true });
    await listenOn(server, listener.path);
    chmodSync(listener.path, 0o600);
    transport = listener.control;
  } else {
    const chosen = new Promise<Socket | null>((resolve) => {
      const timer = setTimeout(() => {
        offerControl = undefined;
        resolve(null);
      }, listener.ttlMs);
      offerControl = (socket) => {
        clearTimeout(timer);
        resolve(socket);
      };
    });
    await listenOn(server, listener.address);
    const bound = server.address();
    listener.onListening?.({ host: listener.address.host, port: typeof bound === 'object' && bound !== null ? bound.port : listener.address.port });
    const socket = await chosen;
    transport = socket === null ? null : { readable: socket, writable: socket };
    if (socket !== null) {
      watchIdle(socket, listener.idleMs, () => {
        log.warn({ idleSeconds: listener.idleMs / 1000 }, 'nothing arrived on the control link for too long; dropping it');
        socket.destroy();
      });
    }
  }
  if (transport === null) {
    server.close();
    return `no control link within ${listener.kind === 'tcp' ? listener.ttlMs / 1000 : 0} s: its operator is gone`;
  }

  const link = new Link<AgentToOperator, OperatorToAgent>(transport, {
    role: 'agent',
    streamIdParity: 'even',
    info: { pid: process.pid, node: process.version },
  });
  control = link;
  const controlClosed = new Promise<string>((resolve) =>
    link.once('close', (error?: Error) => resolve(error ? `control link failed: ${error.message}` : 'the operator closed the control link')),
  );
  serveRequests<ControlRequest, ControlResults>(link, {
    'agent.sessions': () => ({ ok: true, value: { sessions: [...sessions.values()].map((session) => session.stats()) } }),
    'session.end': (request) => {
      const session = sessions.get(request.session);
      session?.end({ kind: 'session_closed', code: request.code, reason: request.reason, ...(request.hint === undefined ? {} : { hint: request.hint }) });
      return { ok: true, value: { found: session !== undefined } };
    },
    'session.policies': (request) => {
      const policies = parsePolicies(request.policies);
      if (typeof policies === 'string') return { ok: false, error: { code: 'EINVAL', message: policies } };
      const session = sessions.get(request.session);
      session?.setPolicies(policies);
      return { ok: true, value: { found: session !== undefined } };
    },
  });
  await link.handshake(options.handshakeTimeoutMs);
  log.info({ target: target.pid ?? target.netns, listening: listener.kind === 'unix' ? listener.path : listener.address }, 'shared agent ready');

  const stopWatching = target.watch((reason) => {
    log.warn({ reason }, 'target gone');
    for (const session of sessions.values()) session.end({ kind: 'target_gone', reason });
    // The sessions were told; the operator learns it from the agent's exit, after their events left.
    setTimeout(() => link.close(), 200).unref();
  });

  const reason = await controlClosed;
  stopWatching();
  server.close();
  if (listener.kind === 'unix') rmSync(listener.path, { force: true });
  for (const session of sessions.values()) session.end({ kind: 'session_closed', code: 'REMOCAL_AGENT_LOST', reason: 'the operator stopped this target\'s agent' });
  await Promise.all([...sessions.values()].map((session) => session.closed));
  return reason;
}

function listenOn(server: Server, where: string | ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (typeof where === 'string') server.listen(where, done);
    else server.listen({ host: where.host, port: where.port }, done);
  });
}

/** Reads the first line; what follows it (the session's hello) is put back for the link. */
function readPreamble(socket: Socket): Promise<Preamble | string> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const done = (result: Preamble | string): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('close', onClose);
      resolve(result);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        buffered = Buffer.concat([buffered, chunk]);
        const newline = buffered.indexOf(0x0a);
        // A whole line can arrive in one read: its length is checked as well as that of a line still coming.
        if ((newline === -1 ? buffered.length : newline) > MAX_PREAMBLE_BYTES) {
          done(`the preamble is longer than ${MAX_PREAMBLE_BYTES} bytes`);
          return;
        }
        if (newline !== -1) {
          const rest = buffered.subarray(newline + 1);
          if (rest.length > 0) socket.unshift(rest);
          done(parsePreamble(buffered.subarray(0, newline).toString('utf8')));
          return;
        }
      }
    };
    const onClose = (): void => done('closed before the preamble');
    const timer = setTimeout(() => done(`no preamble within ${PREAMBLE_TIMEOUT_MS} ms`), PREAMBLE_TIMEOUT_MS);
    socket.on('readable', onReadable);
    socket.once('close', onClose);
  });
}
