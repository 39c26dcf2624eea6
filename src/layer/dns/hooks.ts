// The DNS hooks: dns.lookup (getaddrinfo, which net.connect also calls for local connects), dns.promises.lookup,
// and every resolver method, callback and promise style.
//
// Node reaches its resolvers three ways, and each must land here:
// - dns.resolve4() and friends are the default Resolver's prototype methods, bound once at load time (and bound
//   again by dns.setServers()). So the prototypes are patched, and install rebinds the module functions.
// - new dns.Resolver() and new dns.promises.Resolver() inherit the patched prototypes.
// - resolve(name, rrtype) looks the method up in a private table of the originals, so it is patched too.
// Calls Node answers without any I/O (an IP literal, "localhost", an empty name) or rejects (bad arguments) go to
// the original function, so their results and thrown errors stay Node's own.

import dns from 'node:dns';
import { isIP } from 'node:net';
import type { LookupAddress } from '../../protocol/messages.js';
import { queryError } from '../errors.js';
import type { LayerLog } from '../log.js';
import type { PatchRegistry } from '../patches.js';
import { parseLookupArguments, RESOLVE_METHODS, resolveMethodOf, UNSUPPORTED_RESOLVE_METHODS, type DnsOps, type ResolveMethod } from './ops.js';

type AnyFunction = (this: unknown, ...args: unknown[]) => unknown;
type Callback = (...args: unknown[]) => void;

export interface DnsHookContext {
  ops: DnsOps;
  log: LayerLog;
}

export function defineDnsHooks(registry: PatchRegistry, context: DnsHookContext): void {
  const { ops } = context;

  registry.define({
    target: dns,
    key: 'lookup',
    replace: (original) =>
      function lookup(this: unknown, ...args: unknown[]): unknown {
        const parsed = parseLookupArguments(args[0], args[1], args[2], true);
        if (parsed === null || ops.lookupRoute(parsed.request.hostname) === 'local') {
          return (original as unknown as AnyFunction).apply(this, args);
        }
        context.log.debug(`dns.lookup ${parsed.request.hostname}: remote`);
        const { request } = parsed;
        const callback = parsed.callback as Callback;
        ops.lookup(request).then(
          (addresses) =>
            process.nextTick(() => {
              if (request.all) callback(null, addresses.map(copyAddress));
              else callback(null, addresses[0]!.address, addresses[0]!.family);
            }),
          (error: unknown) => process.nextTick(callback, error),
        );
        // Node returns its request wrap; callers only ever ignore it.
        return {};
      } as unknown as typeof dns.lookup,
  });

  registry.define({
    target: dns.promises,
    key: 'lookup',
    replace: (original) =>
      function lookup(this: unknown, ...args: unknown[]): unknown {
        const parsed = parseLookupArguments(args[0], args[1], undefined, false);
        if (parsed === null || ops.lookupRoute(parsed.request.hostname) === 'local') {
          return (original as unknown as AnyFunction).apply(this, args);
        }
        context.log.debug(`dns.promises.lookup ${parsed.request.hostname}: remote`);
        const { request } = parsed;
        return ops.lookup(request).then((addresses) => (request.all ? addresses.map(copyAddress) : copyAddress(addresses[0]!)));
      } as unknown as typeof dns.promises.lookup,
  });

  const callbackPrototype = dns.Resolver.prototype as unknown as Record<string, AnyFunction>;
  const promisePrototype = dns.promises.Resolver.prototype as unknown as Record<string, AnyFunction>;

  for (const method of Object.keys(RESOLVE_METHODS) as ResolveMethod[]) {
    patchMethod(callbackPrototype, method, (original) => callbackQuery(original, (name, ttl) => ops.query(method, name, ttl)));
    patchMethod(promisePrototype, method, (original) => promiseQuery(original, (name, ttl) => ops.query(method, name, ttl)));
  }
  for (const [method, { syscall }] of Object.entries(UNSUPPORTED_RESOLVE_METHODS)) {
    if (typeof callbackPrototype[method] !== 'function') continue;
    const refuse = (name: string) => Promise.reject(queryError('ENOTIMP', syscall, name));
    patchMethod(callbackPrototype, method, (original) => callbackQuery(original, refuse));
    patchMethod(promisePrototype, method, (original) => promiseQuery(original, refuse));
  }

  // reverse() of something that is not an IP address throws in Node before any query (EINVAL), so only
  // addresses are asked of the target.
  const reverse = (name: string) => ops.reverse(name);
  patchMethod(callbackPrototype, 'reverse', (original) => callbackQuery(original, reverse, isIPAddress));
  patchMethod(promisePrototype, 'reverse', (original) => promiseQuery(original, reverse, isIPAddress));

  patchMethod(callbackPrototype, 'resolve', (original) =>
    function resolve(this: unknown, ...args: unknown[]): unknown {
      const [hostname, rrtype, callback] = args;
      const type = typeof rrtype === 'function' ? 'A' : rrtype;
      const done = typeof rrtype === 'function' ? rrtype : callback;
      const method = typeof type === 'string' ? methodFor(type) : undefined;
      if (method === undefined || typeof hostname !== 'string' || typeof done !== 'function') return original.apply(this, args);
      return callbackPrototype[method]!.call(this, hostname, done);
    },
  );
  patchMethod(promisePrototype, 'resolve', (original) =>
    function resolve(this: unknown, ...args: unknown[]): unknown {
      const [hostname, rrtype] = args;
      const method = rrtype === undefined ? 'resolve4' : typeof rrtype === 'string' ? methodFor(rrtype) : undefined;
      if (method === undefined || typeof hostname !== 'string') return original.apply(this, args);
      return promisePrototype[method]!.call(this, hostname);
    },
  );

  function patchMethod(prototype: Record<string, AnyFunction>, key: string, replace: (original: AnyFunction) => AnyFunction): void {
    if (typeof prototype[key] !== 'function') return;
    registry.define({ target: prototype, key, replace: (original) => replace(original as AnyFunction) });
  }
}

/** A record type the resolver methods know, supported or not; undefined lets Node reject an unknown one. */
function methodFor(rrtype: string): string | undefined {
  const supported = resolveMethodOf(rrtype);
  if (supported !== undefined) return supported;
  return Object.entries(UNSUPPORTED_RESOLVE_METHODS).find(([, entry]) => entry.rrtype === rrtype)?.[0];
}

/** Callback style, as Node's: (name, callback) or (name, options, callback), options only read for `ttl`. */
function callbackQuery(
  original: AnyFunction,
  ask: (name: string, ttl: boolean) => Promise<unknown>,
  accepts: (name: string) => boolean = () => true,
): AnyFunction {
  return function query(this: unknown, ...args: unknown[]): unknown {
    const [name] = args;
    const options = args.length > 2 ? args[1] : undefined;
    const callback = args.length > 2 ? args[2] : args[1];
    if (typeof name !== 'string' || typeof callback !== 'function' || !accepts(name)) return original.apply(this, args);
    ask(name, ttlOption(options)).then(
      (records) => process.nextTick(callback as Callback, null, records),
      (error: unknown) => process.nextTick(callback as Callback, error),
    );
    return {};
  };
}

function promiseQuery(
  original: AnyFunction,
  ask: (name: string, ttl: boolean) => Promise<unknown>,
  accepts: (name: string) => boolean = () => true,
): AnyFunction {
  return function query(this: unknown, ...args: unknown[]): unknown {
    const [name, options] = args;
    if (typeof name !== 'string' || !accepts(name)) return original.apply(this, args);
    return ask(name, ttlOption(options));
  };
}

function ttlOption(options: unknown): boolean {
  return typeof options === 'object' && options !== null && Boolean((options as { ttl?: unknown }).ttl);
}

function isIPAddress(name: string): boolean {
  return isIP(name) !== 0;
}

function copyAddress(entry: LookupAddress): LookupAddress {
  return { address: entry.address, family: entry.family };
}
