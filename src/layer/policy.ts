// The one place that decides whether an operation of the app runs locally or in the target. Pure (but for one
// symlink read in isPackageManagerCli): it sees the settings and the operation, never a socket, so every rule
// can be tested without patching anything.
//
// Outgoing connections, in order:
//   1. outgoing.tcp false: everything local.
//   2. loopback (127.0.0.0/8, ::1, 0.0.0.0, ::, "localhost") stays local while ignoreLocalhost is true: the
//      app's local database or dev server must keep working.
//   3. the outgoing filter (mirrord's): `local` lists what stays local (the rest is remote), `remote` lists what
//      goes remote (the rest is local), no list sends everything remote. A pattern matches on the host name the
//      app used, on the IP address, and on the port.
// Unix sockets are always local: the target has no way to carry them.
//
// The layer as a whole stays out of npm and npx themselves (isPackageManagerCli).
//
// DNS: with dns.enabled, every name is resolved by the target, except "localhost" and IP literals, which
// getaddrinfo answers without asking anyone.
//
// Listening (incoming traffic): the app always listens locally for real. listenPorts picks the local port the
// layer binds instead of the one the app asked for; a listen is then subscribed, the target's port (after
// portMapping) sent to it, unless incoming is off, the port is in ignorePorts or missing from `ports`, or the
// address is loopback while ignoreLocalhost holds. Ports are compared as the app asked for them. Unix sockets
// never reach the policy: the target has no way to carry them.

import { realpathSync } from 'node:fs';
import { isIP } from 'node:net';
import { basename, dirname } from 'node:path';
import { matchAddressPattern, parseAddressPattern, type AddressPattern, type OutgoingAttempt } from '../config/address-pattern.js';
import { compileConfigRegex, escapeRegex } from '../config/regex.js';
import type { LayerSettings } from '../protocol/contracts.js';

export type Route = 'local' | 'remote';

export interface ConnectAttempt {
  /** The host the app named, when it named one (not an IP literal). */
  hostname?: string | undefined;
  /** The IP address, when known: the app gave a literal, or the name was resolved first. */
  address?: string | undefined;
  port: number;
}

/** 'resolve-first': the answer depends on the address of a name, which must be resolved before deciding. */
export type ConnectDecision = Route | 'resolve-first';

export interface ListenAttempt {
  /** The port the app asked for; for port 0, the ephemeral port it was given. */
  port: number;
  /** The address the server is bound to, as server.address() reports it. */
  address: string;
}

export interface Policy {
  connect(attempt: ConnectAttempt): ConnectDecision;
  /** The port to bind locally when the app asks for this one (listenPorts, else the same). */
  listenPort(asked: number): number;
  /** The target's port to subscribe for this listen, or null when it stays purely local. */
  subscribePort(attempt: ListenAttempt): number | null;
  /** Where dns.lookup (getaddrinfo) of this host runs. */
  lookup(hostname: string): Route;
  /** Where resolver queries (dns.resolve*, dns.reverse) run. */
  readonly queries: Route;
}

export function createPolicy(settings: LayerSettings): Policy {
  const connect = outgoingRoute('tcp', settings);
  const dnsEnabled = settings.dns.enabled;
  const dnsLocal = nonEmpty(settings.dns.filter?.local)?.map(parseAddressPattern);
  const dnsRemote = nonEmpty(settings.dns.filter?.remote)?.map(parseAddressPattern);
  const incoming = settings.incoming;
  // Later pairs win over earlier ones, as a config that lists a port twice would read.
  const listenPorts = new Map(incoming.listenPorts);
  const portMapping = new Map(incoming.portMapping);
  const ignorePorts = new Set(incoming.ignorePorts);
  const onlyPorts = incoming.ports === null ? null : new Set(incoming.ports);

  return {
    connect,
    lookup(hostname) {
      if (!dnsEnabled) return 'local';
      if (isIP(hostname) || isLocalhostName(hostname)) return 'local';
      // A name pattern matches the name looked up; the port of a pattern (the DNS server's) is not known here.
      const named = (pattern: AddressPattern) => pattern.hostname !== null && matchAddressPattern({ ...pattern, port: null, protocol: null }, { protocol: 'udp', hostname, port: 53 });
      if (dnsLocal?.some(named)) return 'local';
      if (dnsRemote !== undefined && !dnsRemote.some(named)) return 'local';
      return 'remote';
    },
    queries: dnsEnabled ? 'remote' : 'local',
    listenPort(asked) {
      if (incoming.mode === 'off' || asked === 0) return asked;
      return listenPorts.get(asked) ?? asked;
    },
    subscribePort({ port, address }) {
      if (incoming.mode === 'off') return null;
      if (ignorePorts.has(port)) return null;
      if (onlyPorts !== null && !onlyPorts.has(port)) return null;
      if (incoming.ignoreLocalhost && isLoopbackAddress(address) && !isUnspecifiedAddress(address)) return null;
      return portMapping.get(port) ?? port;
    },
  };
}

function nonEmpty(list: string[] | undefined): string[] | undefined {
  return list !== undefined && list.length > 0 ? list : undefined;
}

/** A subnet pattern whose other parts match: whether it matches depends on the address the name resolves to. */
function couldMatchOnceResolved(pattern: AddressPattern, attempt: OutgoingAttempt): boolean {
  if (pattern.subnet === null) return false;
  return matchAddressPattern({ ...pattern, subnet: null }, attempt);
}

export function isLocalhostName(hostname: string): boolean {
  return hostname.toLowerCase().replace(/\.$/, '') === 'localhost';
}

/** Loopback, and the unspecified addresses, which connect(2) on Linux sends to this machine too. */
export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return address.startsWith('127.') || address === '0.0.0.0';
  if (family === 6) {
    const text = address.toLowerCase().replace(/%.*$/, '');
    if (text === '::1' || text === '::' || /^(0{1,4}:){7}0{0,3}1$/.test(text)) return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
    return mapped !== null && isLoopbackAddress(mapped[1]!);
  }
  return false;
}

/** 0.0.0.0 and ::: a server bound there listens on every interface, not only on loopback. */
export function isUnspecifiedAddress(address: string): boolean {
  if (address === '0.0.0.0' || address === '::ffff:0.0.0.0') return true;
  return isIP(address) === 6 && /^(0{0,4}:){2,7}0{0,4}$/.test(address.toLowerCase().replace(/%.*$/, ''));
}

/**
 * npm and npx themselves (not the scripts they start) stay out of the session: their registry traffic must not
 * go through the target. NODE_OPTIONS reaches them too, and their children inherit npm_execpath and npm_command,
 * so the environment cannot tell them apart; the script being run can. npm is usually started through a
 * symlink (/usr/bin/npm → …/npm/bin/npm-cli.js), which Node keeps in argv[1] unresolved.
 */
export function isPackageManagerCli(script: string | undefined, resolveLink: (path: string) => string = realpathSync): boolean {
  if (!script) return false;
  const cli = /(^|[\\/])np[mx]-cli\.js$/;
  if (cli.test(script)) return true;
  const name = basename(script).replace(/\.(cmd|ps1)$/i, '');
  if (name !== 'npm' && name !== 'npx') return false;
  try {
    return cli.test(resolveLink(script));
  } catch {
    return false;
  }
}

// --- outgoing UDP ----------------------------------------------------------------------------------------
// Datagrams follow the TCP rules above (outgoingRoute) with their own switch (outgoing.udp) and the patterns
// that name udp:// or no protocol. A datagram with no address goes where Node sends it: to loopback, which
// stays local.

export interface UdpPolicy {
  /** Where a datagram to (or a dgram connect to) this destination goes. */
  send(attempt: ConnectAttempt): ConnectDecision;
}

export function createUdpPolicy(settings: LayerSettings): UdpPolicy {
  const route = outgoingRoute('udp', settings);
  return {
    send(attempt) {
      if (attempt.address === undefined && attempt.hostname === undefined) return 'local';
      return route(attempt);
    },
  };
}

/**
 * The outgoing rules (1–3 at the top of this file) for one transport: its own switch (outgoing.tcp or
 * outgoing.udp), and the filter's patterns that name that protocol or none.
 */
function outgoingRoute(protocol: 'tcp' | 'udp', settings: LayerSettings): (attempt: ConnectAttempt) => ConnectDecision {
  const { ignoreLocalhost, filter } = settings.outgoing;
  const enabled = settings.outgoing[protocol];
  const localList = nonEmpty(filter.local);
  const remoteList = nonEmpty(filter.remote);
  // Patterns were validated by the config module; parsing again here keeps the layer free of the schema library.
  const patterns = (localList ?? remoteList ?? []).map(parseAddressPattern).filter((p) => p.protocol === null || p.protocol === protocol);
  const listed: Route | null = localList ? 'local' : remoteList ? 'remote' : null;
  const unlisted: Route = listed === 'local' ? 'remote' : 'local';
  return (attempt) => {
    if (!enabled) return 'local';
    const address = attempt.address ?? (attempt.hostname !== undefined && isIP(attempt.hostname) ? attempt.hostname : undefined);
    const hostname = attempt.hostname !== undefined && isIP(attempt.hostname) ? undefined : attempt.hostname;
    const loopback = (address !== undefined && isLoopbackAddress(address)) || (hostname !== undefined && isLocalhostName(hostname));
    if (loopback && ignoreLocalhost) return 'local';
    if (listed === null) return 'remote';
    const candidate: OutgoingAttempt = { protocol, hostname, address, port: attempt.port };
    if (patterns.some((pattern) => matchAddressPattern(pattern, candidate))) return listed;
    if (address === undefined && hostname !== undefined && patterns.some((p) => couldMatchOnceResolved(p, candidate))) {
      return 'resolve-first';
    }
    return unlisted;
  };
}

// --- files ---------------------------------------------------------------------------------------------------
// Where a file operation runs, decided on the absolute path (relative paths are taken from the cwd first) and on
// whether the operation could change the file. In order, the first rule that applies wins:
//   1. mode `local`: everything local, the lists included.
//   2. the user's `not_found`: the path does not exist for the app (ENOENT), wherever it is.
//   3. the user's `read_write`: remote, reads and writes.
//   4. the user's `read_only`: reads remote; writes local, as mode `read` does it.
//   5. the user's `local`: local.
//   6. mode `localwithoverrides`: local (only the lists above send anything to the target).
//   7. the default local set (defaultLocalFilePatterns): local.
//   8. mode `read`: reads remote, writes local; mode `write`: remote.
// The user's lists therefore override the default local set: `read_only: ["^/tmp/shared"]` reads that
// directory from the target even though /tmp is local by default.

export type FileRoute = Route | 'not-found';
export type FileIntent = 'read' | 'write';

export interface FilePolicy {
  route(absolutePath: string, intent: FileIntent): FileRoute;
}

/** What the default local set is made from; each process of the session has its own. */
export interface LocalFacts {
  cwd: string;
  /** The main script (process.argv[1]) and its project root (the nearest directory with a package.json). */
  appDirectories: string[];
  home: string;
  tmpdir: string;
  /** Node's executable; its install prefix (`/usr/local` for /usr/local/bin/node) holds Node's own files. */
  execPath: string;
  /** Where remocal itself is installed: the layer and its worker are loaded from there. */
  remocalDirectory: string;
}

/** The paths every process keeps local unless the user's lists say otherwise, as case-insensitive regexes. */
export function defaultLocalFilePatterns(facts: LocalFacts): string[] {
  const under = (directory: string) => `^${escapeRegex(directory.replace(/\/+$/, ''))}(/|$)`;
  const directories = [
    facts.cwd,
    ...facts.appDirectories,
    facts.home,
    facts.tmpdir,
    dirname(dirname(facts.execPath)),
    facts.remocalDirectory,
  ].filter((directory) => directory !== '' && directory !== '/');
  return [
    // The app's own code and its dependencies, wherever they are installed.
    ...directories.map(under),
    '/node_modules(/|$)',
    // The kernel's and the machine's views, which describe this machine and never a target's.
    '^/proc(/|$)',
    '^/sys(/|$)',
    '^/dev(/|$)',
    '^/tmp(/|$)',
    '^/var/tmp(/|$)',
    // System programs and libraries: Node, native addons and the tools the app runs are this machine's.
    '^/usr(/|$)',
    '^/lib(32|64|x32)?(/|$)',
    '^/bin(/|$)',
    '^/sbin(/|$)',
    '^/opt/homebrew(/|$)',
    '^/nix(/|$)',
    '^/snap(/|$)',
    '^/etc/ld\\.so\\.',
    '\\.so(\\.[0-9]+)*$',
  ].filter((pattern, index, all) => all.indexOf(pattern) === index);
}

export function createFilePolicy(settings: LayerSettings['files'], facts: LocalFacts): FilePolicy {
  const compile = (patterns: readonly string[] | undefined) => (patterns ?? []).map(compileConfigRegex);
  const notFound = compile(settings.notFound);
  const readWrite = compile(settings.readWrite);
  const readOnly = compile(settings.readOnly);
  const local = compile(settings.local);
  const defaults = compile(defaultLocalFilePatterns(facts));
  const matches = (patterns: RegExp[], path: string) => patterns.some((pattern) => pattern.test(path));
  const mode = settings.mode;
  return {
    route(path, intent) {
      if (mode === 'local') return 'local';
      if (matches(notFound, path)) return 'not-found';
      if (matches(readWrite, path)) return 'remote';
      if (matches(readOnly, path)) return intent === 'read' ? 'remote' : 'local';
      if (matches(local, path)) return 'local';
      if (mode === 'localwithoverrides') return 'local';
      if (matches(defaults, path)) return 'local';
      if (mode === 'read') return intent === 'read' ? 'remote' : 'local';
      return 'remote';
    },
  };
}
