// Incoming traffic, the intproxy's part. A layer subscribes the target's port to the app's real local port;
// the intproxy asks the agent (with the session's mode and HTTP filter), remembers which local port each
// agent subscription feeds, and connects every stream the agent announces to that port.
//
//   steal, connection or request: both directions are spliced; the app answers.
//   mirror: the app gets a copy of what the client sent; what it answers is read and dropped (the target
//           answers the client). A copy must never slow the target down, so nothing here pushes back on it.
//
// When the app is not listening any more, the stream is reset: for a filtered steal the agent then answers
// the client with a 502 that says so; other traffic is not affected.
//
// A subscription refused because another session holds the port (or steals with the same filter) ends the session
// unless on_concurrent_steal is `continue`: two developers must never both believe they get the port's traffic. A
// policy's refusal always ends it.

import { connect, type Socket } from 'node:net';
import { FilterConflictError, PolicyBlockedError, PortHeldError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { splice } from '../core/splice.js';
import { LINK_LOST_CODE, type IncomingSettings, type IntproxyReport } from '../protocol/contracts.js';
import type { IncomingEvent, LayerSubscribeRequest, Result, SubscribeResult, UnsubscribeResult } from '../protocol/messages.js';
import type { AgentConnection } from './agent-link.js';

interface Subscription {
  remotePort: number;
  localPort: number;
  localAddress: string;
  /** The layer connection that asked: its subscriptions end with it. */
  owner: object;
}

export class IncomingRouter {
  private readonly subscriptions = new Map<number, Subscription>();

  constructor(
    private readonly agent: AgentConnection,
    private readonly settings: IncomingSettings,
    private readonly log: Logger,
    private readonly report: (message: IntproxyReport) => void,
    /** Words for messages: "pid/4242". */
    private readonly target: string,
  ) {
    agent.link.on('message', (message) => {
      if (message.type === 'incoming') this.onIncoming(message);
    });
  }

  async subscribe(request: LayerSubscribeRequest, owner: object): Promise<Result<SubscribeResult>> {
    if (this.settings.mode === 'off') {
      return { ok: false, error: { code: 'REMOCAL_FEATURE_UNAVAILABLE', message: 'incoming traffic is off (feature.network.incoming.mode)' } };
    }
    const answer = await this.agent.rpc.request({
      op: 'incoming.subscribe',
      port: request.remotePort,
      mode: this.settings.mode,
      filter: this.settings.mode === 'steal' ? this.settings.filter : null,
      ...(this.settings.onConcurrentSteal === undefined ? {} : { onConcurrentSteal: this.settings.onConcurrentSteal }),
    });
    if (answer.ok) {
      this.subscriptions.set(answer.value.subscription, { remotePort: request.remotePort, localPort: request.localPort, localAddress: request.localAddress, owner });
      this.log.info({ port: request.remotePort, localPort: request.localPort, mode: answer.value.mode }, 'subscribed');
      const filtered = answer.value.mode === 'steal' && this.settings.filter !== null && (this.settings.filter.ports?.includes(request.remotePort) ?? true);
      const { displaced } = answer.value;
      this.report({ type: 'subscribed', port: request.remotePort, localPort: request.localPort, mode: answer.value.mode, filtered, ...(displaced === undefined ? {} : { displaced }) });
    } else if (this.endsSession(answer.error.code)) {
      const { code, message, hint } = answer.error;
      this.log.warn({ port: request.remotePort, code }, 'subscription refused: the session ends');
      this.report({ type: 'fatal', error: { code, message: `could not subscribe to port ${request.remotePort} of ${this.target}: ${message}`, hint } });
      // The layer is not answered: the CLI now stops the app and then this process, and prints the refusal whole as
      // the session's error; an answer would only race it, the layer printing a second, shorter account of its own.
      return new Promise<never>(() => undefined);
    } else {
      const { code, message, hint } = answer.error;
      this.report({ type: 'subscribe_failed', port: request.remotePort, code, message, ...(hint === undefined ? {} : { hint }) });
    }
    return answer;
  }

  private endsSession(code: string): boolean {
    if (code === PolicyBlockedError.code) return true;
    return (code === PortHeldError.code || code === FilterConflictError.code) && this.settings.onConcurrentSteal !== 'continue';
  }

  async unsubscribe(subscription: number): Promise<Result<UnsubscribeResult>> {
    if (!this.subscriptions.delete(subscription)) return { ok: true, value: {} };
    // The agent link may be closing with the session: the agent then releases every port itself.
    return this.agent.rpc.request({ op: 'incoming.unsubscribe', subscription }).catch((error: Error) => ({
      ok: false as const,
      error: { code: LINK_LOST_CODE, message: error.message },
    }));
  }

  /** A layer went away (its process exited): its ports are released in the target too. */
  releaseOwner(owner: object): void {
    for (const [id, subscription] of this.subscriptions) {
      if (subscription.owner === owner) void this.unsubscribe(id);
    }
  }

  private onIncoming(event: IncomingEvent): void {
    const stream = this.agent.link.acceptStream(event.stream);
    const subscription = this.subscriptions.get(event.subscription);
    if (subscription === undefined) {
      stream.destroy();
      return;
    }
    const socket: Socket = connect({ host: subscription.localAddress, port: subscription.localPort, allowHalfOpen: true });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      this.log.debug({ err: error, port: subscription.localPort }, 'local app unreachable');
      stream.destroy(Object.assign(new Error(`the local app did not answer on port ${subscription.localPort}: ${error.code ?? error.message}`), { code: 'ECONNREFUSED' }));
    });
    socket.once('connect', () => {
      if (event.kind === 'connection' && this.settings.mode === 'mirror') {
        socket.setNoDelay(true);
        stream.pipe(socket);
        // The app's answers to a mirrored connection go nowhere: the target answered the client already.
        socket.resume();
        socket.on('error', () => stream.destroy());
        stream.on('error', () => socket.destroy());
      } else {
        splice(socket, stream);
      }
    });
  }
}
