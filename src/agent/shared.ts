// The agent shared by many sessions (behind the operator): a unix socket takes one connection per session,
// each opened with a preamble line that names it (protocol/shared-agent.ts), and the control link on the
// agent's stdio lets the operator list the sessions and end them. The agent ends when the control link closes:
// the operator let it go, or died.
//
// The socket lives in a directory only root may enter (the operator's state dir), so whoever connects is the
// operator: the session's user was authenticated there, and is named in the preamble.

import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { Link } from '../protocol/link.js';
import { serveRequests } from '../protocol/rpc.js';
import {
  MAX_PREAMBLE_BYTES,
  parsePreamble,
  type AgentToOperator,
  type ControlRequest,
  type ControlResults,
  type OperatorToAgent,
  type SessionPreamble,
} from '../protocol/shared-agent.js';
import { serveSession, type AgentSession } from './session.js';
import type { SharedTarget } from './target.js';

const PREAMBLE_TIMEOUT_MS = 5000;

export interface SharedAgentOptions {
  /** Where sessions connect. */
  socketPath: string;
  /** The control link's transport: the agent's stdio. */
  control: { readable: Readable; writable: Writable };
  handshakeTimeoutMs: number;
}

/** Serves until the control link closes; resolves with the reason. */
export async function serveSharedTarget(target: SharedTarget, options: SharedAgentOptions): Promise<string> {
  const { log } = target;
  const sessions = new Map<string, AgentSession>();
  const control = new Link<AgentToOperator, OperatorToAgent>(options.control, {
    role: 'agent',
    streamIdParity: 'even',
    info: { pid: process.pid, node: process.version },
  });
  const controlClosed = new Promise<string>((resolve) =>
    control.once('close', (error?: Error) => resolve(error ? `control link failed: ${error.message}` : 'the operator closed the control link')),
  );
  const report = (message: AgentToOperator): void => {
    if (!control.closed) control.send(message);
  };

  serveRequests<ControlRequest, ControlResults>(control, {
    'agent.sessions': () => ({ ok: true, value: { sessions: [...sessions.values()].map((session) => session.stats()) } }),
    'session.end': (request) => {
      const session = sessions.get(request.session);
      session?.end({ kind: 'session_closed', code: request.code, reason: request.reason, ...(request.hint === undefined ? {} : { hint: request.hint }) });
      return { ok: true, value: { found: session !== undefined } };
    },
  });

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

  const server = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    void readPreamble(socket).then((result) => {
      if (typeof result === 'string') {
        log.warn({ reason: result }, 'a session connection without a valid preamble; dropped');
        socket.destroy();
        return;
      }
      accept(socket, result);
    });
  });
  await listen(server, options.socketPath);
  await control.handshake(options.handshakeTimeoutMs);
  log.info({ target: target.pid ?? target.netns, socket: options.socketPath }, 'shared agent ready');

  const stopWatching = target.watch((reason) => {
    log.warn({ reason }, 'target gone');
    for (const session of sessions.values()) session.end({ kind: 'target_gone', reason });
    // The sessions were told; the operator learns it from the agent's exit, after their events left.
    setTimeout(() => control.close(), 200).unref();
  });

  const reason = await controlClosed;
  stopWatching();
  server.close();
  rmSync(options.socketPath, { force: true });
  for (const session of sessions.values()) session.end({ kind: 'session_closed', code: 'REMOCAL_AGENT_LOST', reason: 'the operator stopped this target\'s agent' });
  await Promise.all([...sessions.values()].map((session) => session.closed));
  return reason;
}

function listen(server: Server, path: string): Promise<void> {
  // A socket file left by an agent that was killed would make listen fail with EADDRINUSE.
  rmSync(path, { force: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      chmodSync(path, 0o600);
      resolve();
    });
  });
}

/** Reads the first line; what follows it (the session's hello) is put back for the link. */
function readPreamble(socket: Socket): Promise<SessionPreamble | string> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const done = (result: SessionPreamble | string): void => {
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
