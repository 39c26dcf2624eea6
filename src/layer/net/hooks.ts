// The hook on net.Socket.prototype.connect. Every TCP client of Node ends here: net.connect, new Socket().connect,
// tls.connect (a TLSSocket is a Socket), http and https agents, http2.connect, and undici's fetch.
//
// A remote connect is taken over the way Node itself defers a connect while it looks a name up: the socket is
// marked `connecting` (so writes, end() and reads queue, and setNoDelay/setKeepAlive/setTimeout are remembered),
// the route is asked for asynchronously, and then the original connect is called towards the intproxy's
// loopback port, with the app's other options left alone. TLS options in particular are untouched, so
// certificates are still checked against the name the app used.

import net from 'node:net';
import type { LayerConnectResult } from '../../protocol/messages.js';
import { connectError, ipBlockedError, type NodeSystemError } from '../errors.js';
import type { LayerLog } from '../log.js';
import type { PatchRegistry } from '../patches.js';
import type { ConnectOutcome, ConnectTarget, NetOps } from './ops.js';
import { validPort } from '../validate.js';

type ConnectFunction = (this: net.Socket, ...args: unknown[]) => net.Socket;
type ConnectCallback = (() => void) | null;

interface ConnectOptions {
  host?: unknown;
  port?: unknown;
  path?: unknown;
  family?: unknown;
  [option: string]: unknown;
}

/** Node's own fields of a Socket that a hook has to keep in step with, named as in lib/net.js. */
interface SocketInternals {
  connecting: boolean;
  destroyed: boolean;
  _handle: unknown;
  _peername: unknown;
  _sockname: unknown;
  _host: string | null;
  _parent?: { connecting?: boolean } | null;
  _undestroy(): void;
  _unrefTimer(): void;
  /** Node 22+: a net.BlockList checked against the address actually dialled. */
  blockList?: { check(address: string, family: string): boolean } | undefined;
}

export interface NetHookContext {
  ops: NetOps;
  log: LayerLog;
}

export function defineNetHooks(registry: PatchRegistry, context: NetHookContext): void {
  const normalizeArgs = findNormalizeArgs();
  const normalizedArgs = findNormalizedArgsSymbol(normalizeArgs);
  // Identifies the newest connect of a socket, so an answer to an earlier one (the socket was destroyed, or
  // connected again meanwhile) is recognised as stale and dropped.
  const attempts = new WeakMap<net.Socket, object>();

  registry.define({
    target: net.Socket.prototype,
    key: 'connect',
    replace: (original) => {
      const originalConnect = original as unknown as ConnectFunction;
      return function connect(this: net.Socket, ...args: unknown[]): net.Socket {
        // net.connect() hands over an array it normalized already; anything else is the app's own arguments.
        const first = args[0];
        const normalized = Array.isArray(first) && isNormalized(first, normalizedArgs) ? first : normalizeArgs(args);
        const options = (normalized[0] ?? {}) as ConnectOptions;
        const callback = (typeof normalized[1] === 'function' ? normalized[1] : null) as ConnectCallback;
        const socket = this as net.Socket & SocketInternals;

        const target = options.path || socket._parent?.connecting ? null : connectTarget(options);
        // Unix sockets, sockets wrapped by a connecting parent, and arguments Node rejects (it throws before any
        // I/O) all go to Node as they came.
        if (target === null || context.ops.route(target) === 'local') return originalConnect.apply(this, args);
        context.log.debug(`connect ${target.host}:${target.port}: remote`);
        takeOver(socket, originalConnect, options, callback, target);
        return socket;
      } as unknown as net.Socket['connect'];
    },
  });

  function takeOver(
    socket: net.Socket & SocketInternals,
    original: ConnectFunction,
    options: ConnectOptions,
    callback: ConnectCallback,
    target: ConnectTarget,
  ): void {
    if (callback !== null) socket.once('connect', callback);
    // What Node's connect does synchronously, before its own asynchronous lookup.
    if (Object.prototype.hasOwnProperty.call(socket, 'write') && socket.write !== net.Socket.prototype.write) {
      socket.write = net.Socket.prototype.write;
    }
    if (socket.destroyed) {
      socket._handle = null;
      socket._peername = null;
      socket._sockname = null;
      socket._undestroy();
    }
    socket._unrefTimer();
    socket.connecting = true;
    const isName = net.isIP(target.host) === 0;
    if (isName) socket._host = target.host;

    const attempt = {};
    attempts.set(socket, attempt);
    const isCurrent = () => attempts.get(socket) === attempt && socket.connecting && !socket.destroyed;

    if (!isName && isBlocked(socket, target.host)) {
      process.nextTick(() => {
        if (isCurrent()) socket.destroy(ipBlockedError(target.host));
      });
      return;
    }

    context.ops.connect(target).then(
      // Leave the promise chain before touching the socket: an exception in an app's 'lookup', 'connect' or
      // 'error' listener must surface as it would without the layer, not as an unhandled rejection.
      (outcome) => process.nextTick(settle, outcome),
      (error: unknown) => process.nextTick(settle, { kind: 'failed', error, stage: 'connect', resolved: null } as ConnectOutcome),
    );

    function settle(outcome: ConnectOutcome): void {
      if (!isCurrent()) {
        if (outcome.kind === 'remote') discardProxyPort(original, outcome.result.proxyPort);
        return;
      }
      switch (outcome.kind) {
        case 'local':
          callOriginal(socket, original, options);
          return;
        case 'failed':
          failConnect(socket, target, outcome, isCurrent);
          return;
        case 'remote':
          if (outcome.resolved) {
            socket.emit('lookup', null, outcome.resolved.address, outcome.resolved.family, target.host);
            if (!isCurrent()) {
              discardProxyPort(original, outcome.result.proxyPort);
              return;
            }
          }
          if (isBlocked(socket, outcome.result.remote.address)) {
            discardProxyPort(original, outcome.result.proxyPort);
            socket.destroy(ipBlockedError(outcome.result.remote.address));
            return;
          }
          connectThroughProxy(socket, original, options, outcome.result);
          return;
      }
    }
  }

  function failConnect(
    socket: net.Socket & SocketInternals,
    target: ConnectTarget,
    outcome: Extract<ConnectOutcome, { kind: 'failed' }>,
    isCurrent: () => boolean,
  ): void {
    if (outcome.stage === 'lookup') {
      // As Node's lookupAndConnect: 'lookup' carries the error, then the socket is destroyed a tick later.
      socket.emit('lookup', outcome.error, undefined, undefined, target.host);
      process.nextTick(() => {
        if (isCurrent()) socket.destroy(outcome.error);
      });
      return;
    }
    if (outcome.resolved) {
      // The name did resolve on the far side; Node reports that before the connect fails.
      socket.emit('lookup', null, outcome.resolved.address, outcome.resolved.family, target.host);
      if (!isCurrent()) return;
    }
    socket.connecting = false;
    socket.destroy(outcome.error);
  }

  function connectThroughProxy(
    socket: net.Socket & SocketInternals,
    original: ConnectFunction,
    options: ConnectOptions,
    result: LayerConnectResult,
  ): void {
    const peer = { address: result.remote.address, family: result.remote.family, port: result.remote.port };
    const local = { address: result.local.address, family: result.local.family, port: result.local.port };
    // _getpeername() caches into _peername and only clears it when a destroyed socket connects again, so the
    // cache alone makes remoteAddress/remotePort/remoteFamily report the real peer. _sockname is cleared by
    // afterConnect just before 'connect' is emitted; a listener put in front of every other one refills it.
    socket._peername = peer;
    const reportLocalEnd = () => {
      socket._sockname = local;
    };
    socket.prependOnceListener('connect', reportLocalEnd);
    translateProxyEvents(socket, result, (event) => {
      // A dial that failed must not leave the listener for a later, unrelated connect of the same socket.
      if (event !== 'connect') socket.off('connect', reportLocalEnd);
    });
    callOriginal(socket, original, proxyOptions(options, result.proxyPort));
  }

  function callOriginal(socket: net.Socket & SocketInternals, original: ConnectFunction, options: ConnectOptions): void {
    // Node's connect creates the socket's handle and then calls _undestroy(), which resets the stream state
    // (ended, finalCalled, reading…). Node does that before the app can touch the socket; here the app may
    // already have called end() while the route was decided, so the reset would lose it and the socket would
    // never finish. A socket that was destroyed was undestroyed when the app called connect, as Node does.
    const hadOwnUndestroy = Object.prototype.hasOwnProperty.call(socket, '_undestroy');
    const ownUndestroy = socket._undestroy;
    socket._undestroy = keepStreamState;
    try {
      // The callback was registered when the app called connect; only the options go through again.
      original.call(socket, options);
    } catch (error) {
      socket.destroy(error as Error);
    } finally {
      if (hadOwnUndestroy) socket._undestroy = ownUndestroy;
      else delete (socket as { _undestroy?: unknown })._undestroy;
    }
  }

  /**
   * While the socket dials the intproxy, Node reports what it dials: a 'connectionAttempt' to 127.0.0.1, and on
   * failure an error naming the proxy port. The app asked for the remote peer, so that is what it hears. Node 22+
   * would also check the socket's BlockList against 127.0.0.1; the remote address was checked instead.
   */
  function translateProxyEvents(
    socket: net.Socket & SocketInternals,
    result: LayerConnectResult,
    onSettled: (event: 'connect' | 'error' | 'close') => void,
  ): void {
    const hadOwnEmit = Object.prototype.hasOwnProperty.call(socket, 'emit');
    const previousEmit = socket.emit;
    const hadBlockList = Object.prototype.hasOwnProperty.call(socket, 'blockList');
    const blockList = socket.blockList;
    if (hadBlockList) socket.blockList = undefined;
    const family = result.remote.family === 'IPv6' ? 6 : 4;

    const translating = function emit(this: net.Socket, event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'connectionAttempt') {
        args = [result.remote.address, result.remote.port, family];
      } else if (event === 'error' && isProxyConnectError(args[0], result.proxyPort)) {
        const failure = args[0] as NodeSystemError;
        args = [connectError(failure.code, result.remote.address, result.remote.port)];
        context.log.warn(`the intproxy's port ${result.proxyPort} refused the connection: ${failure.message}`);
      }
      if (event === 'connect' || event === 'error' || event === 'close') stop(event);
      return Reflect.apply(previousEmit, this, [event, ...args]) as boolean;
    };
    function stop(event: 'connect' | 'error' | 'close'): void {
      onSettled(event);
      if (socket.emit === translating) {
        if (hadOwnEmit) socket.emit = previousEmit;
        else delete (socket as { emit?: unknown }).emit;
      }
      if (hadBlockList && socket.blockList === undefined) socket.blockList = blockList;
    }
    socket.emit = translating as net.Socket['emit'];
  }

  /**
   * An answer that came after the app gave up on the socket: claim the proxy port and close it at once, so the
   * remote connection is released now rather than when the intproxy times the unclaimed port out.
   */
  function discardProxyPort(original: ConnectFunction, port: number): void {
    const socket = new net.Socket();
    socket.on('error', () => {});
    original.call(socket, { host: '127.0.0.1', port }, () => socket.destroy());
    socket.unref();
  }
}

/** The options of the dial to the intproxy: the app's, minus everything about where and how to reach the peer. */
function proxyOptions(options: ConnectOptions, proxyPort: number): ConnectOptions {
  const {
    host: _host,
    port: _port,
    path: _path,
    lookup: _lookup,
    family: _family,
    hints: _hints,
    localAddress: _localAddress,
    localPort: _localPort,
    autoSelectFamily: _autoSelectFamily,
    autoSelectFamilyAttemptTimeout: _autoSelectFamilyAttemptTimeout,
    ...rest
  } = options;
  return { ...rest, host: '127.0.0.1', port: proxyPort };
}

/** The target of a connect, or null when Node would reject the arguments (it throws before any I/O). */
export function connectTarget(options: ConnectOptions): ConnectTarget | null {
  const host = options.host || 'localhost';
  if (typeof host !== 'string' || host.includes('\0')) return null;
  const port = validPort(options.port);
  if (port === null) return null;
  return { host, port, family: dnsFamily(options.family) };
}

function dnsFamily(family: unknown): 0 | 4 | 6 {
  if (family === 4 || family === 'IPv4') return 4;
  if (family === 6 || family === 'IPv6') return 6;
  return 0;
}

function isBlocked(socket: SocketInternals, address: string): boolean {
  const list = socket.blockList;
  return list !== undefined && typeof list.check === 'function' && list.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
}

function isProxyConnectError(error: unknown, proxyPort: number): boolean {
  const failure = error as Partial<NodeSystemError> | undefined;
  return failure?.syscall === 'connect' && failure.address === '127.0.0.1' && failure.port === proxyPort && typeof failure.code === 'string';
}

function isNormalized(args: unknown[], marker: symbol | null): boolean {
  if (marker !== null) return (args as unknown as Record<symbol, unknown>)[marker] === true;
  return args.length === 2 && typeof args[0] === 'object' && (args[1] === null || typeof args[1] === 'function');
}

type NormalizeArgs = (args: unknown[]) => unknown[];

/** net._normalizeArgs, which Node exports on every supported version; a faithful fallback if it ever goes. */
function findNormalizeArgs(): NormalizeArgs {
  const exported = (net as unknown as { _normalizeArgs?: NormalizeArgs })._normalizeArgs;
  if (typeof exported === 'function') return exported;
  return (args) => {
    if (args.length === 0) return [{}, null];
    const last = args[args.length - 1];
    const callback = typeof last === 'function' ? last : null;
    const [first, second] = args;
    if (first !== null && typeof first === 'object') return [first, callback];
    const isPort = typeof first === 'number' || (typeof first === 'string' && first.trim() !== '' && Number.isFinite(Number(first)));
    if (!isPort && typeof first === 'string') return [{ path: first }, callback];
    return [{ port: first, ...(typeof second === 'string' ? { host: second } : {}) }, callback];
  };
}

/** The private symbol Node marks pre-normalized argument arrays with, read off an array it normalized. */
function findNormalizedArgsSymbol(normalize: NormalizeArgs): symbol | null {
  try {
    const sample = normalize([{ port: 1 }]);
    return Object.getOwnPropertySymbols(sample).find((symbol) => (sample as unknown as Record<symbol, unknown>)[symbol] === true) ?? null;
  } catch {
    return null;
  }
}

function keepStreamState(): void {}
