// The hooks on net.Server.prototype: listen, address and close. Every TCP server of Node listens through
// net.Server.prototype.listen: net.createServer, http, https, http2 (and tls servers beneath them), and the
// frameworks built on those (express, fastify, koa…).
//
// The server listens locally for real, on the port ops picks; the app's arguments are passed on as they came but
// for that port. A bind that fails with EADDRINUSE is retried on a free port before the app hears of it, by
// intercepting the 'error' Node emits for it (on the next tick, or after the host's lookup). Once the server
// listens, ops subscribes the target's port in the background and close() ends the subscription.
//
// Cluster workers are left alone: their listen asks the primary for a handle and never binds in the worker
// itself. The primary (itself a session process, with the layer) binds through this same hook for round-robin
// scheduling, so the port is subscribed there, once, for all the workers.

import cluster from 'node:cluster';
import net from 'node:net';
import type { LayerLog } from '../log.js';
import type { PatchRegistry } from '../patches.js';
import type { BoundListen, IncomingOps, IncomingSubscription, ListenRequest } from './ops.js';

type ListenFunction = (this: net.Server, ...args: unknown[]) => net.Server;
type TcpListen = Extract<ListenRequest, { kind: 'tcp' }>;

interface ServerInternals {
  _handle: unknown;
}

export interface IncomingHookContext {
  ops: IncomingOps;
  log: LayerLog;
}

export function defineIncomingHooks(registry: PatchRegistry, context: IncomingHookContext): void {
  const { ops } = context;
  /** The newest listen of each server, so that events of an earlier one are told apart. */
  const attempts = new WeakMap<net.Server, object>();
  const subscriptions = new WeakMap<net.Server, IncomingSubscription>();
  const reportedPorts = new WeakMap<net.Server, number>();

  const originalAddress = registry.define({
    target: net.Server.prototype,
    key: 'address',
    replace: (original) =>
      function address(this: net.Server) {
        const real = original.call(this);
        const reported = reportedPorts.get(this);
        // The app asked for a port that was taken here or remapped by listenPorts: it is told it got it.
        if (reported === undefined || real === null || typeof real !== 'object') return real;
        return { ...real, port: reported };
      } as net.Server['address'],
  });

  registry.define({
    target: net.Server.prototype,
    key: 'listen',
    replace: (original) => {
      const originalListen = original as unknown as ListenFunction;
      return function listen(this: net.Server, ...args: unknown[]): net.Server {
        const request = cluster.isWorker || (this as net.Server & ServerInternals)._handle ? null : ops.parse(args);
        // Workers, servers already listening (Node throws), paths, handles and bad arguments go to Node as they came.
        if (request === null || request.kind === 'untouched') return originalListen.apply(this, args);
        release(this);
        const port = ops.localPort(request);
        watch(this, originalListen, request, port);
        return originalListen.apply(this, port === request.port ? args : request.withPort(port, true));
      } as unknown as net.Server['listen'];
    },
  });

  registry.define({
    target: net.Server.prototype,
    key: 'close',
    replace: (original) =>
      function close(this: net.Server, ...args: unknown[]) {
        // At close() rather than at 'close': the server stops accepting now, while 'close' waits for every
        // open connection to end.
        release(this);
        return (original as unknown as (...args: unknown[]) => net.Server).apply(this, args);
      } as net.Server['close'],
  });

  function release(server: net.Server): void {
    attempts.delete(server);
    subscriptions.get(server)?.close();
    subscriptions.delete(server);
    reportedPorts.delete(server);
  }

  /** Follows one listen until it listens (subscribe) or fails (retry on a free port, or let the app see it). */
  function watch(server: net.Server, originalListen: ListenFunction, request: TcpListen, firstPort: number): void {
    const attempt = {};
    attempts.set(server, attempt);
    let tried = firstPort;
    const hadOwnEmit = Object.prototype.hasOwnProperty.call(server, 'emit');
    const previousEmit = server.emit;

    const watching = function emit(this: net.Server, event: string | symbol, ...args: unknown[]): boolean {
      if (attempts.get(server) !== attempt) {
        stop();
      } else if (event === 'error') {
        const retry = ops.retryPort(args[0], tried);
        if (retry !== null && !(server as net.Server & ServerInternals)._handle) {
          context.log.debug(`listen: port ${tried} is taken here, listening on port ${retry} instead`);
          tried = retry;
          try {
            originalListen.apply(server, request.withPort(retry, false));
            return true;
          } catch {
            // Node would not take the same arguments twice: the app gets the first error.
          }
        }
        stop();
      } else if (event === 'listening') {
        stop();
        listening(server, request);
      }
      return Reflect.apply(previousEmit, this, [event, ...args]) as boolean;
    };
    function stop(): void {
      if (server.emit !== watching) return;
      if (hadOwnEmit) server.emit = previousEmit;
      else delete (server as { emit?: unknown }).emit;
    }
    server.emit = watching as net.Server['emit'];
  }

  function listening(server: net.Server, request: TcpListen): void {
    const real = originalAddress.call(server);
    if (real === null || typeof real !== 'object') return;
    const bound: BoundListen = { asked: request.port, address: real.address, port: real.port, ipv6Only: request.ipv6Only };
    const reported = ops.reportedPort(bound);
    if (reported !== null) reportedPorts.set(server, reported);
    const subscription = ops.subscribe(bound);
    if (subscription === null) return;
    subscriptions.set(server, subscription);
    // A backstop for a server closed without close() (a handle closed underneath it): its 'close' still comes.
    server.once('close', () => {
      if (subscriptions.get(server) === subscription) release(server);
    });
  }
}
