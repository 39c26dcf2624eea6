// Incoming traffic: what a listen of the app becomes. The app always listens locally for real; this module
// decides on which local port (listenPorts, or a free one when the asked port is taken here), which port the app
// is told it got, and whether the target's port is subscribed to it. Subscriptions run in the background: the
// app's 'listening' never waits for the target, and a failure costs it the target's traffic, not its server.

import { isIP } from 'node:net';
import type { LayerSubscribeRequest } from '../../protocol/messages.js';
import { isUnspecifiedAddress, type Policy } from '../policy.js';
import type { Remote } from '../remote.js';
import { validPort } from '../validate.js';

/** A listen of the app, from the arguments of net.Server.prototype.listen. */
export type ListenRequest =
  | {
      kind: 'tcp';
      /** The port the app asked for (0: any). */
      port: number;
      /** The host it asked for, when it named one. */
      host: string | undefined;
      ipv6Only: boolean;
      /**
       * The same arguments with another port. Without the callback for a second attempt: Node registered it
       * as a 'listening' listener on the first.
       */
      withPort(port: number, keepCallback: boolean): unknown[];
    }
  /** Unix sockets and pipes, handles and file descriptors, and arguments Node rejects (it throws itself). */
  | { kind: 'untouched' };

/**
 * Reads listen's arguments the way Node's Server.prototype.listen does (lib/net.js): listen(), listen(cb),
 * listen(port[, host][, backlog][, cb]) with the port a number or a numeric string, listen(path…),
 * listen(handle…) and listen(options[, cb]).
 */
export function parseListenArguments(args: unknown[]): ListenRequest {
  const first = args[0];
  if (args.length === 0 || typeof first === 'function') {
    return tcp(0, undefined, false, (port, keep) => [port, ...args.filter((arg) => keep || typeof arg !== 'function')]);
  }
  if (first !== null && typeof first === 'object') {
    const options = first as Record<string, unknown>;
    if (options._handle || options.handle) return { kind: 'untouched' };
    if (typeof options.fd === 'number' && options.fd >= 0) return { kind: 'untouched' };
    // Node binds an arbitrary port for { port: undefined } and { port: null }, but not for {} (it throws).
    const unset = options.port === null || (options.port === undefined && 'port' in options);
    const port = unset ? 0 : validPort(options.port);
    if (port === null) return { kind: 'untouched' };
    const host = typeof options.host === 'string' && options.host !== '' ? options.host : undefined;
    return tcp(port, host, options.ipv6Only === true, (newPort, keep) => [
      { ...options, port: newPort },
      ...args.slice(1).filter((arg) => keep || typeof arg !== 'function'),
    ]);
  }
  // A string that is not a number is a path (Node's isPipeName).
  if (typeof first === 'string' && !(Number(first) >= 0)) return { kind: 'untouched' };
  const port = first === null || first === undefined ? 0 : validPort(first);
  if (port === null) return { kind: 'untouched' };
  const host = typeof args[1] === 'string' && args[1] !== '' ? args[1] : undefined;
  return tcp(port, host, false, (newPort, keep) => [newPort, ...args.slice(1).filter((arg) => keep || typeof arg !== 'function')]);
}

function tcp(port: number, host: string | undefined, ipv6Only: boolean, withPort: (port: number, keep: boolean) => unknown[]): ListenRequest {
  return { kind: 'tcp', port, host, ipv6Only, withPort };
}

/** What the server really got, once it listens. */
export interface BoundListen {
  /** The port the app asked for (0: any). */
  asked: number;
  /** server.address() as Node reports it. */
  address: string;
  port: number;
  ipv6Only: boolean;
}

/** A subscription of one listen; close() ends it, now or as soon as the target has answered. */
export interface IncomingSubscription {
  close(): void;
}

export class IncomingOps {
  constructor(
    private readonly remote: Remote,
    private readonly policy: Policy,
    /** One line for the user, on stderr whatever the log level: the app lost the target's traffic. */
    private readonly notify: (line: string) => void,
    private readonly debug: (message: string) => void = () => {},
  ) {}

  parse(args: unknown[]): ListenRequest {
    return parseListenArguments(args);
  }

  /** The local port to bind first. */
  localPort(request: Extract<ListenRequest, { kind: 'tcp' }>): number {
    return this.policy.listenPort(request.port);
  }

  /**
   * After a failed bind of `tried`: the port to bind instead, or null to let the app see the error. A port taken
   * here (the app runs twice, or the developer's own copy of a sidecar holds it) must not stop the app: its
   * traffic comes from the target's port anyway, so any free local port does.
   */
  retryPort(error: unknown, tried: number): number | null {
    const failure = error as { code?: unknown; syscall?: unknown; port?: unknown } | null;
    if (tried === 0 || failure?.code !== 'EADDRINUSE' || failure.syscall !== 'listen') return null;
    return 0;
  }

  /** The port server.address() reports: the one the app asked for, or null when the real one is that. */
  reportedPort(bound: BoundListen): number | null {
    return bound.asked !== 0 && bound.asked !== bound.port ? bound.asked : null;
  }

  /** Starts the subscription of a listen, when the policy wants one. Port 0 is subscribed as the port it got. */
  subscribe(bound: BoundListen): IncomingSubscription | null {
    const asked = bound.asked === 0 ? bound.port : bound.asked;
    const remotePort = this.policy.subscribePort({ port: asked, address: bound.address });
    if (remotePort === null) {
      this.debug(`listen ${bound.address}:${bound.port}: local only`);
      return null;
    }
    const request = { remotePort, localPort: bound.port, localAddress: connectableAddress(bound.address, bound.ipv6Only) };
    this.debug(`listen ${bound.address}:${bound.port}: subscribing the target's port ${remotePort}`);
    return new Subscription(this.remote, request, this.notify, this.debug);
  }
}

/**
 * Where the intproxy connects to reach the server. A server on every interface is reached on loopback; one
 * bound to :: with ipv6Only takes no IPv4, so on ::1.
 */
export function connectableAddress(address: string, ipv6Only: boolean): string {
  if (address === '' || isUnspecifiedAddress(address)) return ipv6Only && isIP(address) === 6 ? '::1' : '127.0.0.1';
  return address.replace(/%.*$/, '');
}

class Subscription implements IncomingSubscription {
  #closed = false;
  #id: number | null = null;

  constructor(
    private readonly remote: Remote,
    private readonly request: Omit<LayerSubscribeRequest, 'op'>,
    private readonly notify: (line: string) => void,
    private readonly debug: (message: string) => void,
  ) {
    this.remote.subscribe(request).then(
      (answer) => {
        if (!answer.ok) return this.failed(answer.error.message || answer.error.code);
        this.#id = answer.value.subscription;
        this.debug(`subscribed the target's port ${request.remotePort} (${answer.value.mode}), subscription ${this.#id}`);
        // The server closed while the target was answering.
        if (this.#closed) this.release();
      },
      (error: unknown) => this.failed((error as Error)?.message ?? String(error)),
    );
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#id !== null) this.release();
  }

  private failed(message: string): void {
    // A server already closed has nothing to lose; telling the user would only alarm them.
    if (this.#closed) return;
    this.notify(`remocal: could not subscribe to the target's port ${this.request.remotePort}: ${message}`);
  }

  private release(): void {
    const id = this.#id!;
    this.#id = null;
    this.remote.unsubscribe(id).then(
      (answer) => {
        if (!answer.ok) this.debug(`unsubscribe ${id}: ${answer.error.message}`);
      },
      (error: unknown) => this.debug(`unsubscribe ${id}: ${(error as Error)?.message ?? String(error)}`),
    );
  }
}
