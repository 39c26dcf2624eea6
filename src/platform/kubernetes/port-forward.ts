// One Kubernetes port-forward stream (a websocket through the API server) to the agent's 127.0.0.1 port, with
// the agent's challenge answered. What comes out is a plain byte stream for the protocol link.
//
// The agent may not listen yet when its container has just started: a refused forward is retried until the
// deadline. Bytes are not read-ahead beyond the handshake: whatever follows it is handed on untouched.

import { PortForward, type KubeConfig } from '@kubernetes/client-node';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { AgentStartError, KubeConfigError, KubeForbiddenError } from '../../core/errors.js';
import { AGENT_AUTH_MAGIC, AGENT_NONCE_BYTES, AUTH_ACCEPTED, signNonce } from '../../protocol/agent-auth.js';

export interface AgentStreamTarget {
  namespace: string;
  pod: string;
  port: number;
  /** The session's private key, to sign the agent's nonce. */
  privateKey: string;
}

export interface AgentStream {
  readable: Readable;
  writable: Writable;
  /** Resolves when the websocket closes, with why. */
  closed: Promise<string>;
  close(): void;
}

interface WebSocketLike {
  close(): void;
  once(event: 'close', listener: (code: number, reason: Buffer) => void): unknown;
  once(event: 'error', listener: (error: Error) => void): unknown;
  readyState: number;
}

export async function openAgentStream(config: KubeConfig, target: AgentStreamTarget, options: { deadline: number; retryMs?: number }): Promise<AgentStream> {
  let lastFailure = '';
  for (let attempt = 1; ; attempt++) {
    try {
      return await attemptOnce(config, target, Math.max(1000, Math.min(10_000, options.deadline - Date.now())));
    } catch (error) {
      // A refused upgrade: retrying cannot help (client-node rejects with the websocket's ErrorEvent, not an Error).
      const message = (error as { message?: string })?.message ?? String(error);
      const refused = /Unexpected server response: (401|403|404)/.exec(message);
      if (refused !== null) throw upgradeRefused(Number(refused[1]), target);
      lastFailure = message;
      if (error instanceof AgentStartError || Date.now() + (options.retryMs ?? 500) >= options.deadline) {
        throw new AgentStartError(`Could not reach the agent through a port-forward to pod/${target.pod} port ${target.port} (${attempt} attempts): ${lastFailure}`, {
          hint: 'The agent may have failed to start: its logs say why (`kubectl logs` of the agent container or pod).',
        });
      }
      await new Promise((resolve) => setTimeout(resolve, options.retryMs ?? 500));
    }
  }
}

function upgradeRefused(status: number, target: AgentStreamTarget): Error {
  if (status === 404) return new AgentStartError(`The API server has no pod/${target.pod} in namespace ${target.namespace} to port-forward to (404).`);
  if (status === 401) return new KubeConfigError('The cluster did not accept your credentials for the port-forward (401).');
  return new KubeForbiddenError(`missing permission: create pods/portforward in namespace ${target.namespace} (the port-forward to pod/${target.pod} was refused: 403).`, {
    hint: `Check it with \`kubectl auth can-i create pods --subresource=portforward -n ${target.namespace}\` (before Kubernetes 1.35 the verb checked is get).`,
  });
}

async function attemptOnce(config: KubeConfig, target: AgentStreamTarget, timeoutMs: number): Promise<AgentStream> {
  const fromAgent = new PassThrough();
  const errors = new PassThrough();
  const toAgent = new PassThrough();
  const socket = (await new PortForward(config).portForward(target.namespace, target.pod, [target.port], fromAgent, errors, toAgent)) as unknown as WebSocketLike;
  const closed = new Promise<string>((resolve) => {
    socket.once('close', (code, reason) => resolve(`the port-forward closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`));
    socket.once('error', (error) => resolve(`the port-forward failed: ${error.message}`));
  });
  try {
    const accepted = await handshake(fromAgent, toAgent, errors, closed, target.privateKey, timeoutMs);
    // Whatever came after the accept byte belongs to the link.
    if (accepted.length > 0) fromAgent.unshift(accepted);
  } catch (error) {
    socket.close();
    throw error;
  }
  // The ws handler writes into the PassThrough without backpressure; the protocol's credit bounds what is in flight.
  void closed.then(() => fromAgent.end());
  return { readable: fromAgent, writable: toAgent, closed, close: () => socket.close() };
}

async function handshake(fromAgent: Readable, toAgent: Writable, errors: Readable, closed: Promise<string>, privateKey: string, timeoutMs: number): Promise<Buffer> {
  let buffered = Buffer.alloc(0);
  let step: 'nonce' | 'accept' = 'nonce';
  return new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`the agent did not answer within ${timeoutMs} ms`)), timeoutMs);
    const onError = (chunk: Buffer) => finish(new Error(chunk.toString().trim()));
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (step === 'nonce') {
        const headerBytes = AGENT_AUTH_MAGIC.length + AGENT_NONCE_BYTES;
        if (buffered.length < headerBytes) return;
        if (!buffered.subarray(0, AGENT_AUTH_MAGIC.length).equals(AGENT_AUTH_MAGIC)) {
          finish(new AgentStartError('The port answered with something that is not a remocal agent: another process listens on it.'));
          return;
        }
        toAgent.write(signNonce(privateKey, buffered.subarray(AGENT_AUTH_MAGIC.length, headerBytes)));
        buffered = buffered.subarray(headerBytes);
        step = 'accept';
      }
      if (buffered.length < 1) return;
      if (buffered[0] !== AUTH_ACCEPTED) {
        finish(new AgentStartError('The agent answered the proof with something other than its accept byte.'));
        return;
      }
      finish(null, buffered.subarray(1));
    };
    let finished = false;
    const finish = (error: Error | null, rest?: Buffer) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      fromAgent.off('data', onData);
      errors.off('data', onError);
      // Paused again, so that nothing is lost before the link attaches its own reader.
      fromAgent.pause();
      if (error !== null) reject(error);
      else resolve(rest!);
    };
    fromAgent.on('data', onData);
    errors.on('data', onError);
    // Closed after the proof: the agent refused it (a key from another session); retrying cannot help.
    void closed.then((reason) =>
      finish(step === 'accept' ? new AgentStartError(`The agent refused this session's key: it belongs to another session (${reason}).`) : new Error(reason)),
    );
  });
}
