// Address patterns of the outgoing filter, in mirrord's syntax:
//
//   [tcp://|udp://]<host-or-ip>[/<prefix>][:<port>]
//
//   "tcp://1.1.1.0/24:1337", "10.0.0.0/8", "api.stripe.com", "api.stripe.com:443", ":53", "udp://:53",
//   "[::1]:8080", "fe80::/10"
//
// Every part is optional, but at least one must be given; a missing part matches anything. This module is pure
// (no schema library) because the layer, which is loaded into every process of the session, uses it too.

import { isIP } from 'node:net';

export type TransportProtocol = 'tcp' | 'udp';

export interface AddressPattern {
  source: string;
  protocol: TransportProtocol | null;
  /** A host name, matched case-insensitively against the name the app used. */
  hostname: string | null;
  /** An address or subnet. */
  subnet: { address: bigint; prefix: number; family: 4 | 6 } | null;
  port: number | null;
}

export class AddressPatternSyntaxError extends Error {
  constructor(
    readonly pattern: string,
    readonly reason: string,
  ) {
    super(`"${pattern}" is not an address pattern: ${reason}. Expected [tcp://|udp://]host-or-ip[/prefix][:port], e.g. "tcp://10.0.0.0/8:5432" or "db.internal".`);
  }
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_*]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;

export function parseAddressPattern(source: string): AddressPattern {
  let rest = source.trim();
  if (rest === '') throw new AddressPatternSyntaxError(source, 'it is empty');
  let protocol: TransportProtocol | null = null;
  const scheme = /^([a-z]+):\/\//i.exec(rest);
  if (scheme) {
    const name = scheme[1]!.toLowerCase();
    if (name !== 'tcp' && name !== 'udp') throw new AddressPatternSyntaxError(source, `unknown protocol "${scheme[1]}" (use tcp:// or udp://)`);
    protocol = name;
    rest = rest.slice(scheme[0].length);
  }

  let port: number | null = null;
  let hostPart = rest;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw new AddressPatternSyntaxError(source, 'an opening [ has no closing ]');
    hostPart = rest.slice(1, close);
    const after = rest.slice(close + 1);
    const prefixThenPort = /^(\/\d+)?(?::(.*))?$/.exec(after);
    if (!prefixThenPort) throw new AddressPatternSyntaxError(source, `unexpected "${after}" after the address`);
    hostPart += prefixThenPort[1] ?? '';
    if (prefixThenPort[2] !== undefined) port = parsePort(source, prefixThenPort[2]);
  } else {
    const colons = rest.split(':').length - 1;
    if (colons === 1) {
      const at = rest.lastIndexOf(':');
      hostPart = rest.slice(0, at);
      port = parsePort(source, rest.slice(at + 1));
    } else if (colons > 1 && !isIP(rest.split('/')[0]!)) {
      throw new AddressPatternSyntaxError(source, 'an IPv6 address with a port must be written in brackets, as [::1]:8080');
    }
  }

  let hostname: string | null = null;
  let subnet: AddressPattern['subnet'] = null;
  if (hostPart !== '') {
    const [address, prefixText] = hostPart.split('/', 2) as [string, string | undefined];
    const family = isIP(address);
    if (family === 4 || family === 6) {
      const bits = family === 4 ? 32 : 128;
      const prefix = prefixText === undefined ? bits : Number(prefixText);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) {
        throw new AddressPatternSyntaxError(source, `the prefix /${prefixText} is not between /0 and /${bits}`);
      }
      subnet = { address: maskAddress(ipToBigInt(address), prefix, bits), prefix, family };
    } else if (prefixText !== undefined) {
      throw new AddressPatternSyntaxError(source, `"${address}" is not an IP address, so it cannot have a /prefix`);
    } else if (HOSTNAME.test(address)) {
      hostname = address.toLowerCase().replace(/\.$/, '');
    } else {
      throw new AddressPatternSyntaxError(source, `"${address}" is neither an IP address nor a host name`);
    }
  }
  if (protocol === null && hostname === null && subnet === null && port === null) {
    throw new AddressPatternSyntaxError(source, 'it names no protocol, host, address or port');
  }
  return { source, protocol, hostname, subnet, port };
}

function parsePort(source: string, text: string): number {
  const port = Number(text);
  if (text === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new AddressPatternSyntaxError(source, `"${text}" is not a port (0-65535)`);
  }
  return port;
}

export interface OutgoingAttempt {
  protocol: TransportProtocol;
  /** The name the app asked for, when it gave one. */
  hostname?: string | undefined;
  /** The IP address, when known. */
  address?: string | undefined;
  port: number;
}

export function matchAddressPattern(pattern: AddressPattern, attempt: OutgoingAttempt): boolean {
  if (pattern.protocol !== null && pattern.protocol !== attempt.protocol) return false;
  if (pattern.port !== null && pattern.port !== attempt.port) return false;
  if (pattern.hostname !== null) {
    const name = attempt.hostname?.toLowerCase().replace(/\.$/, '');
    if (name === undefined || !hostnameMatches(pattern.hostname, name)) return false;
  }
  if (pattern.subnet !== null) {
    const candidate = attempt.address ?? (attempt.hostname !== undefined && isIP(attempt.hostname) ? attempt.hostname : undefined);
    if (candidate === undefined) return false;
    const family = isIP(candidate);
    if (family !== pattern.subnet.family) return false;
    const bits = family === 4 ? 32 : 128;
    if (maskAddress(ipToBigInt(candidate), pattern.subnet.prefix, bits) !== pattern.subnet.address) return false;
  }
  return true;
}

function hostnameMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('*.')) return name.endsWith(pattern.slice(1));
  return pattern === name;
}

function maskAddress(value: bigint, prefix: number, bits: number): bigint {
  if (prefix === 0) return 0n;
  const shift = BigInt(bits - prefix);
  return (value >> shift) << shift;
}

export function ipToBigInt(address: string): bigint {
  if (isIP(address) === 4) {
    return address.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
  }
  // Expand "::" and a trailing dotted IPv4 part into eight 16-bit groups.
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = Number(ipToBigInt(v4[1]!));
    text = text.slice(0, -v4[1]!.length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...tailGroups];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n);
}
