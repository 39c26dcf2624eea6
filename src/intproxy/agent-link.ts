// The intproxy's one link to the agent: a child process spoken to over its stdio. For the local platform it is
// the agent itself (under nsenter); for Kubernetes, a kube-link process that carries the bytes over a
// port-forward to the agent in the cluster. Its stderr goes to the session log. When the agent goes away,
// everything that waits on it fails with an error that says how it went away. Over a network the link can die
// silently, so such links are pinged: a missed answer ends the session within seconds, not at the next request.

import type { ChildProcess } from 'node:child_process';
import { AgentLostError, AgentStartError, ProtocolError, TargetGoneError, type RemocalError } from '../core/errors.js';
import { deserializeError } from '../protocol/wire-error.js';
import { startChild } from '../core/child.js';
import type { Logger } from '../core/log.js';
import { SESSION_ENDED_EXIT_CODE, SESSION_ENDED_PREFIX, type AgentLaunch, type SessionEnded } from '../protocol/contracts.js';
import { Link } from '../protocol/link.js';
import type { AgentEvent, AgentRequest, AgentResults, AgentToIntproxy, Hello, IntproxyToAgent } from '../protocol/messages.js';
import { RpcClient } from '../protocol/rpc.js';

export interface AgentConnection {
  link: Link<IntproxyToAgent, AgentToIntproxy>;
  rpc: RpcClient<AgentRequest, AgentResults>;
  hello: Hello;
  /** Resolves once, with the reason the session cannot go on. */
  lost: Promise<RemocalError>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  log: Logger;
  startupTimeoutMs: number;
  onStderr: (chunk: Buffer) => void;
  /** The agent's notices for the user. */
  onNotice?: (notice: Extract<AgentEvent, { kind: 'notice' }>) => void;
}

export async function connectAgent(launch: AgentLaunch, options: ConnectOptions): Promise<AgentConnection> {
  const { log } = options;
  // Not killed when the intproxy exits: an agent finishing the target's connections after the session (see
  // close() below) exits on its own, and any agent exits when its link closes.
  const child: ChildProcess = startChild(launch.command, launch.args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    log,
    keepOnExit: true,
    ...(launch.env === undefined ? {} : { env: { ...process.env, ...launch.env } }),
  });
  child.stderr!.on('data', options.onStderr);
  const stderrTail: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    stderrTail.push(chunk.toString());
    if (stderrTail.length > 20) stderrTail.shift();
  });

  const link = new Link<IntproxyToAgent, AgentToIntproxy>({ readable: child.stdout!, writable: child.stdin! }, {
    role: 'intproxy',
    streamIdParity: 'odd',
    info: { pid: process.pid },
  });

  let targetGone: string | null = null;
  // Behind the operator the session can be ended on the far side (killed, a limit reached): its words win.
  let sessionClosed: Extract<AgentEvent, { kind: 'session_closed' }> | null = null;
  link.on('message', (message: AgentToIntproxy) => {
    if (message.type === 'event') onEvent(message.event);
  });
  function onEvent(event: AgentEvent): void {
    if (event.kind === 'target_gone') targetGone = event.reason;
    else if (event.kind === 'session_closed') sessionClosed = event;
    else if (event.kind === 'notice') options.onNotice?.(event);
    else log.warn({ event }, 'agent warning');
  }

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
  });

  let closing = false;
  let unanswered: ((error: Error) => void) | undefined;
  const pingFailed = new Promise<Error>((resolve) => (unanswered = resolve));
  const lost = (async (): Promise<RemocalError> => {
    const linkClosed = new Promise<Error | undefined>((resolve) => link.once('close', resolve));
    const first = await Promise.race([
      exited.then((exit) => ({ exit })),
      linkClosed.then((error) => ({ linkError: error })),
      pingFailed.then((error) => ({ linkError: error })),
    ]);
    // The link and the process end together; wait briefly for the other, so the message names the real cause.
    const exit = 'exit' in first ? first.exit : await Promise.race([exited, delay(500).then(() => null)]);
    if (targetGone !== null) return new TargetGoneError(`The target ${launch.target} is gone: ${targetGone}.`);
    if (sessionClosed !== null) {
      const { code, reason, hint } = sessionClosed;
      return deserializeError({ code, message: `The session on ${launch.target} was closed: ${reason}.`, hint });
    }
    const endedLine = exit?.code === SESSION_ENDED_EXIT_CODE ? stderrTail.join('').trim().split('\n').pop() ?? '' : '';
    const ended = endedLine.startsWith(SESSION_ENDED_PREFIX) ? parseSessionEnded(endedLine.slice(SESSION_ENDED_PREFIX.length)) : null;
    if (ended !== null) {
      const message = `The session on ${launch.target} was ${ended.refused ? 'refused' : 'closed'}: ${ended.message.replace(/\.$/, '')}.`;
      return deserializeError({ code: ended.code, message, ...(ended.hint === undefined ? {} : { hint: ended.hint }) });
    }
    if (exit?.error) return new AgentStartError(`Could not start the agent (${launch.command}): ${exit.error.message}.`);
    const how = exit === null ? 'closed its link' : exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const tail = stderrTail.join('').trim().split('\n').slice(-3).join('\n');
    const linkError = 'linkError' in first ? first.linkError : undefined;
    return new AgentLostError(
      `The agent in ${launch.target} ${how}${linkError ? ` (${linkError.message})` : ''}.${tail && !closing ? `\nIts last words: ${tail}` : ''}`,
    );
  })();

  let hello: Hello;
  try {
    hello = await Promise.race([
      link.handshake(options.startupTimeoutMs),
      lost.then((error) => Promise.reject(error)),
    ]);
  } catch (error) {
    // A link that closed before its hello may be the far side refusing the session in its own terms (operator-link's
    // exit, see SESSION_ENDED_EXIT_CODE): that refusal is the error to show. The exit follows the close closely.
    const refusal = error instanceof ProtocolError ? await Promise.race([lost, delay(1000).then(() => null)]) : null;
    child.kill('SIGKILL');
    if (refusal !== null && !(refusal instanceof AgentLostError) && !(refusal instanceof AgentStartError)) throw refusal;
    if (error instanceof ProtocolError || error instanceof AgentLostError || error instanceof AgentStartError) {
      const message = (error as Error).message;
      const tail = stderrTail.join('').trim().split('\n').slice(-3).join('\n');
      const words = tail !== '' && !message.includes(tail) ? `\nIts last words: ${tail}` : '';
      throw new AgentStartError(`The agent for ${launch.target} did not start: ${message}${words}`, { cause: error });
    }
    throw error;
  }
  log.info({ agent: hello.info }, 'agent connected');

  const rpc = new RpcClient<AgentRequest, AgentResults>(link);
  if (launch.pingIntervalMs !== undefined) {
    const interval = launch.pingIntervalMs;
    const timer = setInterval(() => {
      // Answered within three intervals, as the agent's own idle limit: a pong can queue behind bulk stream data on a
      // slow port-forward, and that is no reason to end a session.
      rpc.ping(interval * 3).catch(() => {
        if (closing) return;
        clearInterval(timer);
        unanswered?.(new Error(`no answer to a ping within ${(interval * 3) / 1000} s: the link to the agent dropped`));
        child.kill('SIGKILL');
      });
    }, interval);
    timer.unref();
    void lost.then(() => clearInterval(timer));
  }
  return {
    link,
    rpc,
    hello,
    lost,
    async close() {
      closing = true;
      // The agent removes its rules before it answers; if it still finishes connections it accepted for the
      // target, it is left to do so (bounded on its side) rather than killed.
      const answer = await rpc.request({ op: 'session.close' }, 3000).catch(() => null);
      link.close();
      if (answer?.ok && answer.value.draining > 0) {
        log.info({ connections: answer.value.draining }, 'agent finishes accepted connections on its own');
        child.unref();
        return;
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** operator-link's last word on a session the operator ended or refused, or null when it is not one. */
function parseSessionEnded(text: string): SessionEnded | null {
  try {
    const value = JSON.parse(text) as Partial<SessionEnded>;
    if (typeof value.code !== 'string' || typeof value.message !== 'string') return null;
    return { code: value.code, message: value.message, refused: value.refused === true, ...(typeof value.hint === 'string' ? { hint: value.hint } : {}) };
  } catch {
    return null;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
